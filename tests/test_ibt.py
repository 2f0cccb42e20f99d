"""CET indirect branch tracking: IA32_S_CET.ENDBR_EN and CR4.CET against
`call_indirect` (SDM Vol. 1 18.3; LX arch/x86/kernel/cet.c)."""

from pathlib import Path

import pytest
from one_cpu import run_ops

from fuzzinit.model.outcome import NAMES, Result


def _run(tmp_path: Path, ops: list[str], features: str = '["cet"]'
         ) -> Result:
    return run_ops(tmp_path, ops, features)


@pytest.mark.parametrize(("ops", "features", "outcome", "handled"), [
    # #CP needs both CR4.CET and ENDBR_EN, and a target without ENDBR64.
    (["lidt gates 21", "wrmsr S_CET 4", "cr4_set cet",
      "call_indirect noendbr"], '["cet"]', "ok", [(0, 21)]),
    (["lidt gates 21", "cr4_set cet", "call_indirect noendbr"], '["cet"]',
     "ok", []),
    (["lidt gates 21", "wrmsr S_CET 4", "call_indirect noendbr"], '["cet"]',
     "ok", []),
    (["lidt gates 21", "wrmsr S_CET 4", "cr4_set cet", "call_indirect endbr"],
     '["cet"]', "ok", []),
    # ibt_save(): ENDBR_EN off again.
    (["lidt gates 21", "wrmsr S_CET 4", "cr4_set cet", "wrmsr S_CET 0",
      "call_indirect noendbr"], '["cet"]', "ok", []),
    # S_CET is #GP without CET, and with a reserved bit (6-9) set.
    (["lidt gates 13", "wrmsr S_CET 4"], "[]", "ok", [(0, 13)]),
    (["lidt gates 13", "rdmsr S_CET"], "[]", "ok", [(0, 13)]),
    (["lidt gates 13", "wrmsr S_CET 0x44"], '["cet"]', "ok", [(0, 13)]),
    # #CP is contributory once CET is enumerated: a fault delivering it
    # is #DF (SDM table 6-5; Bochs exception.cc).
    (["lidt gates 8,21 np 21", "wrmsr S_CET 4", "cr4_set cet",
      "call_indirect noendbr"], '["cet"]', "ok", [(0, 8)]),
])
def test_ibt_rules(tmp_path: Path, ops: list[str], features: str,
                   outcome: str, handled: list[tuple[int, int]]) -> None:
    r = _run(tmp_path, ops, features)
    assert (NAMES[r.outcome], r.handled) == (outcome, handled)


def test_linux_handlers(tmp_path: Path) -> None:
    ibt = ["wrmsr S_CET 4", "cr4_set cet", "call_indirect noendbr"]
    r = _run(tmp_path, ["lidt full", *ibt])
    assert (NAMES[r.outcome], r.chain[-1]) == (
        "unhandled", "#CP (missing ENDBR): exc_control_protection() BUG()s"
        " (ibt=warn, which continues, is not modelled)")
    r = _run(tmp_path, ["lidt early", *ibt])
    assert (NAMES[r.outcome], r.chain[-1]) == (
        "unhandled", "#CP in the early handler: early_fixup_exception()"
        " halts")
    r = _run(tmp_path, ["lidt null", *ibt])
    assert r.chain[-1] == "#GP while delivering #DF -> SHUTDOWN (triple" \
        " fault)"
