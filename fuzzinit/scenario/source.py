"""One TOML file of a scenario - the scenario itself or a profile it
includes - read, decoded and parsed, with the line look-up its errors use.

Every problem is a ScenarioError naming the file (and line where it can be
found), what was expected and how to fix it - never a traceback.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzzinit.errors import ScenarioError


class Ctx:
    """Error construction with line look-up in the raw text."""

    def __init__(self, path: str, raw: str) -> None:
        self.path = path
        self.lines = raw.splitlines()

    def line_of(self, needle: str, start: int = 0) -> int | None:
        for i in range(start, len(self.lines)):
            if needle in self.lines[i]:
                return i + 1
        return None

    def cpu_line(self, index: int) -> int:
        seen = -1
        for i, text in enumerate(self.lines):
            if text.strip().startswith("[[cpu]]"):
                seen += 1
                if seen == index:
                    return i
        return 0

    def error(self, where: str, problem: str, expected: str = "",
              hint: str = "", needle: str | None = None,
              start: int = 0) -> ScenarioError:
        line = self.line_of(needle, start) if needle else None
        if line is None and where:
            key = where.split(".")[-1].split("[")[0]
            line = self.line_of(key, start)
        return ScenarioError(self.path, where, problem, expected, hint, line)


@dataclass(frozen=True)
class Source:
    path: Path
    data: bytes             # the file's bytes (hashed into the scenario's)
    doc: dict[str, Any]     # the parsed TOML
    ctx: Ctx


def read(path: Path) -> Source:
    """Read and parse one TOML file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(str(path), "", f"cannot read: {exc.strerror}",
                            "a readable .toml file",
                            "check the path (fuzzinit models lists them)"
                            ) from exc
    if data.startswith(b"\xef\xbb\xbf"):
        raise ScenarioError(str(path), "", "starts with a UTF-8 byte order"
                            " mark", "UTF-8 without a BOM (TOML forbids it)",
                            "save the file as plain UTF-8", 1)
    try:
        raw = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(path), "", f"not UTF-8 text (byte {exc.start}:"
                            f" 0x{data[exc.start]:02x})", "a UTF-8 file",
                            "convert it, e.g. iconv -f latin1 -t utf-8",
                            data[:exc.start].count(b"\n") + 1) from exc
    try:
        doc = tomllib.loads(raw)
    except RecursionError as exc:
        raise ScenarioError(str(path), "", "arrays or tables nested too"
                            " deeply to read", "a scenario's few levels of"
                            " nesting", "flatten the nesting") from exc
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        line = None
        if "(at line " in msg:
            line = int(msg.split("(at line ")[1].split(",")[0])
            msg = msg.split(" (at line ")[0]
        raise ScenarioError(str(path), "", f"invalid TOML: {msg}",
                            "TOML syntax (https://toml.io)",
                            "check quotes, brackets and commas on that line",
                            line) from exc
    return Source(path, data, doc, Ctx(str(path), raw))
