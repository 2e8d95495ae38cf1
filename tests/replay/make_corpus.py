#!/usr/bin/env python3
"""Builds a replay corpus for fixci's tests and benchmarks: real git repositories with real bugs,
one case folder per bug (case.toml, gold.patch), and two variants whose scripted agent knows the
fixes of a known subset of the cases.

    make_corpus.py OUT            # 6 cases over 3 repositories: 4 deterministic, 2 flaky
    make_corpus.py OUT --bench N  # N small deterministic cases over 4 repositories (benchmarks)

Layout written:
    OUT/repos/{calc,text,queue}/        git repositories (one branch per case: case/<id>)
    OUT/cases/<id>/case.toml, gold.patch
    OUT/variants/{a,b}/variant.toml, fixes.json; OUT/variants/agent.py (the scripted agent)
    OUT/expected.json                    which cases each variant resolves, and why not

The scripted agent applies the variant's known replacement when the worktree holds the case's
bug marker, exits 1 without a change when the fix is marked `error`, and otherwise makes a
harmless wrong change (so fixci's verification fails). It never reads the gold patch.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="corpus", GIT_AUTHOR_EMAIL="corpus@fixci.invalid",
               GIT_COMMITTER_NAME="corpus", GIT_COMMITTER_EMAIL="corpus@fixci.invalid",
               GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout.strip()


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


AGENT = r'''#!/usr/bin/env python3
"""Scripted agent for replay tests: applies the variant's known fix for the case in front of it."""
import json, os, sys
from pathlib import Path
fixes = json.loads(Path(sys.argv[1]).read_text())
wt = Path.cwd()
for f in fixes:
    p = wt / f["file"]
    if p.is_file() and f["old"] in p.read_text():
        if f.get("error"):
            print("scripted agent: simulated API error", file=sys.stderr)
            sys.exit(1)
        p.write_text(p.read_text().replace(f["old"], f["new"]))
        Path(os.environ["FIXCI_STAGE_DIR"], "root-cause.md").write_text(f.get("why", "known bug") + "\n")
        print("applied the known fix to", f["file"])
        sys.exit(0)
