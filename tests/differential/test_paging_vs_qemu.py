"""The model's paging (README Model rules 27) against QEMU TCG on generated
paging cases (paging.py): a read, write or fetch of one page whose leaf
differs per tree, under CR4.SMEP/SMAP/PGE, STAC, EFER.NXE, CR0.WP, with or
without a MOV to CR3 from tree A to tree B after touching the page.

Every case is one the model can state ([memory] tables, `write_cr3`,
`access`); any difference fails unless it is the one listed QEMU
deviation below and QEMU answers exactly as the model does once the
global entry is gone.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from differential.cases import Result
from differential.paging import PagingCase, build, generate, model
from differential.qemu import qemu_available, run_image

COUNT = int(os.environ.get("FUZZINIT_QEMU_PAGING_CASES", "300"))
SEED = 20261130

GLOBAL_DROPPED = (
    # SDM Vol. 3A 4.10.4.1: MOV to CR3 with PCID 0 need not invalidate
    # global translations (CR4.PGE = 1), and 4.10.2.4/4.10.4.3 let the CPU
    # use such a stale entry: the model takes the faulting choice (rule
    # 27). QEMU TCG flushes its whole TLB on every CR3 write
    # (target/i386/helper.c cpu_x86_update_cr3 -> tlb_flush), so it always
    # uses the new tree. Both are allowed; the SDM guarantees neither.
    "MOV to CR3: QEMU drops global translations the model keeps")


def _keeps_global(case: PagingCase) -> bool:
    a = case.table_a
    return case.switch and "pge" in case.cr4 and "g" in a and "r" in a \
        and ("x" in a or case.nxe)


def deviation(case: PagingCase, want: Result, got: Result,
              tmp: Path) -> str | None:
    """The listed deviation this difference belongs to, if any: the case
    leaves a global entry over, and without PGE (no global entry) the
    model gives QEMU's answer."""
    if not _keeps_global(case):
        return None
    flushed = dataclasses.replace(case, cr4=case.cr4 - {"pge"})
    if model(flushed, tmp) == got:
        return GLOBAL_DROPPED
    return None


def run_paging(cases: Sequence[PagingCase], jobs: int = 2) -> list[Result]:
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda c: run_image(build(c)), cases))


@pytest.mark.skipif(not qemu_available() and not os.environ.get("CI"),
                    reason="nasm or qemu-system-x86_64 missing")
def test_the_model_agrees_with_qemu_on_paging_cases(tmp_path: Path) -> None:
    cases = generate(SEED, COUNT)
    answers = run_paging(cases)
    agreed = 0
    deviations: Counter[str] = Counter()
    disagreements = []
    for case, got in zip(cases, answers, strict=True):
        want = model(case, tmp_path)
        if want == got:
            agreed += 1
            continue
        name = deviation(case, want, got, tmp_path)
        if name is not None:
            deviations[name] += 1
            continue
        disagreements.append((case, want, got))
    print(f"\nQEMU paging differential: {len(cases)} cases, {len(cases)}"
          f" stated, 0 not stated, {agreed} agree,"
          f" {sum(deviations.values())} known QEMU deviations"
          + "".join(f"\n  {n}: {c}" for n, c in sorted(deviations.items())))
    assert not disagreements, (len(disagreements), disagreements[:5])
    assert agreed >= 250
    assert deviations[GLOBAL_DROPPED] >= 1
