"""LASS: CPL-0 accesses to the lower half against CR4.LASS and EFLAGS.AC
(Intel ISE LASS chapter as the Linux LASS series quotes it)."""

from pathlib import Path

import pytest
from one_cpu import run_ops

from fuzzinit.model.outcome import NAMES, Result


def _run(tmp_path: Path, ops: list[str], features: str) -> Result:
    return run_ops(tmp_path, ops, features)


@pytest.mark.parametrize(("ops", "handled"), [
    (["access_user data", "access_user fetch"], []),          # LASS off
    (["cr4_set smap", "cr4_set lass", "access_user data"], [(0, 13)]),
    # Data accesses are LASS violations only with CR4.SMAP = 1 (Intel ISE;
    # Bochs IsCanonicalAccess); fetches always.
    (["cr4_set lass", "access_user data"], []),
    (["cr4_set lass", "access_user fetch"], [(0, 13)]),
    (["cr4_set smap", "cr4_set lass", "stac", "access_user data"], []),
    (["cr4_set smap", "cr4_set lass", "stac", "clac", "access_user data"],
     [(0, 13)]),
    (["cr4_set lass", "stac", "access_user fetch"], [(0, 13)]),
    # 64-bit mode only (Bochs: long64_mode()).
    (["cr4_set smap", "cr4_set lass", "ljmp cs32", "access_user data",
      "access_user fetch"], []),
])
def test_lass_rules(tmp_path: Path, ops: list[str],
                    handled: list[tuple[int, int]]) -> None:
    r = _run(tmp_path, ["lidt gates 6,13", *ops], '["lass", "smap"]')
    assert (NAMES[r.outcome], r.handled) == ("ok", handled)


def test_stac_needs_smap(tmp_path: Path) -> None:
    r = _run(tmp_path, ["lidt gates 6,13", "stac"], '["lass"]')
    assert (NAMES[r.outcome], r.handled) == ("ok", [(0, 6)])
    r = _run(tmp_path, ["lidt gates 6,13", "cr4_set lass"], "[]")
    assert r.handled == [(0, 13)]   # LASS not enumerated: reserved bit
