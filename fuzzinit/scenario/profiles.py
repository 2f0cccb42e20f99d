"""Kernel profiles: the call orders of a kernel version as shared routine
files that a scenario includes and overrides routine by routine.

A top-level `include = ["linux/v6.12"]` (in a scenario or in a profile)
names a profile folder - every `*.toml` in it, in name order - or one
`.toml` file (the suffix may be left out). A name is looked up beside the
including file first, then in the library installed with fuzzinit
(`fuzzinit/library/`), so a scenario in any folder can include
`linux/v6.12`. Each file is read once, in depth-first include order; an
include cycle is an error.

`linux/commits/<sha>.toml` files are overlays of one upstream commit each,
included after the profile they apply to (`include = ["linux/v6.12",
"linux/commits/3645eb7e3915"]`): "this kernel, with this one change".

A profile file holds `[profile]` (its title and sources), `[kernel]`
defaults, `[routines]` and `[overrides]`, and may include others. Later
files build on earlier ones, the scenario last:
- `[routines]` defines new routines; a name an included file already
  defines is an error (replacing one must be said: `[overrides]`);
- `[overrides]` replaces routines; a name no included file defines is an
  error (a typo would otherwise add a routine nothing calls);
- `[kernel]` keys replace the included ones key by key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzinit.scenario.ops import canonical
from fuzzinit.scenario.source import Ctx, Source, read

LIBRARY = Path(__file__).resolve().parent.parent / "library"
PROFILE_TABLES = ("include", "profile", "routines", "overrides", "kernel")
PROFILE_KEYS = ("title", "kernel", "source", "notes")


@dataclass
class Merged:
    """The routines and kernel settings of a scenario and its profiles."""
    routines: dict[str, list[str]] = field(default_factory=dict)
    # The file that gave each routine its body, and that table's line.
    origin: dict[str, tuple[Ctx, int]] = field(default_factory=dict)
    kernel: dict[str, Any] = field(default_factory=dict)
    scenario_path: str = ""

    def from_profile(self, routine: str) -> bool:
        return self.origin[routine][0].path != self.scenario_path


def library_profiles() -> list[str]:
    """The profile folders of the installed library, e.g. linux/v6.12 (not
    the commit overlays of linux/commits/, included one by one)."""
    if not LIBRARY.is_dir():
        return []
    return sorted({str(p.parent.relative_to(LIBRARY))
                   for p in LIBRARY.glob("*/*/*.toml")
                   if p.parent.name != "commits"})


def includes_of(src: Source) -> list[str]:
    value = src.doc.get("include", [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v
                                              for v in value):
        raise src.ctx.error("include", "is not a list of profile names",
                            'include = ["linux/v6.12"]',
                            "quote each profile folder or file",
                            needle="include")
    return list(value)


def _resolve(entry: str, src: Source) -> list[Path]:
    if entry.startswith("/") or entry in (".", "..") or "\0" in entry:
        raise src.ctx.error("include", f"{entry!r} is not a profile name",
                            "a folder or .toml file relative to this file,"
                            " or a library profile such as linux/v6.12",
                            "name the profile folder or file",
                            needle=entry)
    for base in (src.path.parent, LIBRARY):
        cand = base / entry
        if cand.is_dir():
            files = sorted(cand.glob("*.toml"))
            if not files:
                raise src.ctx.error("include", f"{entry!r}: the folder"
                                    f" {cand} holds no .toml file",
                                    "a profile folder of routine files",
                                    "check the path", needle=entry)
            return files
        for path in (cand, cand.with_name(cand.name + ".toml")):
            if path.is_file():
                return [path]
    known = ", ".join(library_profiles()) or "none installed"
    raise src.ctx.error("include", f"{entry!r}: no profile folder or .toml"
                        " file of that name", "a path relative to this file,"
                        f" or a library profile ({known})",
                        "check the spelling; fuzzinit models lists the"
                        " library", needle=entry)


def gather(main: Source) -> list[Source]:
    """Every file `main` includes, directly or not, each once, in the
    order their contents apply (an included file before its includer)."""
    out: list[Source] = []
    seen: set[Path] = set()

    def visit(src: Source, stack: list[Path]) -> None:
        for entry in includes_of(src):
            for path in _resolve(entry, src):
                real = path.resolve()
                if real in stack:
                    names = " -> ".join(p.name for p in stack + [real])
                    raise src.ctx.error("include", f"include cycle: {names}",
                                        "includes that end",
                                        "remove one include of the cycle",
                                        needle=entry)
                if real in seen:
                    continue
                seen.add(real)
                child = read(path)
                _check_profile(child)
                visit(child, stack + [real])
                out.append(child)

    visit(main, [main.path.resolve()])
    return out


def _check_profile(src: Source) -> None:
    for key, value in src.doc.items():
        if key not in PROFILE_TABLES:
            raise src.ctx.error(key, "not allowed in a profile",
                                "one of " + ", ".join(PROFILE_TABLES),
                                "a profile holds routines and kernel"
                                " defaults; CPUs, platform and orderings"
                                " belong in the scenario", needle=key)
        if key != "include" and not isinstance(value, dict):
            raise src.ctx.error(key, "is not a table", f"[{key}]",
                                f"write it as a [{key}] table")
    for key in src.doc.get("profile", {}):
        if key not in PROFILE_KEYS:
            raise src.ctx.error(f"profile.{key}", "unknown key",
                                "one of " + ", ".join(PROFILE_KEYS),
                                "remove it or fix its spelling", needle=key)


def merge(main: Source, profiles: list[Source]) -> Merged:
    """Apply the profiles, then the scenario, table by table."""
    merged = Merged(scenario_path=main.ctx.path)
    for src in [*profiles, main]:
        ctx = src.ctx
        inherited = set(merged.routines)   # what earlier files define
        for table in ("routines", "overrides"):
            body = src.doc.get(table, {})
            if not isinstance(body, dict):
                raise ctx.error(table, "is not a table", f"[{table}]",
                                f"write it as a [{table}] table")
            line = ctx.line_of(f"[{table}]") or 0
            for name, ops in body.items():
                _check_body(ctx, table, name, ops, line)
                if table == "routines" and name in merged.routines:
                    raise ctx.error(f"routines.{name}", "is already defined"
                                    f" by {merged.origin[name][0].path}",
                                    "a new routine name, or the routine"
                                    " under [overrides]",
                                    f"move {name} to [overrides] to replace"
                                    " the profile's", needle=f"{name} =",
                                    start=line)
                if table == "overrides" and name not in inherited:
                    known = ", ".join(sorted(merged.routines)) or "none"
                    raise ctx.error(f"overrides.{name}", "overrides a routine"
                                    " that no included profile defines",
                                    f"one of: {known}",
                                    "fix the name, or define it under"
                                    " [routines]", needle=f"{name} =",
                                    start=line)
                merged.routines[name] = [canonical(x) for x in ops]
                merged.origin[name] = (ctx, line)
        kernel = src.doc.get("kernel", {})
        if isinstance(kernel, dict):
            merged.kernel.update(kernel)
    return merged


def _check_body(ctx: Ctx, table: str, name: str, ops: Any, line: int) -> None:
    if not isinstance(ops, list) or not all(isinstance(x, str) for x in ops):
        raise ctx.error(f"{table}.{name}", "is not a list of op strings",
                        '["op", "op", ...]', "quote every op",
                        needle=f"{name} =", start=line)