(wt / "NOTES.md").write_text("The agent looked and changed nothing that matters.\n")
print("no known fix; wrote NOTES.md")
'''

CALC = {
    "calc.py": "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n\n\ndef sub(a, b):\n    return a - b\n",
    "tests/__init__.py": "",
    "tests/test_add.py": "import unittest\nfrom calc import add\n\n\nclass TestAdd(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n",
    "tests/test_mul.py": "import unittest\nfrom calc import mul\n\n\nclass TestMul(unittest.TestCase):\n    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n",
    "tests/test_sub.py": "import unittest\nfrom calc import sub\n\n\nclass TestSub(unittest.TestCase):\n    def test_sub(self):\n        self.assertEqual(sub(5, 3), 2)\n",
}
TEXT = {
    "text.sh": "shout() { printf '%s!' \"$1\" | tr a-z A-Z; }\nclean() { printf '%s' \"$1\" | tr -d ' \\t'; }\n",
    "tests/test_shout.sh": ". ./text.sh\n[ \"$(shout hi)\" = 'HI!' ] || { echo \"FAIL test_shout: got '$(shout hi)'\"; exit 1; }\n[ \"$(clean ' a b ')\" = 'ab' ] || { echo 'FAIL test_shout: clean'; exit 1; }\n",
    "tests/test_clean.sh": ". ./text.sh\n[ \"$(clean \"$(printf ' x\\ty ')\")\" = 'xy' ] || { echo 'FAIL test_clean'; exit 1; }\n",
}
QUEUE = {
    "queue.sh": "pick() { echo a; }\nfirst() { echo 1; }\n",
    "tests/test_pick.sh": ". ./queue.sh\n[ \"$(pick)\" = a ] || { echo 'FAIL test_pick: expected a'; exit 1; }\n",
    "tests/test_first.sh": ". ./queue.sh\n[ \"$(first)\" = 1 ] || { echo 'FAIL test_first: expected 1'; exit 1; }\n",
}
RANDOM_BIT = "$(( $(od -An -N1 -tu1 /dev/urandom) % 2 ))"

# id: (repo, file, correct text, buggy text, test file, f2p, p2p, deterministic)
CASES = {
    "calc-add": ("calc", "calc.py", "return a + b", "return a - b  # add", "tests/test_add.py",
                 ["python3 -m unittest -q tests.test_add"], ["python3 -m unittest -q tests.test_mul tests.test_sub"], True),
    "calc-mul": ("calc", "calc.py", "return a * b", "return a + b  # mul", "tests/test_mul.py",
                 ["python3 -m unittest -q tests.test_mul"], ["python3 -m unittest -q tests.test_add tests.test_sub"], True),
    "text-shout": ("text", "text.sh", "tr a-z A-Z; }", "tr A-Z a-z; }  # shout", "tests/test_shout.sh",
                   ["sh tests/test_shout.sh"], ["sh tests/test_clean.sh"], True),
    "text-clean": ("text", "text.sh", "tr -d ' \\t'; }", "tr -d ' '; }  # clean", "tests/test_clean.sh",
                   ["sh tests/test_clean.sh"], ["sh tests/test_shout.sh"], True),
    "queue-pick": ("queue", "queue.sh", "pick() { echo a; }",
                   "pick() { if [ " + RANDOM_BIT + " -eq 0 ]; then echo b; else echo a; fi; }  # pick",
                   "tests/test_pick.sh", ["sh tests/test_pick.sh"], ["sh tests/test_first.sh"], False),
    "queue-first": ("queue", "queue.sh", "first() { echo 1; }",
                    "first() { if [ " + RANDOM_BIT + " -eq 0 ]; then echo 2; else echo 1; fi; }  # first",
                    "tests/test_first.sh", ["sh tests/test_first.sh"], ["sh tests/test_pick.sh"], False),
}
REPOS = {"calc": CALC, "text": TEXT, "queue": QUEUE}

# Variant a resolves calc-add, calc-mul, text-shout, queue-pick; its text-clean fix passes the
# case's own test but breaks pass-to-pass (shout's clean check); queue-first: no known fix.
# Variant b resolves calc-add, text-shout, text-clean, queue-pick, queue-first; calc-mul: agent error.
VARIANTS = {
    "a": {
        "calc-add": "fix", "calc-mul": "fix", "text-shout": "fix", "queue-pick": "fix",
        "text-clean": ("tr -d ' '; }  # clean", "tr -d ' \\t'; }; clean() { printf '%s' \"$1\" | tr -d ' \\t' | tr -d a; }"),
    },
    "b": {
        "calc-add": "fix", "text-shout": "fix", "text-clean": "fix", "queue-pick": "fix",
        "queue-first": "fix", "calc-mul": "error",
    },
}
EXPECTED = {
    "a": {"resolved": ["calc-add", "calc-mul", "queue-pick", "text-shout"],
          "unresolved": ["queue-first", "text-clean"], "agent-error": []},
    "b": {"resolved": ["calc-add", "queue-first", "queue-pick", "text-clean", "text-shout"],
          "unresolved": [], "agent-error": ["calc-mul"]},
}


def make_repo(path, files):
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        write(path / name, text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")


def make_case(out, cid, spec):
    repo_name, file, good, bad, test_file, f2p, p2p, det = spec
    repo = out / "repos" / repo_name
    git(repo, "checkout", "-q", "-b", f"case/{cid}", "main")
    src = repo / file
    text = src.read_text()
    assert good in text, (cid, good)
    src.write_text(text.replace(good, bad))
    git(repo, "commit", "-q", "-am", f"introduce the {cid} bug")
    commit = git(repo, "rev-parse", "HEAD")
    src.write_text(text)
    gold = git(repo, "diff")
    git(repo, "checkout", "-q", "--", ".")
    git(repo, "checkout", "-q", "main")
    case = out / "cases" / cid
    write(case / "gold.patch", gold + "\n")
    runner = "python3 -m unittest -q " + test_file[:-3].replace("/", ".") if test_file.endswith(".py") else "sh " + test_file
    info = {
        "deterministic": det,
        "prompt": f"Fix the failing test {test_file}",
        "existing-test-path": test_file,
        "test-command": runner,
        "max-attempts": 1,
    }
    toml = [
        f'id = "{cid}"',
        f'repo = "../../repos/{repo_name}"',
        f'commit = "{commit}"',
        'gold-patch = "gold.patch"',
        "fail-to-pass = [" + ", ".join(json.dumps(c) for c in f2p) + "]",
        "pass-to-pass = [" + ", ".join(json.dumps(c) for c in p2p) + "]",
        "tags = [" + json.dumps("deterministic" if det else "flaky") + ", " + json.dumps(repo_name) + "]",
    ]
    if not det:
        toml.append("check-runs = 12")
    toml.append("")
    toml.append("[info]")
    for k, v in info.items():
        toml.append(f"{k} = {json.dumps(v)}")
    if not det:
        toml.append('budgets = { confirm = "20s", verify = "20s" }')
    write(case / "case.toml", "\n".join(toml) + "\n")
    return bad, good, file


def main():
    out = Path(sys.argv[1]).resolve()
    bench = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--bench" else None
    if out.exists() and any(out.iterdir()):
        sys.exit(f"{out} is not empty")
    cases = dict(CASES)
    variants = {k: dict(v) for k, v in VARIANTS.items()}
    if bench:
        cases = {}
        for i in range(bench):
            cases[f"calc-{i:04d}"] = ("calc", "calc.py", "return a + b", f"return a - b  # add {i:04d}",
                                      "tests/test_add.py", ["python3 -m unittest -q tests.test_add"],
                                      ["python3 -m unittest -q tests.test_sub"], True)
        variants = {"a": {cid: "fix" for cid in cases}}
    for name, files in REPOS.items():
        if any(s[0] == name for s in cases.values()):
            make_repo(out / "repos" / name, files)
    bugs = {cid: make_case(out, cid, spec) for cid, spec in cases.items()}
    write(out / "variants" / "agent.py", AGENT)
    for vname, known in variants.items():
        fixes = []
        for cid, how in known.items():
            bad, good, file = bugs[cid]
            if how == "fix":
                fixes.append({"case": cid, "file": file, "old": bad, "new": good, "why": f"{cid}: wrong operator"})
            elif how == "error":
                fixes.append({"case": cid, "file": file, "old": bad, "new": good, "error": True})
            else:
                fixes.append({"case": cid, "file": file, "old": how[0], "new": how[1]})
        vdir = out / "variants" / vname
        write(vdir / "fixes.json", json.dumps(fixes, indent=1) + "\n")
        write(vdir / "variant.toml",
              f'name = "{vname}"\ndescription = "scripted agent, variant {vname}"\n'
              f'agent = {{ command = ["python3", "../agent.py", "fixes.json"] }}\n')
    if not bench:
        write(out / "expected.json", json.dumps(EXPECTED, indent=1) + "\n")
    print(out)


if __name__ == "__main__":
    main()
