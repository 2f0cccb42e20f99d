"""Faults: a full or read-only disk, output that cannot be written, and
SIGKILL/SIGTERM at seeded random points of `run`, `explore`, `verify-fix`
and `constraints`. Whatever happens, a finding is printed or saved and a
failing run never exits 0. (`fuzz` has its own in tests/test_fuzz_faults.py.)

The full and read-only disks are real: a 64 KiB tmpfs, mounted by the test
(root only; skipped, with the reason, elsewhere).
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fuzzinit.explore.scaling import scaled
from fuzzinit.report.files import sweep_temporaries, write_atomic

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models/upstream-fix-sev-es.toml"
ENOSPC = "ENOSPC (No space left on device)"


def fz(cwd: Path, *args: str, stdout: int | None = subprocess.PIPE
       ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          cwd=cwd, stdout=stdout, stderr=subprocess.PIPE,
                          text=True, timeout=300, check=False)


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "fuzzinit", *args],
                            cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def _mount(path: Path, size: str, *options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs",
                           str(path)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs: {proc.stderr.strip()}")
        pytest.skip("cannot mount a tmpfs (the disk-fault tests need root):"
                    f" {proc.stderr.strip()}")


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A mounted 64 KiB tmpfs, filled to the last byte."""
    disk = tmp_path / "full"
    _mount(disk, "64k")
    try:
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 512):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "ro"
    _mount(disk, "64k", "ro")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".fuzzinit-" in p.name)


def test_run_on_a_full_disk_prints_the_finding_and_fails(
        tmp_path: Path, full_disk: Path) -> None:
    proc = fz(tmp_path, "run", str(PINNED), "--seed", "1", "--db", "none",
              "--corpus", str(full_disk / "corpus"),
              "--reports", str(full_disk / "reports"))
    assert proc.returncode == 1
    assert "causal core (5 of" in proc.stdout
    assert "  4. cpu1 cr4_init  (start_secondary)\n" in proc.stdout
    sig = proc.stdout.split("trace:  ")[1].split(".json")[0].split("/")[-1]
    assert one_line(proc.stderr) == (
        "fuzzinit: error: cannot write"
        f" {full_disk}/corpus/fred-pinned-sev-es-ap/{sig}.json: {ENOSPC};"
        " the finding above is not saved")
    assert _temporaries(full_disk) == []


def test_run_json_on_a_full_disk_prints_the_finding(
        tmp_path: Path, full_disk: Path) -> None:
    proc = fz(tmp_path, "run", str(PINNED), "--seed", "1", "--db", "none",
              "--json", "--reports", str(full_disk))
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["verdict"] == "triple_fault"
    assert [e["op"] for e in out["events"]] == [
        "cr4_set fred", "setup_cr_pinning", "start 1", "cr4_init", "printk"]
    # The trace went to the working folder's corpus; only the report failed.
    trace = tmp_path / out["trace"]
    assert one_line(proc.stderr).startswith(
        f"fuzzinit: error: cannot write {full_disk}/")
    assert proc.stderr.endswith(f"{ENOSPC}; the trace is saved: fuzzinit"
                                f" report {out['trace']}\n")
    replay = fz(tmp_path, "replay", str(trace))
    assert replay.returncode == 1 and "triple_fault" in replay.stdout


def test_run_refuses_a_read_only_folder_before_searching(
        tmp_path: Path, read_only_disk: Path) -> None:
    proc = fz(tmp_path, "run", str(PINNED), "--reports",
              str(read_only_disk / "reports"))
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        f"fuzzinit: error: --reports {read_only_disk}/reports:"
        f" {read_only_disk} is not writable; fix: point --reports at a"
        " writable folder")
    assert proc.stdout == ""


def test_constraints_on_a_full_disk_print_the_rules_and_fail(
        tmp_path: Path, full_disk: Path) -> None:
    proc = fz(tmp_path, "constraints", str(FIXED), "--examples", "300",
              "--corpus", str(full_disk))
    assert proc.returncode == 1
    assert " rules from " in proc.stdout and "  1. " in proc.stdout
    line = one_line(proc.stderr)
    assert line.startswith(f"fuzzinit: error: cannot write {full_disk}/")
    assert line.endswith(f"{ENOSPC}; the rules above are not all saved")


