"""Where the model decides each rule: `# rule: ID` comments in
fuzzinit/model/*.py, turned into the statements they mark.

A marker on a line of its own marks the next statement; at the end of a
line, the statement that starts on that line. What a marker covers:

- a `def`: its body (the rule is reached when the function runs);
- an `if` or `elif`: its body only, not the test or the branches after it
  (the rule is reached when the branch is taken);
- any other statement: the statement and what it contains.

Module-level statements other than `def` cannot be marked: they run at
import, so they would count as reached by every search. One marker may
name several ids (`# rule: double-fault, fred-delivery`).

`python -m fuzzinit.reach.markers` lists each rule's statements; with
`--check` it exits 1 naming unknown ids, bad placements and rules with no
marker.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fuzzinit.reach.rules import BY_ID, RULES

MODEL = Path(__file__).resolve().parent.parent / "model"
MARKER = re.compile(r"#\s*rule:\s*(.*)$")
ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*$")


@dataclass(frozen=True)
class Statement:
    """One statement a rule covers: `lines` are the source lines that
    belong to it alone (a compound statement's header, a simple
    statement's whole extent); executing any of them executes it."""
    path: str
    line: int
    lines: tuple[int, ...]


@dataclass
class Span:
    """A rule's statements across the model's files."""
    rule: str
    statements: list[Statement] = field(default_factory=list)
    markers: list[tuple[str, int]] = field(default_factory=list)


class MarkerError(ValueError):
    pass


def _own_lines(node: ast.stmt) -> tuple[int, ...]:
    """The lines of `node` that are not lines of a statement inside it."""
    end = node.end_lineno or node.lineno
    inner = [child for child in ast.iter_child_nodes(node)
             if isinstance(child, ast.stmt)]
    if inner:
        end = min(c.lineno for c in inner) - 1
        # A header that spans lines stays with the header (a def's
        # decorators start before its lineno and are not in it).
    return tuple(range(node.lineno, max(end, node.lineno) + 1))


def _statements(nodes: Iterable[ast.stmt], path: str) -> list[Statement]:
    out: list[Statement] = []
    for node in nodes:
        for sub in ast.walk(node):
            if _docstring(sub):
                continue  # never reported as run: not a statement to count
            if isinstance(sub, ast.stmt):
                out.append(Statement(path, sub.lineno, _own_lines(sub)))
    return out


def _docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and \
        isinstance(node.value, ast.Constant) and \
        isinstance(node.value.value, str)


def _covered(node: ast.stmt, path: str) -> list[Statement]:
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return _statements(node.body, path)
    if isinstance(node, ast.If):
        return _statements(node.body, path)
    return _statements([node], path)


def _comments(source: str) -> list[tuple[int, int, bool, str]]:
    """(line, column, alone on its line, text after `rule:`) per
    marker."""
    out = []
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        found = MARKER.match(tok.string)
        if found is None:
            continue
        row, col = tok.start
        alone = not lines[row - 1][:col].strip()
        out.append((row, col, alone, found.group(1).strip()))
    return out


def _ids(text: str, where: str) -> list[str]:
    ids = [x.strip() for x in text.split(",")]
    for rid in ids:
        if not ID.match(rid):
            raise MarkerError(f"{where}: malformed rule id {rid!r}")
        if rid not in BY_ID:
            raise MarkerError(f"{where}: unknown rule id {rid!r}; the ids"
                              " are in fuzzinit/reach/rules.py")
    return ids


def scan_source(source: str, path: str) -> dict[str, Span]:
    """The spans marked in one file's source."""
    tree = ast.parse(source, path)
    nodes = [n for n in ast.walk(tree) if isinstance(n, ast.stmt)]
    depth = _depths(tree)
    in_def = _inside_functions(tree)
    spans: dict[str, Span] = {}
    for row, col, alone, text in _comments(source):
        where = f"{path}:{row}"
        ids = _ids(text, where)
        if alone:
            inside = [n for n in nodes if n.lineno < row <=
                      (n.end_lineno or n.lineno) and not _compound(n)]
            if inside:
                raise MarkerError(f"{where}: marker inside a statement that"
                                  f" starts on line {inside[0].lineno}; put"
                                  " it on the line above that statement")
            after = [n for n in nodes if n.lineno > row]
            target = min(after, key=lambda n: (n.lineno, -depth[id(n)]),
                         default=None)
            if target is None:
                raise MarkerError(f"{where}: marker with no statement after"
                                  " it")
            if target.col_offset != col:
                raise MarkerError(f"{where}: marker at column {col + 1} but"
                                  f" the next statement (line"
                                  f" {target.lineno}) is at column"
                                  f" {target.col_offset + 1}; indent the"
                                  " marker like the statement it marks")
        else:
            here = [n for n in nodes if n.lineno == row]
            target = min(here, key=lambda n: -depth[id(n)], default=None)
            if target is None:
                raise MarkerError(f"{where}: no statement starts on this"
                                  " line; put the marker on its own line"
                                  " above the statement it marks")
        if id(target) not in in_def and not isinstance(
                target, ast.FunctionDef | ast.AsyncFunctionDef):
            raise MarkerError(f"{where}: a statement outside a function runs"
                              " at import; mark the function that applies"
                              " it")
        covered = _covered(target, path)
        if not covered:
            raise MarkerError(f"{where}: the marked statement has no body")
        for rid in ids:
            span = spans.setdefault(rid, Span(rid))
            span.statements += covered
            span.markers.append((path, row))
    return spans


COMPOUND = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If,
            ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith,
            ast.Try, ast.Match)


def _compound(node: ast.stmt) -> bool:
    return isinstance(node, COMPOUND) or type(node).__name__ == "TryStar"


def _inside_functions(tree: ast.AST) -> set[int]:
    """id() of every statement inside a function body."""
    out: set[int] = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            for stmt in fn.body:
                out.update(id(n) for n in ast.walk(stmt))
    return out


def _depths(tree: ast.AST) -> dict[int, int]:
    """How deep each node is nested, by id() (the innermost statement wins
    when several start on one line)."""
    out: dict[int, int] = {}
    todo: list[tuple[ast.AST, int]] = [(tree, 0)]
    while todo:
        node, depth = todo.pop()
        out[id(node)] = depth
        todo += [(child, depth + 1) for child in ast.iter_child_nodes(node)]
    return out


def scan(folder: Path = MODEL) -> dict[str, Span]:
    """Every rule's span over the model's files (absolute paths, as
    coverage.py names measured files)."""
    spans: dict[str, Span] = {r.id: Span(r.id) for r in RULES}
    for path in sorted(folder.glob("*.py")):
        for rid, span in scan_source(path.read_text(), str(path)).items():
            spans[rid].statements += span.statements
            spans[rid].markers += span.markers
    for span in spans.values():
        # A statement marked twice for one rule counts once.
        span.statements = sorted(set(span.statements),
                                 key=lambda s: (s.path, s.line))
    return spans


def unmarked(spans: dict[str, Span]) -> list[str]:
    return [r.id for r in RULES if not spans[r.id].markers]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        spans = scan()
    except (MarkerError, SyntaxError) as exc:
        print(f"markers: {exc}", file=sys.stderr)
        return 1
    missing = unmarked(spans)
    if "--check" not in args:
        for rule in RULES:
            span = spans[rule.id]
            where = ", ".join(f"{Path(p).name}:{n}" for p, n in span.markers)
            print(f"{rule.number:2d} {rule.id:22s} {len(span.statements):4d}"
                  f" statements  {where or '(no marker)'}")
    if missing:
        print(f"markers: no marker for {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
