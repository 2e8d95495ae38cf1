#!/usr/bin/env python3
"""Writes a GitHub Actions style job log of about SIZE_MB megabytes for `bench/logs.sh`.

Every line carries a `2026-02-11T00:08:26.4935586Z ` timestamp; steps are wrapped in
`##[group]`/`##[endgroup]`; some lines carry ANSI colour or `\\r` progress; setup noise
(package installs, compiler output, docker pulls, harmless warnings, near-misses such as
`0 errors` or `Warning: ... failed to open stream`) surrounds failures of several runners
(pytest, unittest, cargo test, go test, jest, PHPUnit) scattered through the log.
Deterministic: the same arguments give the same bytes.

usage: gen_log.py OUT [SIZE_MB] [FAILURES]

Also writes OUT.failures: one line per injected failure, `<runner template index> <k>` (k is the
number in the failing test's name), for the bench's recall check.
"""
import random
import sys

NOISE = [
    "Collecting requests>=2.31 (from -r requirements.txt (line {n}))",
    "  Downloading requests-2.32.{n}-py3-none-any.whl.metadata (4.6 kB)",
    "Successfully installed certifi-2024.{n}.2 charset-normalizer-3.3.2 idna-3.7 urllib3-2.2.1",
    "npm WARN deprecated inflight@1.0.{n}: This module is not supported, and leaks memory.",
    "added {n} packages, and audited 1203 packages in 14s",
    "   Compiling serde_derive v1.0.{n}",
    "   Compiling tokio v1.38.{n}",
    "warning: unused variable: `x{n}`",
    "  --> src/module_{n}.rs:12:9",
    "{n}: Pulling fs layer",
    "Digest: sha256:4f{n}a8c2d9e1b3f5a7c9e0d2b4f6a8c0e2d4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6",
    "tests/unit/test_module_{n}.py ................................        [ 42%]",
    "ok  \tgithub.com/acme/service/pkg/module{n}\t0.{n}s",
    "PASS src/components/Button{n}.test.tsx",
    "test parser::tests::case_{n} ... ok",
    "[       OK ] Suite{n}.Case (0 ms)",
    "Warning: include(/app/config/local_{n}.php): failed to open stream: No such file or directory in /app/bootstrap.php on line 12",
    "Build succeeded with 0 errors and {n} warnings",
    "Receiving objects:  {n}% (2210/2210), 1.52 MiB | 9.87 MiB/s, done.",
    "Resolving deltas: 100% (1210/1210), done. error-free checkout of {n} files",
    "  Running setup.py install for pyyaml ... done ({n})",
    "[command]/usr/bin/git -c protocol.version=2 fetch --no-tags --prune origin +refs/heads/*:refs/remotes/origin/* ({n})",
    "Cache restored successfully from key: Linux-cargo-{n}",
    "##[warning]Node.js 16 actions are deprecated. ({n})",
]

PROGRESS = "\r".join(f"Downloading... {p}%" for p in range(0, 101, 20))

FAILURES = [
    # pytest
    """=================================== FAILURES ===================================
_________________________ TestParser.test_case_{k} _________________________

self = <tests.test_parser.TestParser object at 0x7f44e0106780>

    def test_case_{k}(self):
>       assert parse("{k}") == {k} + 1
E       assert {k} == {k1}
E        +  where {k} = parse('{k}')

tests/test_parser.py:{k}: AssertionError
=========================== short test summary info ============================
FAILED tests/test_parser.py::TestParser::test_case_{k} - assert {k} == {k1}
========================= 1 failed, 812 passed in 9.81s =========================""",
    # unittest
    """======================================================================
FAIL: test_total_{k} (tests.test_cart.TestCart.test_total_{k})
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/home/runner/work/shop/shop/tests/test_cart.py", line {k}, in test_total_{k}
    self.assertEqual(cart.total(), {k})
AssertionError: {k1} != {k}

----------------------------------------------------------------------
Ran 120 tests in 0.812s

FAILED (failures=1)""",
    # cargo test
    """---- tests::roundtrip_{k} stdout ----

thread 'tests::roundtrip_{k}' (4242) panicked at src/codec.rs:{k}:9:
assertion `left == right` failed
  left: {k}
 right: {k1}
note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace


failures:
    tests::roundtrip_{k}

test result: FAILED. 311 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.42s""",
    # go test
    """--- FAIL: TestHandler{k} (0.00s)
    handler_test.go:{k}: status = 500, want 200
FAIL
FAIL\tgithub.com/acme/service/api\t0.{k}s""",
    # jest
    """  ● api › returns item {k}

    expect(received).toBe(expected) // Object.is equality

    Expected: {k}
    Received: {k1}

      at Object.toBe (src/api.test.js:{k}:23)

Tests:       1 failed, 88 passed, 89 total""",
    # PHPUnit
    """There was 1 failure:

1) Tests\\Unit\\CartTest::testTotal{k}
Failed asserting that {k1} matches expected {k}.

/app/tests/Unit/CartTest.php:{k}

FAILURES!
Tests: 512, Assertions: 1201, Failures: 1.""",
]


def main():
    out = sys.argv[1]
    size = int(float(sys.argv[2]) * 1e6) if len(sys.argv) > 2 else 200_000_000
    nfail = int(sys.argv[3]) if len(sys.argv) > 3 else 60
    rnd = random.Random(42)
    written = 0
    line_no = 0
    step = 0
    next_fail = [int(size * (i + 1) / (nfail + 1)) for i in range(nfail)]
    buf = []
    sec = 0
    injected = []
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        while written < size:
            step += 1
            group = [f"##[group]Run step {step}"]
            body = []
            for _ in range(rnd.randint(200, 3000)):
                r = rnd.random()
                t = NOISE[rnd.randrange(len(NOISE))].format(n=rnd.randrange(1000))
                if r < 0.05:
                    t = f"\x1b[32m{t}\x1b[0m"
                elif r < 0.06:
                    t = PROGRESS
                body.append(t)
            lines = group + body + ["##[endgroup]"]
            if next_fail and written >= next_fail[0]:
                next_fail.pop(0)
                k = rnd.randrange(10, 999)
                t_index = rnd.randrange(len(FAILURES))
                tmpl = FAILURES[t_index]
                injected.append(f"{t_index} {k}")
                lines += tmpl.format(k=k, k1=k + 1).split("\n")
                lines.append("##[error]Process completed with exit code 1.")
            for t in lines:
                sec += 1
                stamp = f"2026-02-11T{(sec // 3600) % 24:02d}:{(sec // 60) % 60:02d}:{sec % 60:02d}.{(line_no * 7919) % 10_000_000:07d}Z "
                s = stamp + t + "\n"
                buf.append(s)
                written += len(s.encode("utf-8"))
                line_no += 1
            if len(buf) > 100_000:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    with open(out + ".failures", "w", encoding="utf-8") as f:
        f.write("".join(i + "\n" for i in injected))


if __name__ == "__main__":
    main()
