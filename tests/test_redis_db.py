"""Several processes share failing orderings through a real Redis server
(Debian redis-server, started here on loopback and stopped after)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
# An NMI in the AP's FRED window: a search from scratch needs a dozen
# orderings or more to hit it.
MODEL = ROOT / "models/fred-pinned-bare-ap-lint1.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; .ci/run installs it")
        pytest.skip("redis-server is not installed: the shared-database test"
                    " needs it (apt-get install redis-server; .ci/run"
                    " installs it)")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.2):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run(folder: Path, url: str, seed: int) -> dict[str, object]:
    folder.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "run", str(MODEL), "--json",
         "--db", url, "--seed", str(seed)], cwd=folder, capture_output=True,
        text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def test_second_process_replays_the_failure_from_redis(
        tmp_path: Path, redis_url: str) -> None:
    first = _run(tmp_path / "machine-a", redis_url, seed=1)
    assert first["from_database"] is False
    assert isinstance(first["first_failure_example"], int)
    assert first["first_failure_example"] > 1   # it had to search
    # Another "machine" (another folder, another seed): the first ordering
    # it runs is the saved failure.
    second = _run(tmp_path / "machine-b", redis_url, seed=2)
    assert second["from_database"] is True
    assert second["first_failure_example"] == 1
    assert second["verdict"] == first["verdict"] == "triple_fault"
    assert second["events"] == first["events"]


def test_unreachable_redis_is_bad_input(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "run", str(MODEL), "--db",
         f"redis://127.0.0.1:{port}"], cwd=tmp_path, capture_output=True,
        text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        f"fuzzinit: error: --db redis://127.0.0.1:{port}: cannot reach"
        " Redis: ")
    assert proc.stderr.count("\n") == 1
