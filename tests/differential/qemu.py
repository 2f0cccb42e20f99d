"""Run differential cases under QEMU TCG and read back what happened.

    >>> from differential.cases import Case, Gate
    >>> case = Case(gates=(Gate(3),), limit=0xFFF, ltr=True,
    ...             ist_slots=frozenset(), trigger="int3")
    >>> run_case(case)  # doctest: +SKIP
    ('handler', 3)

Each case is its own QEMU process booting the case's image as firmware
(`-bios`, see image.py); outcomes:
  ("handler", V)  the image wrote "H" and V on port 0xE9, then exited
  ("none", -1)    the image wrote "N": the code after the trigger ran
  ("shutdown", -1) QEMU exited 0 with nothing written: with -no-reboot a
                  triple fault (shutdown, SDM Vol. 3A 6.15 Interrupt 8) ends
                  QEMU with status 0; the image itself always exits with 1
  ("hang", -1)    nothing after `timeout` seconds; QEMU is killed
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .cases import HANDLER, HANG, NONE, SHUTDOWN, Case, Result
from .image import build

QEMU = "qemu-system-x86_64"
TIMEOUT = 5.0


class HarnessError(RuntimeError):
    """QEMU ended in a way the image cannot cause: the harness is broken."""


def qemu_available() -> bool:
    """True when nasm and qemu-system-x86_64 are on PATH."""
    return shutil.which("nasm") is not None and shutil.which(QEMU) is not None


def command(image: str, cpu: str = "max") -> list[str]:
    """The QEMU command line for one image."""
    return [QEMU, "-accel", "tcg", "-cpu", cpu, "-M", "pc", "-nodefaults",
            "-display", "none", "-m", "32", "-no-reboot", "-bios", image,
            "-debugcon", "stdio",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


def decode(status: int, out: bytes) -> Result:
    """The result from QEMU's exit status and its port-0xE9 output."""
    if status == 1 and len(out) == 2 and out[:1] == b"H":
        return HANDLER, out[1]
    if status == 1 and out == b"N":
        return NONE, -1
    if status == 0 and out == b"":
        return SHUTDOWN, -1
    raise HarnessError(f"unexpected QEMU exit {status} with output {out!r}")


def run_case(case: Case, cpu: str = "max", timeout: float = TIMEOUT) -> Result:
    """Boot the case's image under QEMU TCG; which handler ran first."""
    return run_image(build(case), cpu, timeout)


def run_image(image: Path, cpu: str = "max",
              timeout: float = TIMEOUT) -> Result:
    """Boot an assembled image under QEMU TCG; which handler ran first."""
    try:
        proc = subprocess.run(command(str(image), cpu), capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return HANG, -1
    try:
        return decode(proc.returncode, proc.stdout)
    except HarnessError as exc:
        # QEMU's own complaint (a bad -cpu, a missing image) says why.
        err = proc.stderr.decode(errors="replace").strip()
        raise HarnessError(f"{exc}; QEMU stderr: {err}") from None


def run_cases(cases: Iterable[Case], jobs: int = 2, cpu: str = "max",
              timeout: float = TIMEOUT) -> list[Result]:
    """run_case over many cases, `jobs` QEMU processes at a time, in order.

    The pool's workers are threads, each waiting on its own nasm and QEMU
    child process: the work runs in those children, so this is as parallel
    as a process pool without pickling cases or forking Python.
    """
    todo: Sequence[Case] = list(cases)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(lambda c: run_case(c, cpu, timeout), todo))