def test_output_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    """stdout on a full device: never exit 0; a finding is still saved."""
    with open("/dev/full", "w") as full:
        explore = fz(tmp_path, "explore", str(FIXED), stdout=full.fileno())
        run = fz(tmp_path, "run", str(PINNED), "--seed", "1", "--db", "none",
                 "--json", stdout=full.fileno())
    assert explore.returncode == 2
    assert one_line(explore.stderr) == (
        f"fuzzinit: error: I/O error on standard output: {ENOSPC}")
    assert run.returncode == 2
    assert one_line(run.stderr) == explore.stderr.strip()
    traces = list((tmp_path / "corpus/fred-pinned-sev-es-ap").glob("*.json"))
    assert len(traces) == 1
    assert len(list((tmp_path / "reports").glob("fred-pinned-*.md"))) == 1


@pytest.mark.parametrize("point", range(4))
def test_sigkill_at_a_random_point_of_run_loses_nothing(
        tmp_path: Path, point: int) -> None:
    """Whatever a SIGKILL cut short is whole or absent; the next run
    removes the dead run's temporaries and finds the failure again."""
    delay = random.Random(point).uniform(0.3, 1.5)
    proc = start(tmp_path, "run", str(PINNED), "--seed", "1", "--db", "none")
    time.sleep(delay)
    proc.kill()
    proc.communicate()
    for path in tmp_path.rglob("*.json"):
        if ".fuzzinit-" not in path.name:
            json.loads(path.read_text(encoding="utf-8"))
    # The next run comes later: leftovers are older than the two seconds
    # in which a temporary may not be locked yet.
    for path in tmp_path.rglob("*"):
        if ".fuzzinit-" in path.name:
            os.utime(path, (time.time() - 60, time.time() - 60))
    again = fz(tmp_path, "run", str(PINNED), "--seed", "1", "--db", "none")
    assert again.returncode == 1, again.stderr
    assert _temporaries(tmp_path) == []
    assert len(list((tmp_path / "reports").glob("fred-pinned-*.md"))) == 1


@pytest.mark.parametrize("point", range(4))
def test_sigterm_at_a_random_point_of_run_never_looks_clean(
        tmp_path: Path, point: int) -> None:
    delay = random.Random(100 + point).uniform(0.3, 1.5)
    proc = start(tmp_path, "run", str(PINNED), "--seed", "1", "--db", "none")
    time.sleep(delay)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    if proc.returncode == -signal.SIGTERM:
        # Still importing: Python's default action ended it, before it
        # could claim anything (a shell shows 143 too).
        assert out == ""
    elif proc.returncode == 143:      # stopped before anything was found
        assert out.startswith("fred-pinned-sev-es-ap: interrupted after ")
    else:                              # found: printed, whatever was cut
        assert proc.returncode == 1, (out, err)
        assert "causal core (" in out
    assert _temporaries(tmp_path) == []


def _scaled(tmp_path: Path, source: Path, aps: int) -> Path:
    path = tmp_path / f"{source.stem}-{aps}ap.toml"
    path.write_text(scaled(source.read_text(encoding="utf-8"), aps),
                    encoding="utf-8")
    return path


def _terminate_after(proc: subprocess.Popen[str], seconds: float
                     ) -> tuple[str, str]:
    time.sleep(seconds)
    assert proc.poll() is None, "finished before the signal: make it longer"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err
    return out, err


def test_sigterm_ends_explore_with_the_counts_so_far(tmp_path: Path) -> None:
    model = _scaled(tmp_path, FIXED, 4)
    proc = start(tmp_path, "explore", str(model), "--no-por",
                 "--no-symmetry")
    out, _ = _terminate_after(proc, 3.0)
    assert proc.returncode == 143
    assert out.startswith("upstream-fix-sev-es-4ap: interrupted after ")
    assert out.rstrip().endswith("no failing ordering found so far")
    proc = start(tmp_path, "explore", str(model), "--json", "--no-por")
    out, _ = _terminate_after(proc, 3.0)
    assert proc.returncode == 143
    assert json.loads(out)["result"] == "interrupted"


