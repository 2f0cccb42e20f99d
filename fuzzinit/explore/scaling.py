"""One boot CPU and N application processors from a one-AP scenario, for
benchmarks and reduction tests.

Works on scenario files shaped like models/upstream-fix-*.toml and
models/fred-pinned-*-ap.toml: an `smp_init` routine `["start 1",
"wait_online 1"]` of their own or of the kernel profile they include
(linux/*), the AP as the `[[cpu]]` table commented "# the AP", triggers
with `cpus = [1]`. The boot CPU starts every AP, then waits for
each in turn (parallel bringup, LX kernel/cpu.c cpuhp_bringup_mask());
every AP runs the same program.
"""

from __future__ import annotations

import json
import re
import tomllib

from fuzzinit.errors import FuzzinitError

SMP_INIT = 'smp_init = ["start 1", "wait_online 1"]'
AP_MARK = "[[cpu]]  # the AP"


def scaled(text: str, aps: int, kinds: frozenset[str] | None = None) -> str:
    """The scenario text with `aps` APs; `kinds`, if given, keeps only the
    triggers of those kinds."""
    profile = SMP_INIT not in text and 'include = ["linux/' in text
    if (SMP_INIT not in text and not profile) or AP_MARK not in text or \
            "[orderings]" not in text:
        raise FuzzinitError("scaled(): expected a one-AP scenario with"
                            f" {SMP_INIT!r} (or a linux/ profile's) and a"
                            f" {AP_MARK!r} table")
    starts = ", ".join(f'"start {i}"' for i in range(1, aps + 1))
    waits = ", ".join(f'"wait_online {i}"' for i in range(1, aps + 1))
    smp_init = f"smp_init = [{starts}, {waits}]"
    overrides = ""
    if profile:
        if "[overrides]" in text:
            raise FuzzinitError("scaled(): the scenario has [overrides]"
                                " already; add smp_init to it by hand")
        overrides = f"\n[overrides]\n{smp_init}\n"
    else:
        text = text.replace(SMP_INIT, smp_init)
    text = re.sub(r'^name = "([^"]+)"', rf'name = "\1-{aps}ap"', text,
                  count=1, flags=re.M)
    ap = text[text.index(AP_MARK):text.index("[orderings]")]
    text = text.replace(ap, ap * aps)
    # [orderings] is the last table: it is written again from its parsed
    # form, with the long-form triggers (inline or not) widened to every AP
    # and filtered by kind.
    head = text[:text.index("[orderings]")]
    orderings = tomllib.loads(text[text.index("[orderings]"):]).get(
        "orderings", {})
    every = list(range(1, aps + 1))
    lines = ["[orderings]"]
    lines += [f"{key} = {_value(value)}" for key, value in orderings.items()
              if key != "trigger"]
    for trig in orderings.get("trigger", []):
        if kinds is not None and trig.get("kind") not in kinds:
            continue
        if trig.get("cpus") == [1]:
            trig = dict(trig, cpus=every)
        lines += ["[[orderings.trigger]]"] + [
            f"{key} = {_value(value)}" for key, value in trig.items()]
    return head + "\n".join(lines) + "\n" + overrides


def _value(value: object) -> str:
    """A TOML value of the kinds [orderings] holds."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}"
                                for k, v in value.items()) + " }"
    raise FuzzinitError(f"scaled(): cannot write {value!r} back")
