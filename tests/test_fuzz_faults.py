"""`fuzzinit fuzz` when things go wrong: full and read-only disks (real
tmpfs and read-only bind mounts), files where folders belong, signals, a
killed campaign's processes and temporary folders, --jobs beyond the cores.
A campaign never ends clean on a failure and never leaves a process or a
folder behind."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("atheris")

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models/upstream-fix-sev-es.toml"
CORES = len(os.sched_getaffinity(0))
ENOSPC = ("No space left on device (ENOSPC) while checking the folder is"
          " writable; fix: free space on that disk or give --corpus a folder"
          " on another one, then run again")


def fuzz(cwd: Path, *args: str, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fuzzinit", "fuzz", *args], cwd=cwd,
        capture_output=True, text=True, timeout=60, check=False,
        env=env)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line of an error: exit 2, nothing else on stderr."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount ({proc.stderr.strip()}): needs root")


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    """Folders to unmount after the test, last mounted first."""
    done: list[Path] = []
    yield done
    for path in reversed(done):
        subprocess.run(["umount", "-l", str(path)], check=False)


def tiny_disk(path: Path, mounts: list[Path], free_pages: int) -> None:
    """A 64 KiB tmpfs at `path` with `free_pages` pages (4 KiB) left."""
    path.mkdir(parents=True)
    mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(path))
    mounts.append(path)
    with open(path / ".filler", "wb") as fh:
        fh.write(b"\0" * (16 - free_pages) * 4096)


def test_full_corpus_disk_is_an_error_not_a_clean_campaign(
        tmp_path: Path, mounts: list[Path]) -> None:
    corpus = tmp_path / "corpus"
    tiny_disk(corpus, mounts, free_pages=0)
    proc = fuzz(tmp_path, str(PINNED), "--corpus", str(corpus), "--time",
                "3")
    assert error_line(proc) == (
        f"fuzzinit: error: {corpus}/fred-pinned-sev-es-ap/inputs: {ENOSPC}")
    assert proc.stdout == ""


def test_a_finding_that_cannot_be_saved_ends_the_campaign_as_an_error(
        tmp_path: Path, mounts: list[Path]) -> None:
    # One page left: the start-up probe passes, the 5 KiB trace does not.
    crashes = tmp_path / "corpus/fred-pinned-sev-es-ap/crashes"
    tiny_disk(crashes, mounts, free_pages=1)
    proc = fuzz(tmp_path, str(PINNED), "--runs", "20000", "--seed", "1")
    assert error_line(proc) == (
        "fuzzinit: error: corpus/fred-pinned-sev-es-ap/crashes/"
        "0fbf95b2e0e0.json: No space left on device (ENOSPC) while saving a"
        " finding; finding triple_fault 0fbf95b2e0e0 (5 events) not saved;"
        " fix: free space on that disk or give --corpus a folder on another"
        " one, then run again")
    assert [p.name for p in crashes.iterdir()] == [".filler"]


def test_corpus_inputs_libfuzzer_cannot_write_end_the_campaign(
        tmp_path: Path, mounts: list[Path]) -> None:
    # libFuzzer ignores its write errors; the upstream fix keeps 6 inputs.
    inputs = tmp_path / "corpus/upstream-fix-sev-es/inputs"
    tiny_disk(inputs, mounts, free_pages=1)
    proc = fuzz(tmp_path, str(FIXED), "--time", "5", "--seed", "1")
    assert error_line(proc) == (
        f"fuzzinit: error: corpus/upstream-fix-sev-es/inputs: {ENOSPC}")


@pytest.mark.parametrize("existing", [True, False])
def test_read_only_corpus(tmp_path: Path, mounts: list[Path],
                          existing: bool) -> None:
    corpus = tmp_path / "corpus"
    if existing:
        (corpus / "upstream-fix-sev-es/inputs").mkdir(parents=True)
        (corpus / "upstream-fix-sev-es/crashes").mkdir()
    else:
        corpus.mkdir()
    mount("--bind", str(corpus), str(corpus))
    mounts.append(corpus)
    mount("-o", "remount,bind,ro", str(corpus))
    proc = fuzz(tmp_path, str(FIXED), "--corpus", str(corpus), "--time", "2")
    place = f"{corpus}/upstream-fix-sev-es"
    problem = (f"{place}/inputs: Read-only file system (EROFS) while checking"
               " the folder is writable" if existing else
               f"{place}: Read-only file system (EROFS) while creating the"
               f" folder {place}/inputs")
    assert error_line(proc) == (
        f"fuzzinit: error: {problem}; fix: make it writable or give --corpus"
        " a writable folder")


@pytest.mark.parametrize(("file", "args", "named"), [
    ("c", ("--corpus", "c"), "c"),
    ("corpus/upstream-fix-sev-es/inputs", (),
     "corpus/upstream-fix-sev-es/inputs"),
    ("corpus/upstream-fix-sev-es/crashes", (),
     "corpus/upstream-fix-sev-es/crashes"),
    ("r", ("--reports", "r"), "r")])
def test_a_file_where_a_folder_belongs(tmp_path: Path, file: str,
                                       args: tuple[str, ...],
                                       named: str) -> None:
    (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / file).write_text("")
    proc = fuzz(tmp_path, str(FIXED), "--runs", "10", *args)
    option = "--reports" if file == "r" else "--corpus"
    folder = {"c": "c/upstream-fix-sev-es/inputs", "r": "r"}.get(file, file)
    assert error_line(proc) == (
        f"fuzzinit: error: {named}: Not a directory (ENOTDIR) while creating"
        f" the folder {folder}; fix: expected a folder there: move the file"
        f" away or give {option} another folder")


def test_jobs_above_the_cores_is_an_error(tmp_path: Path) -> None:
    proc = fuzz(tmp_path, str(FIXED), "--jobs", str(CORES + 1), "--runs",
                "10")
    assert error_line(proc) == (
        f"fuzzinit: error: --jobs {CORES + 1}: expected 1 to {CORES} (the"
        f" CPU cores fuzzinit may use here); fix: --jobs {CORES} or fewer")
    assert not (tmp_path / "corpus").exists()


def test_sigterm_prints_the_summary_and_exits_143(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzinit", "fuzz", str(FIXED)], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 143, err
    lines = out.splitlines()
    assert lines[0].startswith("upstream-fix-sev-es: campaign interrupted"
                               " after ")
    assert [line.split()[0] for line in lines[1:]] == [
        "execs", "exec/s", "corpus", "coverage", "distinct", "findings"]
    assert lines[5] == "  distinct failures  0 (0 new)"


def _marked(mark: str) -> list[tuple[str, float]]:
    """Command line and age (s) of each live process whose environment
    has `mark`."""
    found = []
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark.encode() not in (entry / "environ").read_bytes():
                continue
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().decode()
        except OSError:
            continue
        start = int(stat[stat.rindex(")") + 2:].split()[19]) / tick
        found.append((cmdline, uptime - start))
    return found


def _time_left(process: tuple[str, float]) -> float:
    """How long a fork-mode job that is past its start-up has left to run:
    libFuzzer gives job N min(N, 300) s (FuzzerFork.cpp), the flag it adds
    just before -stop_file (the first -max_total_time is the campaign's)."""
    cmdline, age = process
    m = re.search(r"-max_total_time=(\d+)[\x00 ]-stop_file=", cmdline)
    return int(m.group(1)) - age if m and age > 1.2 else 0


@pytest.mark.skipif(CORES < 2, reason="--jobs 2 needs two cores")
def test_sigkill_of_the_campaign_kills_every_worker_and_the_next_run_cleans(
        tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    mark = f"FUZZINIT_TEST_MARK={os.getpid()}-{time.monotonic_ns()}"
    env = dict(os.environ, TMPDIR=str(tmp),
               FUZZINIT_TEST_MARK=mark.split("=")[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzinit", "fuzz", str(FIXED), "--jobs", "2",
         "--time", "30"], cwd=tmp_path, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill when a worker is fuzzing (past its start-up, when it checks
    # that its campaign lives) and would go on for more than 2.5 s.
    deadline = time.monotonic() + 20
    while max(map(_time_left, _marked(mark)), default=0) < 2.5:
        assert time.monotonic() < deadline, _marked(mark)
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 2
    while _marked(mark):
        assert time.monotonic() < deadline, _marked(mark)
        time.sleep(0.05)
    assert [p.name for p in tmp.iterdir()][0].startswith("fuzzinit-")
    rerun = fuzz(tmp_path, str(FIXED), "--runs", "100", env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert list(tmp.iterdir()) == []


def test_the_next_run_keeps_the_folder_of_a_campaign_still_running(
        tmp_path: Path) -> None:
    """A campaign holds a lock on its folder's .lock: that, not its pid
    (which another PID namespace would not see), keeps the folder. An
    unlocked folder goes even under a live pid; an older campaign's folder
    without a lock goes by its dead pid once it is old enough."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    dead = subprocess.Popen(["sleep", "0.1"])
    stat = Path(f"/proc/{dead.pid}/stat").read_text()
    dead_start = stat[stat.rindex(")") + 2:].split()[19]
    dead.wait()
    mine = Path("/proc/self/stat").read_text()
    my_start = mine[mine.rindex(")") + 2:].split()[19]
    live = tmp / f"fuzzinit-{dead.pid}-{dead_start}-abc"
    unlocked = tmp / f"fuzzinit-{os.getpid()}-{my_start}-ghi"
    legacy = tmp / f"fuzzinit-{dead.pid}-{dead_start}-def"
    for folder in (live, unlocked, legacy):
        (folder / "libFuzzerTemp.FuzzWithFork1.dir").mkdir(parents=True)
    (unlocked / ".lock").write_text("")
    os.utime(legacy, (time.time() - 60, time.time() - 60))
    with open(live / ".lock", "w") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        proc = fuzz(tmp_path, str(FIXED), "--runs", "100",
                    env=dict(os.environ, TMPDIR=str(tmp)))
    assert proc.returncode == 0, proc.stderr
    assert list(tmp.iterdir()) == [live]


PLANTED_BUG = '''\
import fuzzinit.fuzz.execute as ex
real = ex.execute
def execute(sc, data):
    if len(data) > 8:
        raise ValueError("planted bug")
    return real(sc, data)
ex.execute = execute
'''


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_exception_in_the_harness_is_an_error_with_its_input(
        tmp_path: Path, jobs: int) -> None:
    if jobs > CORES:
        pytest.skip(f"--jobs {jobs} needs {jobs} cores")
    # A stand-in for a fuzzinit bug, planted in the harness processes only
    # through sitecustomize (fork mode ignores its workers' crashes).
    (tmp_path / "site").mkdir()
    (tmp_path / "site/sitecustomize.py").write_text(PLANTED_BUG)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    proc = fuzz(tmp_path, str(FIXED), "--time", "5", "--jobs", str(jobs),
                env=env)
    # Each worker that hit it saved its input; the line names one.
    m = re.fullmatch(
        r"fuzzinit: error: the harness raised ValueError: planted bug on the"
        r" input corpus/upstream-fix-sev-es/harness-errors/crash-([0-9a-f]+)"
        r" \(a fuzzinit bug; fix: report it with the scenario and the"
        r" `fuzzinit fuzz` command line\)", error_line(proc))
    assert m, proc.stderr
    kept = tmp_path / f"corpus/upstream-fix-sev-es/harness-errors/crash-{m[1]}"
    data = kept.read_bytes()
    assert len(data) > 8 and hashlib.sha1(data).hexdigest() == m[1]


def test_a_closed_stdout_does_not_turn_a_finding_into_exit_0(
        tmp_path: Path) -> None:
    read, write = os.pipe()
    os.close(read)
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "fuzz",
         str(ROOT / "models/fred-pinned-bare-ap-lint1.toml"), "--runs",
         "5000", "--seed", "1"], cwd=tmp_path, stdout=write,
        stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    os.close(write)
    assert proc.returncode == 1, proc.stderr
    assert len(list(tmp_path.glob("corpus/*/crashes/*.json"))) == 1


def test_a_corpus_input_cut_short_is_an_io_error(tmp_path: Path) -> None:
    from fuzzinit.fuzz.faults import CampaignIOError, CorpusCheck

    inputs = tmp_path / "inputs"
    inputs.mkdir()
    (inputs / "seed-by-hand").write_bytes(b"any")
    check = CorpusCheck(inputs)
    whole = hashlib.sha1(b"0123456789").hexdigest()
    (inputs / whole).write_bytes(b"0123456789")
    (inputs / "also-by-hand").write_bytes(b"")
    check.check(final=True)                  # names match: nothing to say
    short = hashlib.sha1(b"abcdef").hexdigest()
    (inputs / short).write_bytes(b"abc")     # what a full disk leaves
    check.check()                            # written just now: not yet
    with pytest.raises(CampaignIOError) as err:
        check.check(final=True)
    assert str(err.value) == (
        f"{inputs}/{short}: Input/output error (EIO) while libFuzzer wrote a"
        " corpus input (3 bytes, cut short); fix: check that disk, then run"
        " again")


def test_a_tmpdir_that_cannot_run_the_harness(tmp_path: Path,
                                              mounts: list[Path]) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m,noexec", "tmpfs", str(tmp))
    mounts.append(tmp)
    proc = fuzz(tmp_path, str(FIXED), "--runs", "10",
                env=dict(os.environ, TMPDIR=str(tmp)))
    assert re.fullmatch(
        f"fuzzinit: error: {tmp}/fuzzinit-[0-9]+-[0-9]+-[a-z0-9_]+/"
        r"fuzzinit_harness\.py: Permission denied \(EACCES\) while starting"
        r" the harness; fix: give TMPDIR a writable folder on a disk that"
        r" lets programs run \(not mounted noexec\)", error_line(proc))
    assert list(tmp.iterdir()) == []


def test_a_read_only_reports_folder(tmp_path: Path,
                                    mounts: list[Path]) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    mount("--bind", str(reports), str(reports))
    mounts.append(reports)
    mount("-o", "remount,bind,ro", str(reports))
    proc = fuzz(tmp_path, str(FIXED), "--runs", "10")
    assert error_line(proc) == (
        "fuzzinit: error: reports: Read-only file system (EROFS) while"
        " checking the folder is writable; fix: make it writable or give"
        " --reports a writable folder")


def test_an_index_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "reports/index.json").mkdir(parents=True)
    proc = fuzz(tmp_path, str(ROOT / "models/fred-pinned-bare-ap-lint1.toml"),
                "--runs", "5000", "--seed", "1")
    assert error_line(proc) == (
        "fuzzinit: error: reports/index.json: Is a directory (EISDIR) while"
        " writing a report; fix: expected a file there: move that folder"
        " away")
    assert len(list(tmp_path.glob("corpus/*/crashes/*.json"))) == 1


def test_an_oversize_channel_message_stays_one_whole_line(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker's message longer than one atomic pipe write is shortened
    field by field, never cut mid-JSON (which would also spoil the next
    line)."""
    from fuzzinit.fuzz import channel

    read_end, write_end = os.pipe()
    monkeypatch.setenv(channel.NOTIFY_FD, str(write_end))
    channel.send({"kind": "exception", "text": "é" * 3000,
                  "input": "crash-abc"})
    channel.send({"kind": "finding", "path": "x.json"})
    os.close(write_end)
    with os.fdopen(read_end) as fh:
        lines = fh.read().splitlines()
    first, second = (channel.parse(line) for line in lines)
    assert first is not None and first["kind"] == "exception"
    assert first["input"] == "crash-abc"
    assert first["text"].endswith("...") and len(lines[0]) < channel.PIPE_BUF
    assert second == {"kind": "finding", "path": "x.json"}