def test_sigterm_ends_verify_fix(tmp_path: Path) -> None:
    proc = start(tmp_path, "verify-fix", str(PINNED),
                 str(_scaled(tmp_path, FIXED, 4)))
    out, _ = _terminate_after(proc, 3.0)
    assert proc.returncode == 143
    assert "interrupted after" in out and "fix NOT verified" in out


def test_sigterm_ends_constraints_with_the_rules_so_far(
        tmp_path: Path) -> None:
    proc = start(tmp_path, "constraints", str(FIXED), "--examples",
                 "1000000")
    out, _ = _terminate_after(proc, 3.0)
    assert proc.returncode in (1, 143)
    assert out.startswith("upstream-fix-sev-es: ")
    assert " rules interrupted after " in out.splitlines()[0]
    assert "interrupted: the rules so far; sufficiency not checked" in out


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_reports_get_the_users_umask(tmp_path: Path, umask: int,
                                     mode: int) -> None:
    code = ("import os, sys; os.umask(int(sys.argv[1]));"
            " from fuzzinit.cli import main; sys.exit(main(sys.argv[2:]))")
    proc = subprocess.run([sys.executable, "-c", code, str(umask), "run",
                           str(PINNED), "--seed", "1", "--db", "none"],
                          cwd=tmp_path, capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 1, proc.stderr
    written = [*tmp_path.glob("reports/*"), *tmp_path.glob("corpus/*/*")]
    assert len(written) == 7
    assert {p.stat().st_mode & 0o777 for p in written} == {mode}


def test_a_dead_writers_temporaries_are_swept_a_live_ones_kept(
        tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".x.md.fuzzinit-{dead.pid}-abc123"
    live = tmp_path / f".y.md.fuzzinit-{os.getpid()}-def456"
    other = tmp_path / ".z.md.something-else"
    young = tmp_path / f".w.md.fuzzinit-{dead.pid}-young1"
    for path in (stale, live, other, young):
        path.write_text("half")
    for path in (stale, live, other):
        os.utime(path, (time.time() - 60, time.time() - 60))
    # A live writer holds its temporary locked (another PID namespace
    # would not see its pid, so the lock is what counts).
    with open(live) as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert sweep_temporaries(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [live.name, other.name, young.name])
    # A folder of that name, or one that cannot be removed, is passed over.
    (tmp_path / f".v.md.fuzzinit-{dead.pid}-dir123").mkdir()
    assert sweep_temporaries(tmp_path) == [live]


def test_a_symlink_stays_a_link_and_a_fifo_is_written_through(
        tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()))
    reader.start()
    write_atomic(fifo, "through the pipe")
    reader.join(timeout=10)
    assert got == ["through the pipe"]
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


@pytest.mark.parametrize("where", ["fuzzinit.search.causal_core",
                                   "fuzzinit.cli.write_trace"])
def test_a_signal_after_the_failure_was_found_loses_nothing(
        where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """SIGTERM while the failure is reduced, or while it is written: the
    finding is still printed and saved, and the run exits 1."""
    import importlib

    from fuzzinit.cli import main

    module_name, func_name = where.rsplit(".", 1)
    module = importlib.import_module(module_name)
    real = getattr(module, func_name)
    sent: list[bool] = []

    def with_signal(*args: object, **kwargs: object) -> object:
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, func_name, with_signal)
    monkeypatch.chdir(tmp_path)
    status = main(["run", str(PINNED), "--seed", "1", "--db", "none"])
    out, err = capsys.readouterr()
    assert sent and status == 1, (out, err)
    assert "causal core (5 of" in out
    assert len(list(tmp_path.glob("corpus/*/*.json"))) == 1
    assert len(list(tmp_path.glob("reports/fred-pinned-*.md"))) == 1


def test_constraints_save_their_rules_when_stdout_is_full(
        tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = fz(tmp_path, "constraints", str(FIXED), "--examples", "300",
                  stdout=full.fileno())
    assert proc.returncode == 2
    assert one_line(proc.stderr) == (
        f"fuzzinit: error: I/O error on standard output: {ENOSPC}")
    saved = list((tmp_path / "corpus/upstream-fix-sev-es/constraints")
                 .glob("*.json"))
    assert len(saved) >= 1
