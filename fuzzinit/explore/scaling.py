"""One boot CPU and N application processors from a one-AP scenario, for
benchmarks and reduction tests.

Works on scenario files shaped like models/upstream-fix-*.toml and
models/fred-pinned-*-ap.toml: an `smp_init` routine `["start 1",
"wait_online 1"]`, the AP as the `[[cpu]]` table commented "# the AP",
triggers with `cpus = [1]`. The boot CPU starts every AP, then waits for
each in turn (parallel bringup, LX kernel/cpu.c cpuhp_bringup_mask());
every AP runs the same program.
"""

from __future__ import annotations

import re

from fuzzinit.errors import FuzzinitError

SMP_INIT = 'smp_init = ["start 1", "wait_online 1"]'
AP_MARK = "[[cpu]]  # the AP"


def scaled(text: str, aps: int, kinds: frozenset[str] | None = None) -> str:
    """The scenario text with `aps` APs; `kinds`, if given, keeps only the
    triggers of those kinds."""
    if SMP_INIT not in text or AP_MARK not in text or \
            "[orderings]" not in text:
        raise FuzzinitError("scaled(): expected a one-AP scenario with"
                            f" {SMP_INIT!r} and a {AP_MARK!r} table")
    starts = ", ".join(f'"start {i}"' for i in range(1, aps + 1))
    waits = ", ".join(f'"wait_online {i}"' for i in range(1, aps + 1))
    text = text.replace(SMP_INIT, f"smp_init = [{starts}, {waits}]")
    text = re.sub(r'^name = "([^"]+)"', rf'name = "\1-{aps}ap"', text,
                  count=1, flags=re.M)
    ap = text[text.index(AP_MARK):text.index("[orderings]")]
    text = text.replace(ap, ap * aps)
    every = ", ".join(str(i) for i in range(1, aps + 1))
    head, sep, tail = text.partition("[[orderings.trigger]]")
    tables = [sep + t for t in tail.split(sep)] if sep else []
    if kinds is not None:
        tables = [t for t in tables if _kind(t) in kinds]
    return (head + "".join(tables)).replace("cpus = [1]", f"cpus = [{every}]")


def _kind(table: str) -> str:
    found = re.search(r'^kind = "([^"]+)"', table, re.M)
    return found.group(1) if found else ""
