#!/usr/bin/env python3
"""DEMO AGENT, NOT AN AI: a scripted stand-in for a coding agent, so the quickstart runs the
whole fixci pipeline with no network, no token and no model.

It follows fixci's agent contract (see reproduce-deterministic/README.md): it runs in the
worktree, reads FIXCI_STAGE / FIXCI_STAGE_DIR, and
- in the `reproduce` stage writes a minimal failing test and `$FIXCI_STAGE_DIR/repro.json`;
- in the `fix` stage edits shipping/rates.py and writes `$FIXCI_STAGE_DIR/root-cause.md`.
Replace it with a real agent (`"agent": "claude"`, or `--agent codex`) for real failures.
"""
import json
import os
import pathlib
import sys

stage = os.environ["FIXCI_STAGE"]
stage_dir = pathlib.Path(os.environ["FIXCI_STAGE_DIR"])
prompt = pathlib.Path(os.environ["FIXCI_PROMPT_FILE"]).read_text()
print(f"[demo agent] stage {stage}, attempt {os.environ['FIXCI_ATTEMPT']}, prompt of {len(prompt)} bytes")

if stage == "reproduce":
    test = pathlib.Path("tests/test_fixci_repro.py")
    test.write_text(
        "import unittest\n\n"
        "from shipping.rates import parcel_price_cents\n\n\n"
        "class FiveKiloParcel(unittest.TestCase):\n"
        "    def test_five_kg_parcel_is_heavy(self):\n"
        "        # The carrier's table: heavy 'from 5 kg'. CI saw a 5 kg parcel priced as light.\n"
        "        self.assertEqual(parcel_price_cents(5, \"domestic\"), 490 + 600)\n\n\n"
        "if __name__ == \"__main__\":\n"
        "    unittest.main()\n"
    )
    (stage_dir / "repro.json").write_text(json.dumps({
        "test_file": str(test),
        "command": "python3 -m unittest tests.test_fixci_repro",
    }))
    print("[demo agent] wrote tests/test_fixci_repro.py and repro.json")
elif stage == "fix":
    rates = pathlib.Path("shipping/rates.py")
    src = rates.read_text()
    rates.write_text(src.replace("return weight_kg > LIGHT_LIMIT_KG", "return weight_kg >= LIGHT_LIMIT_KG"))
    (stage_dir / "root-cause.md").write_text(
        "`is_heavy` compared with `>`, so a parcel of exactly `LIGHT_LIMIT_KG` (5 kg) was priced as "
        "light, although the carrier's table makes parcels heavy *from* 5 kg. A 25 kg cart splits "
        "into 20 kg + 5 kg and lost the second surcharge. The fix compares with `>=`.\n"
    )
    print("[demo agent] changed `>` to `>=` in shipping/rates.py")
else:
    print(f"[demo agent] nothing to do in stage {stage}", file=sys.stderr)
