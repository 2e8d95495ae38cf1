#!/usr/bin/env python3
"""A Python `re` line extractor in the style of Treeherder's log parser
(treeherder/log_parser/parsers.py, `ErrorParser`): read the log line by line, strip the
timestamp and ANSI codes, cheap substring checks first, then precompiled regexes; collect
matching lines with their line numbers. Uses the same literal triggers as fixci's rule packs.

usage: logs_treeherder.py LOG   (prints the number of candidate lines and of failure lines)
"""
import glob
import os
import re
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
TRIGGERS = ["##[group]", "##[endgroup]"]
for path in sorted(glob.glob(os.path.join(HERE, "..", "src", "logs", "rules", "*.toml"))):
    with open(path, "rb") as f:
        TRIGGERS += tomllib.load(f)["triggers"]

RE_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ")
RE_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
RE_ERR_MATCH = re.compile(
    r"^(?:FAILED|ERROR) \S+::\S+|^(?:FAIL|ERROR): \w+ \(|^---- \S+ std(?:out|err) ----$"
    r"|^\s*--- FAIL: |^\s*● |^\d+\) [\w\\]+::\w+|^\[  FAILED  \] |^##\[error\]|^Error: "
    r"|^test \S+ \.\.\. FAILED$|^E\s+\S"
)
RE_ERR_SEARCH = re.compile(r"panicked at|test result: FAILED|Tests: \d+.*Failures|FATAL|exit code [1-9]")


def main():
    candidates = 0
    failures = []
    with open(sys.argv[1], "r", encoding="utf-8", errors="replace") as f:
        for no, line in enumerate(f, 1):
            if not any(t in line for t in TRIGGERS):
                continue
            candidates += 1
            line = RE_TIMESTAMP.sub("", line.rstrip("\n"))
            if "\x1b" in line:
                line = RE_ANSI.sub("", line)
            if RE_ERR_MATCH.match(line) or RE_ERR_SEARCH.search(line):
                failures.append((no, line))
    print(candidates, len(failures))


if __name__ == "__main__":
    main()
