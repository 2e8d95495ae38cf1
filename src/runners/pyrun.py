"""fixci's Python test helper, written by fixci outside the tree it verifies.

usage: python3 runtests.py pytest JUNIT EVENTS [pytest args...]
       python3 runtests.py unittest JUNIT EVENTS [-v|-q|-f] [targets...]

The runner is imported before the tree's root (the working directory) goes on sys.path, so a
`pytest.py` or `unittest.py` in the repository cannot stand in for it (fixci also sets
PYTHONSAFEPATH=1). For unittest it writes a JUnit XML report of every test at JUNIT.

EVENTS is a FIFO fixci reads while the run goes on: it is opened and unlinked before any code
under test is imported, and receives one JSON line per test report as it is made, then the
exit status. fixci cross-checks these lines with the JUnit report and the process's exit
status, so an exit hook that rewrites the report or forces the status is caught.
"""
import json
import os
import sys

mode, junit, events = sys.argv[1], sys.argv[2], sys.argv[3]
args = sys.argv[4:]
del sys.argv[1:4]

_events_fd = os.open(events, os.O_WRONLY)
os.unlink(events)


def _emit(record, _fd=_events_fd, _dumps=json.dumps, _write=os.write):
    try:
        _write(_fd, (_dumps(record) + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


if mode == "pytest":
    try:
        import pytest
    except ImportError as e:
        print(f"pytest is not installed for {sys.executable}: {e}", file=sys.stderr)
        _emit({"exit": 3})
        sys.exit(3)

    class _Account:
        @pytest.hookimpl(tryfirst=True)
        def pytest_runtest_logreport(self, report):
            _emit({"id": report.nodeid, "when": report.when, "outcome": report.outcome})

        @pytest.hookimpl(tryfirst=True)
        def pytest_collectreport(self, report):
            if report.outcome != "passed":
                _emit({"id": report.nodeid, "when": "collect", "outcome": report.outcome})

    sys.path.insert(0, os.getcwd())
    _status = int(pytest.main(args, plugins=[_Account()]))
    _emit({"exit": _status})
    sys.exit(_status)

import time
import traceback
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.getcwd())
verbosity = 1
failfast = False
targets = []
for a in args:
    if a in ("-v", "--verbose"):
        verbosity = 2
    elif a in ("-q", "--quiet"):
        verbosity = 0
    elif a in ("-f", "--failfast"):
        failfast = True
    else:
        targets.append(a)

loader = unittest.TestLoader()
suite = unittest.TestSuite()
if not targets:
    suite.addTests(loader.discover("."))
for t in targets:
    name = t[2:] if t.startswith("./") else t
    if os.path.isdir(name):
        suite.addTests(loader.discover(name, top_level_dir="."))
        continue
    if name.endswith(".py"):
        name = name[:-3]
    suite.addTests(loader.loadTestsFromName(name.replace("/", ".")))

records = []


def _file_of(test):
    mod = sys.modules.get(type(test).__module__)
    f = getattr(mod, "__file__", None)
    if not f:
        return None
    try:
        return os.path.relpath(f)
    except ValueError:
        return f


class Result(unittest.TextTestResult):
    def startTest(self, test):
        self._t0 = time.monotonic()
        super().startTest(test)

    def _rec(self, test, outcome, err=None, message=None):
        text = ""
        if err is not None:
            text = "".join(traceback.format_exception(*err))
            message = message or (traceback.format_exception_only(err[0], err[1])[-1].strip())
        records.append((test.id(), outcome, message or "", text, _file_of(test),
                        time.monotonic() - getattr(self, "_t0", time.monotonic())))
        _emit({"id": test.id(), "when": "call",
               "outcome": {"failure": "failed"}.get(outcome, outcome)})

    def addSuccess(self, test):
        super().addSuccess(test)
        self._rec(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._rec(test, "failure", err)

    def addError(self, test, err):
        super().addError(test, err)
        self._rec(test, "error", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._rec(test, "skipped", message=reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._rec(test, "skipped", err, message="expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._rec(test, "failure", message="unexpected success")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "failure" if issubclass(err[0], test.failureException) else "error"
            self._rec(test, kind, err)


runner = unittest.TextTestRunner(verbosity=verbosity, failfast=failfast, resultclass=Result)
result = runner.run(suite)

root = ET.Element("testsuites")
ts = ET.SubElement(root, "testsuite", name="unittest", tests=str(len(records)))
# A test with failing subtests is reported once, with its worst outcome (as fixci reads the
# live account).
_rank = {"passed": 0, "skipped": 1, "failure": 2, "error": 3}
worst = {}
for rec in records:
    prev = worst.get(rec[0])
    if prev is None or _rank[rec[1]] > _rank[prev[1]]:
        worst[rec[0]] = rec
for tid, outcome, message, text, path, secs in worst.values():
    classname, _, name = tid.rpartition(".")
    attrs = {"classname": classname, "name": name, "time": f"{secs:.3f}"}
    if path:
        attrs["file"] = path
    tc = ET.SubElement(ts, "testcase", attrs)
    if outcome != "passed":
        child = ET.SubElement(tc, outcome, message=message)
        child.text = text
ET.ElementTree(root).write(junit, encoding="utf-8", xml_declaration=True)
_status = 0 if result.wasSuccessful() and result.testsRun > 0 else 1
_emit({"exit": _status})
sys.exit(_status)
