"""A scenario's `[memory]`: the page tables and the regions each maps
(fuzzinit/model/paging.py), checked and packed for the Machine.

    [memory]
    cr3 = "kernel"                  # the table every CPU starts on
    [memory.tables]
    kernel = ["text:rxg", "data:rwg", "stack:rwg"]
    kexec = ["control:rwx", "ident:rwx"]

An entry is REGION:LETTERS - r present (readable), w writable, x
executable (XD = 0), u user, g global; a region a table does not list is
not mapped there.
"""

from __future__ import annotations

from typing import Any

from fuzzinit.model.ops_memory import ACCESS, WRITE_CR3
from fuzzinit.model.paging import PERM_LETTERS, REGIONS, TABLES, P
from fuzzinit.scenario.source import Ctx

Packed = tuple[list[int], list[int], int]


def memory(doc: dict[str, Any], ctx: Ctx) -> Packed:
    """(per-table permission nibbles, per-table global regions, the start
    table); empty lists when the scenario has no [memory]."""
    mem = doc.get("memory")
    if mem is None:
        return [], [], 0
    if not isinstance(mem, dict):
        raise ctx.error("memory", "is not a table", "[memory]",
                        "write it as a [memory] table")
    for key in mem:
        if key not in ("cr3", "tables"):
            raise ctx.error(f"memory.{key}", "unknown key", "cr3 or tables",
                            "remove it or fix its spelling", needle=key)
    tables = mem.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise ctx.error("memory.tables", "is missing or empty",
                        "a [memory.tables] table naming page tables",
                        'add [memory.tables] with kernel = ["text:rxg", ...]')
    perms = [0] * len(TABLES)
    globs = [0] * len(TABLES)
    for name, entries in tables.items():
        where = f"memory.tables.{name}"
        if name not in TABLES:
            raise ctx.error(where, f"unknown page table {name!r}",
                            "one of " + ", ".join(TABLES),
                            "use the name of the table the kernel loads",
                            needle=name)
        if not isinstance(entries, list) or not all(
                isinstance(e, str) for e in entries):
            raise ctx.error(where, "is not a list of strings",
                            'a list like ["text:rxg", "stack:rwg"]',
                            "quote every entry", needle=name)
        if not entries:
            raise ctx.error(where, "maps no region", "at least one entry",
                            'e.g. ["ident:rwx"], or drop the table',
                            needle=name)
        t = TABLES.index(name)
        seen: set[str] = set()
        for text in entries:
            region, _, letters = text.partition(":")
            if region not in REGIONS:
                raise ctx.error(where, f"unknown region {region!r}",
                                "one of " + ", ".join(REGIONS),
                                "name the region the kernel touches",
                                needle=text)
            if region in seen:
                raise ctx.error(where, f"region {region!r} given twice",
                                "each region once per table",
                                "merge the two entries", needle=text)
            seen.add(region)
            bits = 0
            for ch in letters:
                if ch == "g":
                    globs[t] |= 1 << REGIONS.index(region)
                elif ch in PERM_LETTERS:
                    bits |= PERM_LETTERS[ch]
                else:
                    raise ctx.error(where, f"{text!r}: unknown permission"
                                    f" {ch!r}", "letters of r w x u g",
                                    'e.g. "stack:rwg"', needle=text)
            if not bits & P:
                raise ctx.error(where, f"{text!r} maps nothing readable",
                                "r with any other letter",
                                f'write "{region}:r{letters}", or leave the'
                                " region out to leave it unmapped",
                                needle=text)
            perms[t] |= bits << (4 * REGIONS.index(region))
    first = next(iter(tables))
    cr3 = mem.get("cr3", first)
    if not isinstance(cr3, str) or cr3 not in tables:
        raise ctx.error("memory.cr3", f"{cr3!r} is not a table of"
                        " [memory.tables]", "one of " + ", ".join(tables),
                        "name the table the CPUs start on", needle="cr3")
    return perms, globs, TABLES.index(cr3)


def check_uses(packed: Packed, kinds: list[int], arg_a: list[int],
               texts: list[str], ctx: Ctx) -> None:
    """Memory ops need [memory], and `write_cr3` a table it declares."""
    perms, _, _ = packed
    declared = {TABLES[t] for t, p in enumerate(perms) if p}
    for kind, a, text in zip(kinds, arg_a, texts, strict=True):
        if kind == ACCESS and not perms:
            raise ctx.error("memory", f"{text!r} needs page tables",
                            "a [memory] table", "declare [memory.tables]",
                            needle=text)
        if kind == WRITE_CR3 and TABLES[a] not in declared:
            raise ctx.error("memory.tables", f"{text!r} loads a page table"
                            " the scenario does not declare",
                            "one of " + (", ".join(sorted(declared))
                                         or "(none declared)"),
                            f"add {TABLES[a]} = [...] under [memory.tables]",
                            needle=text)
