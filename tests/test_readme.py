"""The README's examples are what the code does."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def _block_after(marker: str) -> str:
    start = README.index(marker)
    lines = []
    for line in README[start:].splitlines()[1:]:
        if line.startswith("    ") or not line.strip():
            lines.append(line[4:])
        if lines and not line.startswith("    ") and line.strip():
            break
    return "\n".join(lines).strip()


def test_quickstart_output_is_what_make_demo_prints(tmp_path: Path) -> None:
    shown = _block_after("and exits 0 when it finds the failure")
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "run",
         str(ROOT / "models/fred-pinned-sev-es-ap.toml"), "--seed", "1"],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    # Timings and the signature differ per run; everything else must match.
    def norm(text: str) -> list[str]:
        text = re.sub(r"\(\d+\.\d\d s,", "(T s,", text)
        text = re.sub(r"-[0-9a-f]{12}\.md|/[0-9a-f]{12}\.json.*", "-SIG", text)
        text = text.replace("-<signature>.md", "-SIG")
        text = text.replace("/<signature>.json", "-SIG")
        text = re.sub(r"/[^ ]*models/", "models/", text)
        return [line.rstrip() for line in text.strip().splitlines()]
    assert norm(shown) == norm(proc.stdout)


def test_scenario_example_in_readme_loads(tmp_path: Path) -> None:
    """The abridged scenario in "Scenario files" is valid TOML the loader
    accepts."""
    start = README.index("```toml\n[scenario]")
    text = README[start + len("```toml\n"):README.index("```", start + 7)]
    tomllib.loads(text)
    path = tmp_path / "readme.toml"
    path.write_text(text)
    from fuzzinit.scenario.load import load
    sc = load(path)
    assert sc.name == "fred-pinned-sev-es-ap"
    assert [t.kind for t in sc.triggers] == ["printk", "printk", "nmi"]


def test_every_op_in_the_readme_table_parses() -> None:
    from fuzzinit.scenario.ops import OP_NAMES
    table = README[README.index("### Ops"):README.index("Symbolic WRMSR")]
    named = set(re.findall(r"`([a-z_0-9]+)[ `]", table))
    assert set(OP_NAMES) <= named, set(OP_NAMES) - named
