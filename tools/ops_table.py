"""Write the README's op table from the op definitions (`make docs`).

Run: .venv/bin/python tools/ops_table.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from fuzzinit.model.vocabulary import markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- ops table"
END = "<!-- end ops table -->"


def main() -> int:
    text = README.read_text(encoding="utf-8")
    if START not in text or END not in text:
        print(f"ops_table: {README} has no {START!r} .. {END!r} markers",
              file=sys.stderr)
        return 2
    head = text.index("\n", text.index(START)) + 1
    new = text[:head] + markdown_table() + text[text.index(END):]
    if new != text:
        README.write_text(new, encoding="utf-8")
        print(f"ops_table: {README.name} updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
