"""Load and validate a scenario file (models/*.toml) into flat int tables.

Every problem is a ScenarioError naming the file, the key (and line where
it can be found), what was expected and how to fix it - never a traceback.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fuzzinit.model import machine as mc
from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_platform
from fuzzinit.model import ops_smp as smp
from fuzzinit.model.apic import APIC_MODES
from fuzzinit.model.arch import (
    CR4_ALWAYS,
    CR4_BITS,
    FEATURE_CR4,
    FEATURES,
    MSRS,
)
from fuzzinit.model.ops_msr import msr_number
from fuzzinit.model.outcome import NAMES as OUTCOMES
from fuzzinit.model.vocabulary import OPS
from fuzzinit.scenario.memory import check_uses, memory
from fuzzinit.scenario.ops import OpSyntaxError, canonical, parse_op
from fuzzinit.scenario.profiles import LIBRARY, gather, merge
from fuzzinit.scenario.source import Ctx, Source, read
from fuzzinit.scenario.user import check_user_windows

# What part of a CPU's life, or which feature, a library scenario is about.
CATEGORIES = ("ap-bringup", "boot-cpu", "hotplug", "s3-resume", "s4-resume",
              "kexec", "reboot", "efi-runtime", "microcode", "sev", "tdx",
              "xen", "cet-ibt", "lass", "pcid", "fsgsbase", "fred-stacks",
              "gdt-percpu", "cr-pinning")
EXPECTABLE = tuple(n for n in OUTCOMES if n != "invalid")
NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# Report files are named <name>-<signature>.html and written through a
# temporary .<that>.fuzzinit-<pid>-<random>: 255 bytes leave room for 120.
MAX_NAME = 120
MAX_NESTING = 64         # routine calls inside routine calls
MAX_PROGRAM = 10_000     # ops in one CPU's expanded program
TABLES = ("include", "scenario", "platform", "kernel", "memory",
          "routines", "overrides", "cpu", "orderings")
FAILABLE = ("triple_fault", "guest_terminated", "hang", "warn", "unhandled",
            "never_online", "pin_cleared", "reset")
# Ops a trigger may name, and how many words each kind has (the op's
# trigger_words, fuzzinit/model/ops_*.py).
TRIGGER_WORDS: dict[str, tuple[int, int]] = {
    op.name: op.trigger_words for op in OPS if op.trigger_words != (0, 0)}
TRIGGER_KINDS = tuple(TRIGGER_WORDS)
TRIGGER_HELP = "one of " + ", ".join(
    op.name if op.trigger_words == (1, 1) else
    '"' + op.syntax.replace("+BIT/-BIT..", "-BIT") + '"'
    for op in OPS if op.trigger_words != (0, 0))
CONSOLES = {"8250": (True, True), "early_serial": (True, False),
            "none": (False, False)}  # name -> (port I/O, CON_ANYTIME)
DEFAULT_INTERCEPTS = {"bare": [], "sev-es": ["APIC_BASE"],
                      "sev-snp": ["APIC_BASE"], "tdx": []}
DEFAULT_PINNED = ["smep", "smap", "umip", "fsgsbase", "cet"]
DEFAULT_ENTRY_CR4 = ["pae", "pse", "pge"]


@dataclass(frozen=True)
class Trigger:
    """Up to `count` events `op` on `cpu`, each once every program slot in
    `after` is done and while no slot in `before` is done."""
    kind: str
    op: int
    cpu: int
    count: int
    after: tuple[int, ...]
    before: tuple[int, ...]


@dataclass
class Scenario:
    path: str
    name: str
    title: str
    sources: list[str]
    notes: str
    category: str | None      # what part of a CPU's life (CATEGORIES)
    kernel: str | None        # affected kernel versions, or the profile's
    fixed_in: str | None      # the scenario with the fix (a path)
    expect: str | None
    fail_on: frozenset[str]
    accepts: frozenset[str]      # failing outcomes this code ends in by design
    guest: str
    sha256: str
    machine: mc.Machine
    machine_args: dict[str, Any]
    programs: list[list[int]]              # op ids per CPU, program order
    routine_of: list[list[str]]            # routine path per program slot
    triggers: list[Trigger]
    before: list[tuple[tuple[int, int], tuple[int, int]]]
    mode: str = "interleave"
    op_index: dict[str, int] = field(default_factory=dict)

    @property
    def ncpu(self) -> int:
        return len(self.programs)

    def op_text(self, op: int) -> str:
        return self.machine.op_text[op]


def load(path: str | Path) -> Scenario:
    """Read, parse and validate a scenario file and the profiles it
    includes."""
    main = read(Path(path))
    profiles = gather(main)
    digest = hashlib.sha256(main.data)
    for src in profiles:
        digest.update(src.data)  # a changed profile changes the scenario
    return build(main, digest.hexdigest(), profiles)


def _table(doc: dict[str, Any], key: str, ctx: Ctx) -> dict[str, Any]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise ctx.error(key, "is not a table", f"[{key}]",
                        f"write it as a [{key}] table")
    return value


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], where: str,
                ctx: Ctx) -> None:
    for key in table:
        if key not in allowed:
            raise ctx.error(f"{where}.{key}", "unknown key",
                            "one of " + ", ".join(allowed),
                            "remove it or fix its spelling", needle=key)


def _str(table: dict[str, Any], key: str, where: str, ctx: Ctx,
         default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise ctx.error(f"{where}.{key}",
                        "is missing" if value is None else "is not a string",
                        "a string", f'add {key} = "..." under [{where}]')
    return value


def _strlist(table: dict[str, Any], key: str, where: str, ctx: Ctx,
             default: list[str]) -> list[str]:
    value = table.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str)
                                              for v in value):
        raise ctx.error(f"{where}.{key}", "is not a list of strings",
                        'a list like ["a", "b"]', "quote every entry")
    return list(value)


def _bool(table: dict[str, Any], key: str, where: str, ctx: Ctx,
          default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise ctx.error(f"{where}.{key}", "is not a boolean", "true or false",
                        f"write {key} = true or {key} = false")
    return value


def _cr4_mask(names: list[str], where: str, ctx: Ctx) -> int:
    mask = 0
    for name in names:
        if name.lower() not in CR4_BITS:
            raise ctx.error(where, f"unknown CR4 bit {name!r}",
                            "one of " + ", ".join(CR4_BITS),
                            "use the lower-case SDM name", needle=name)
        mask |= 1 << CR4_BITS[name.lower()]
    return mask


def _library_keys(meta: dict[str, Any], ctx: Ctx, path: Path,
                  profiles: list[Source]
                  ) -> tuple[str | None, str | None, str | None]:
    """`category`, `kernel` (default: the last included profile's) and
    `fixed_in` (a scenario file beside this one)."""
    category = meta.get("category")
    if category is not None and category not in CATEGORIES:
        raise ctx.error("scenario.category", f"unknown category {category!r}",
                        "one of " + ", ".join(CATEGORIES),
                        "pick the part of the CPU's life the bug is in",
                        needle="category")
    kernel = meta.get("kernel")
    if kernel is not None and not isinstance(kernel, str):
        raise ctx.error("scenario.kernel", "is not a string",
                        'the affected versions, e.g. "v6.9..v6.19"', "",
                        needle="kernel")
    if kernel is None:
        kernels = [src.doc.get("profile", {}).get("kernel")
                   for src in profiles]
        kernel = next((k for k in reversed(kernels) if isinstance(k, str)),
                      None)
    fixed_in = meta.get("fixed_in")
    if fixed_in is not None:
        # Beside this file, else in the library (as includes are), so a
        # copy of a library scenario keeps its link.
        plain = isinstance(fixed_in, str) and fixed_in.endswith(".toml") \
            and "/" not in fixed_in and not fixed_in.startswith(".")
        found = [base / fixed_in for base in (path.parent, LIBRARY)
                 if plain and (base / fixed_in).is_file()]
        if not found:
            raise ctx.error("scenario.fixed_in", f"{fixed_in!r} is not a"
                            " scenario file beside this one or in the"
                            " library", "the file name of the fixed scenario",
                            'e.g. fixed_in = "upstream-fix-sev-es.toml"',
                            needle="fixed_in")
        fixed_in = str(found[0])
    return category, kernel, fixed_in


def _kernel(kern: dict[str, Any], ctx: Ctx
            ) -> tuple[int, str, int, dict[str, Any]]:
    """[kernel]: the pinned mask, the pinning gate and the entry CR4 (the
    other keys are booleans read where they are used)."""
    _check_keys(kern, ("pinned_cr4", "pinning", "fred_vc_dispatch",
                       "boot_ghcb_fallback", "entry_cr4",
                       "ibt_clear_fred_wfe", "paranoid_rdpid"), "kernel", ctx)
    pinned = _cr4_mask(_strlist(kern, "pinned_cr4", "kernel", ctx,
                                DEFAULT_PINNED), "kernel.pinned_cr4", ctx)
    pinning = _str(kern, "pinning", "kernel", ctx, "static_key")
    if pinning not in ("static_key", "online"):
        raise ctx.error("kernel.pinning", f"unknown pinning gate {pinning!r}",
                        "static_key or online",
                        "online is the rejected tip cccc0c8ff0a9",
                        needle="pinning")
    entry_cr4 = _cr4_mask(_strlist(kern, "entry_cr4", "kernel", ctx,
                                   DEFAULT_ENTRY_CR4), "kernel.entry_cr4", ctx)
    if entry_cr4 >> 32:
        high = [n for n, b in CR4_BITS.items() if b > 31 and entry_cr4 >> b & 1]
        raise ctx.error("kernel.entry_cr4",
                        f"has {', '.join(high)} (CR4 bit above 31)",
                        "CR4 bits 0-31: the trampoline passes CR4 as a u32",
                        "remove it; set it from the CPU's program instead",
                        needle="entry_cr4")
    for key in ("fred_vc_dispatch", "boot_ghcb_fallback",
                "ibt_clear_fred_wfe", "paranoid_rdpid"):
        _bool(kern, key, "kernel", ctx, True)
    return pinned, pinning, entry_cr4, kern


def build(main: Source, sha256: str, profiles: list[Source]) -> Scenario:
    doc, ctx, path = main.doc, main.ctx, main.path
    for key in doc:
        if key not in TABLES:
            raise ctx.error(key, "unknown table", "one of " + ", ".join(TABLES),
                            "remove it or fix its spelling", needle=key)
    meta = _table(doc, "scenario", ctx)
    _check_keys(meta, ("name", "title", "source", "expect", "fail_on",
                       "notes", "category", "kernel", "fixed_in", "accepts"),
                "scenario", ctx)
    name = _str(meta, "name", "scenario", ctx)
    if not NAME_RE.fullmatch(name):
        raise ctx.error("scenario.name", f"{name!r} cannot name report and"
                        " trace files", "letters, digits, '.', '_' and '-',"
                        " not starting with '.'",
                        'e.g. name = "fred-pinned-sev-es-ap"', needle="name")
    if len(name) > MAX_NAME:
        raise ctx.error("scenario.name", f"is {len(name)} characters long:"
                        " too long for report and trace file names",
                        f"at most {MAX_NAME} characters",
                        "shorten it; the title can be long", needle="name")
    title = _str(meta, "title", "scenario", ctx, name)
    sources = _strlist(meta, "source", "scenario", ctx, [])
    notes = _str(meta, "notes", "scenario", ctx, "")
    category, kernel, fixed_in = _library_keys(meta, ctx, path, profiles)
    expect = meta.get("expect")
    if expect is not None and expect not in EXPECTABLE:
        raise ctx.error("scenario.expect", f"unknown outcome {expect!r}",
                        "one of " + ", ".join(EXPECTABLE),
                        "use an outcome of SEMANTICS section 7",
                        needle="expect")
    fail_on = _strlist(meta, "fail_on", "scenario", ctx, ["triple_fault"])
    for outcome in fail_on:
        if outcome not in FAILABLE:
            raise ctx.error("scenario.fail_on", f"unknown outcome {outcome!r}",
                            "some of " + ", ".join(FAILABLE),
                            "list outcomes that should fail a run",
                            needle="fail_on")
    accepts = _strlist(meta, "accepts", "scenario", ctx, [])
    for outcome in accepts:
        if outcome not in FAILABLE or outcome in fail_on:
            raise ctx.error("scenario.accepts", f"outcome {outcome!r}",
                            "failing outcomes not in fail_on: the ones this"
                            " code ends in by design",
                            "say why in the notes, e.g. accepts ="
                            ' ["guest_terminated"] for a guest that asks to'
                            " be ended", needle=outcome)

    plat = _table(doc, "platform", ctx)
    _check_keys(plat, ("guest", "features", "intercepted_msrs", "console",
                       "terminate", "absent_msrs", "microcode_msrs",
                       "readonly_msrs", "apic"),
                "platform", ctx)
    terminate = _str(plat, "terminate", "platform", ctx, "exits")
    if terminate not in ("exits", "hangs"):
        raise ctx.error("platform.terminate",
                        f"unknown terminate behaviour {terminate!r}",
                        "exits (the hypervisor ends the guest) or hangs"
                        " (it returns and the guest HLTs forever)",
                        'use "exits" unless your VMM ignores GHCB TERM',
                        needle="terminate")
    guest = _str(plat, "guest", "platform", ctx, "bare")
    if guest not in mc.PLATFORMS:
        raise ctx.error("platform.guest", f"unknown platform {guest!r}",
                        "one of " + ", ".join(mc.PLATFORMS),
                        "use bare for bare metal", needle="guest")
    features = _strlist(plat, "features", "platform", ctx, [])
    feature_bits = 0
    cr4_allowed = CR4_ALWAYS
    for feat in features:
        if feat not in FEATURES:
            raise ctx.error("platform.features", f"unknown feature {feat!r}",
                            "some of " + ", ".join(FEATURES),
                            "use the Linux cpufeature name", needle=feat)
        feature_bits |= 1 << FEATURES.index(feat)
        if feat in FEATURE_CR4:
            cr4_allowed |= 1 << CR4_BITS[FEATURE_CR4[feat]]
    msrs = _strlist(plat, "intercepted_msrs", "platform", ctx,
                    DEFAULT_INTERCEPTS[guest])
    for msr in msrs:
        if msr.upper() not in MSRS:
            raise ctx.error("platform.intercepted_msrs",
                            f"unknown MSR {msr!r}", "one of " + ", ".join(MSRS),
                            "use the names of the README's MSR table",
                            needle=msr)
    absent = _msr_numbers(plat, "absent_msrs", ctx)
    microcode = _msr_numbers(plat, "microcode_msrs", ctx)
    readonly = _msr_numbers(plat, "readonly_msrs", ctx)
    # The TDX module keeps a TD in x2APIC mode (td_msr_access.c:
    # IA32_XAPIC_DISABLE_STATUS reads LEGACY_XAPIC_DISABLED = 1).
    apic = _str(plat, "apic", "platform", ctx,
                "x2apic-locked" if guest == "tdx" else "xapic")
    if apic not in APIC_MODES:
        raise ctx.error("platform.apic", f"unknown APIC mode {apic!r}",
                        "one of " + ", ".join(APIC_MODES),
                        "the mode firmware left the local APICs in; xapic"
                        " unless it enabled x2APIC", needle="apic")
    if guest == "tdx" and apic != "x2apic-locked":
        raise ctx.error("platform.apic", f"APIC mode {apic!r} in a TDX guest",
                        "x2apic-locked: the TDX module keeps a TD in x2APIC"
                        " mode", "drop platform.apic", needle="apic")
    console = _str(plat, "console", "platform", ctx, "8250")
    if console not in CONSOLES:
        raise ctx.error("platform.console", f"unknown console {console!r}",
                        "one of " + ", ".join(CONSOLES),
                        "8250 is the serial console (CON_ANYTIME)",
                        needle="console")

    # Each file's [kernel] is checked where it stands, then merged.
    for src in profiles:
        _kernel(_table(src.doc, "kernel", src.ctx), src.ctx)
    _kernel(_table(doc, "kernel", ctx), ctx)
    merged = merge(main, profiles)
    pinned, pinning, entry_cr4, kern = _kernel(merged.kernel, ctx)
    routines = merged.routines

    cpus = doc.get("cpu")
    if not isinstance(cpus, list) or not cpus:
        raise ctx.error("cpu", "no [[cpu]] table", "one [[cpu]] per CPU,"
                        " cpu 0 being the boot CPU",
                        'add [[cpu]] with program = ["..."]')
    ncpu = len(cpus)

    ops: dict[str, int] = {}
    kinds: list[int] = []
    arg_a: list[int] = []
    arg_b: list[int] = []
    texts: list[str] = []

    def op_id(text: str, where: str, start: int,
              file: Ctx | None = None) -> int:
        if text in ops:
            return ops[text]
        try:
            kind, a, b = parse_op(text, ncpu)
        except OpSyntaxError as exc:
            raise (file or ctx).error(where, exc.problem, exc.expected,
                                      exc.hint, needle=f'"{text}"',
                                      start=start) from exc
        ops[text] = len(kinds)
        kinds.append(kind)
        arg_a.append(a)
        arg_b.append(b)
        texts.append(text)
        return ops[text]

    def expand(items: list[str], where: str, start: int, file: Ctx,
               stack: list[str], out: list[int], labels: list[str]) -> None:
        """Routine calls inlined; an error in a routine's body names the
        file that defined the routine (a profile or the scenario)."""
        for i, text in enumerate(items):
            text = canonical(text)
            if text in routines:
                if text in stack or len(stack) >= MAX_NESTING:
                    top, line = merged.origin[stack[0]]
                    problem = (f"routine calls itself:"
                               f" {' -> '.join(stack + [text])}"
                               if text in stack else
                               f"routines nested {len(stack) + 1} deep"
                               f" ({stack[0]} -> {stack[1]} -> ...)")
                    raise top.error(f"routines.{stack[0]}", problem,
                                    "routines that end" if text in stack
                                    else f"at most {MAX_NESTING} levels",
                                    "remove the recursive call"
                                    if text in stack else
                                    "inline some of the routines",
                                    needle=f"{stack[0]} =", start=line)
                body, line = merged.origin[text]
                expand(routines[text], f"routines.{text}", line, body,
                       stack + [text], out, labels)
            else:
                out.append(op_id(text, f"{where}[{i}]", start, file))
                labels.append("/".join(stack))
                if len(out) > MAX_PROGRAM:
                    raise ctx.error(where, "expands to more than"
                                    f" {MAX_PROGRAM} ops",
                                    f"at most {MAX_PROGRAM} ops per program",
                                    "call fewer routines; an init path is a"
                                    " few dozen ops")

    programs: list[list[int]] = []
    routine_of: list[list[str]] = []
    for c, table in enumerate(cpus):
        where = f"cpu[{c}]"
        if not isinstance(table, dict):
            raise ctx.error(where, "is not a table", "[[cpu]]", "")
        _check_keys(table, ("program",), where, ctx)
        program = _strlist(table, "program", where, ctx, [])
        out: list[int] = []
        labels: list[str] = []
        expand(program, f"{where}.program", ctx.cpu_line(c), ctx, [], out,
               labels)
        programs.append(out)
        routine_of.append(labels)

    # The scenario's own routines that no program calls are checked too: a
    # typo there is still one. A profile's are checked by the library's
    # tests (their `start N` needs the CPUs of a scenario that uses them).
    for rname in routines:
        if not merged.from_profile(rname):
            expand([rname], "routines", merged.origin[rname][1], ctx, [], [],
                   [])

    _check_sync(programs, kinds, arg_a, texts, ctx)

    orderings = _table(doc, "orderings", ctx)
    _check_keys(orderings, ("mode", "triggers", "trigger", "before"),
                "orderings", ctx)
    mode = _str(orderings, "mode", "orderings", ctx, "interleave")
    if mode not in ("interleave", "permute"):
        raise ctx.error("orderings.mode", f"unknown mode {mode!r}",
                        '"interleave" or "permute"',
                        "interleave keeps each CPU's program order, permute"
                        " also reorders ops between sync points",
                        needle="mode")
    triggers = _triggers(orderings, programs, routine_of, kinds, texts, ncpu,
                         ctx, op_id)
    before = _before(orderings, programs, routine_of, texts, ctx)
    _check_acyclic(programs, kinds, arg_a, texts, before, ctx)
    tables = memory(doc, ctx)
    check_uses(tables, kinds, arg_a, texts, ctx)
    check_user_windows(programs, kinds, texts, ctx)

    args: dict[str, Any] = dict(
        ncpu=ncpu, platform=mc.PLATFORMS.index(guest), cr4_allowed=cr4_allowed,
        features=feature_bits, pinned_mask=pinned,
        pin_gate=mc.PIN_ONLINE if pinning == "online" else mc.PIN_STATIC_KEY,
        fred_vc_dispatch=_bool(kern, "fred_vc_dispatch", "kernel", ctx, True),
        boot_ghcb_fallback=_bool(kern, "boot_ghcb_fallback", "kernel", ctx,
                                 True),
        ibt_clear_fred_wfe=_bool(kern, "ibt_clear_fred_wfe", "kernel", ctx,
                                 True),
        paranoid_rdpid=_bool(kern, "paranoid_rdpid", "kernel", ctx, False),
        console_port_io=CONSOLES[console][0],
        console_anytime=CONSOLES[console][1],
        console_at_boot=ops_platform.CONSOLE_INIT not in (
            kinds[op] for program in programs for op in program),
        terminate_hangs=terminate == "hangs", entry_cr4=entry_cr4,
        pin_property="pin_cleared" in fail_on,
        intercepted_msrs=[MSRS[x.upper()] for x in msrs],
        absent_msrs=absent, microcode_msrs=microcode,
        readonly_msrs=readonly, apic=APIC_MODES.index(apic),
        page_tables=tables[0], page_globals=tables[1], cr3_start=tables[2],
        op_kind=kinds, op_a=arg_a, op_b=arg_b, op_text=texts)
    sc = Scenario(
        path=ctx.path, name=name, title=title, sources=sources, notes=notes,
        category=category, kernel=kernel, fixed_in=fixed_in,
        expect=expect, fail_on=frozenset(fail_on),
        accepts=frozenset(accepts), guest=guest, sha256=sha256,
        machine=mc.Machine(**args), machine_args=args, programs=programs,
        routine_of=routine_of, triggers=triggers, before=before, mode=mode,
        op_index=ops)
    if any(kinds[op] in life.PARKING for p in programs for op in p):
        _check_lives(sc, ctx)
    return sc


# States _check_lives visits before it leaves the question to the engines
# (which report an ordering that cannot finish as a scenario problem).
LIVES_BUDGET = 100_000


def _check_lives(sc: Scenario, ctx: Ctx) -> None:
    """With CPUs that go offline and start again, some ordering of the
    programs alone must run every program to its end: a depth-first search
    over the schedule's states (orderings/schedule.py), program ops only.
    An op that is no sync op and no end of a `before` pair is taken alone:
    it stays enabled whatever the others do and changes nothing they wait
    for, so only the sync points branch."""
    from fuzzinit.orderings.schedule import SYNC_KINDS, Schedule
    sched = Schedule(sc, permute=False)
    pinned = {pt for pair in sc.before for pt in pair}
    kinds = sc.machine.op_kind
    seen: set[tuple[object, ...]] = set()
    stack = [sched.snapshot()]
    while stack and len(seen) < LIVES_BUDGET:
        snap = stack.pop()
        if snap in seen:
            continue
        seen.add(snap)
        sched.restore(snap)
        if sched.finished():
            return
        moves = sched.program_candidates()
        local = [ev for ev in moves if kinds[ev.op] not in SYNC_KINDS
                 and (ev.cpu, ev.slot) not in pinned]
        stack.extend(sched.snapshot_after(snap, ev)
                     for ev in (local[:1] or moves))
    if stack:
        return
    raise ctx.error("cpu", "the programs can never all finish: no ordering"
                    " runs every CPU's program to its end",
                    "a start after each 'offline' whose CPU has ops left,"
                    " and waits that can still be met",
                    "check the order of start, offline, wait_online,"
                    " wait_offline and the `before` pairs", needle="[[cpu]]")


def _msr_numbers(plat: dict[str, Any], key: str, ctx: Ctx) -> list[int]:
    """platform.absent_msrs / microcode_msrs: MSR names or numbers."""
    out: list[int] = []
    for text in _strlist(plat, key, "platform", ctx, []):
        try:
            out.append(msr_number(text))
        except OpSyntaxError as exc:
            raise ctx.error(f"platform.{key}", exc.problem, exc.expected,
                            exc.hint, needle=text) from None
    return out


# Ops that act on another CPU once `offline` has parked it.
PARKED_TARGET = (life.SEND_INIT, life.WAIT_OFFLINE, life.KICK_PLAY_DEAD)


def _check_sync(programs: list[list[int]], kinds: list[int], arg_a: list[int],
                texts: list[str], ctx: Ctx) -> None:
    started_by: dict[int, int] = {}
    starts = [0] * len(programs)
    # A CPU may be started once more for each time it parks (`offline`,
    # `stop_this_cpu`).
    lives = [1 + sum(kinds[op] in life.PARKING for op in program)
             for program in programs]
    for c, program in enumerate(programs):
        for op in program:
            if kinds[op] == life.OFFLINE and c == 0:
                raise ctx.error(f"cpu[{c}].program", "'offline' on cpu 0",
                                "offline on an application processor (the"
                                " model restarts a CPU with another CPU's"
                                " 'start N')",
                                "take an AP offline, or model the boot CPU's"
                                " own reset path (reboot) with its ops",
                                needle=texts[op], start=ctx.cpu_line(c))
            if kinds[op] in PARKED_TARGET and (lives[arg_a[op]] == 1
                                               or arg_a[op] == c):
                raise ctx.error(f"cpu[{c}].program",
                                f"'{texts[op]}': cpu {arg_a[op]} "
                                + ("is this CPU" if arg_a[op] == c else
                                   "never goes offline"),
                                f"'{texts[op].split()[0]} N' for another CPU"
                                " that an 'offline hlt|mwait' or a"
                                " 'stop_this_cpu' parks",
                                (f"add 'offline hlt' to cpu {arg_a[op]}'s"
                                 if arg_a[op] else
                                 "add 'stop_this_cpu reboot' to cpu 0's")
                                + " program, or remove the op",
                                needle=texts[op], start=ctx.cpu_line(c))
            if kinds[op] == smp.START:
                target = arg_a[op]
                where = f"cpu[{c}].program"
                start = ctx.cpu_line(c)
                if target == 0:
                    raise ctx.error(where, "'start 0': cpu 0 is the boot CPU"
                                    " and runs from the start",
                                    "start N for an application processor,"
                                    " N >= 1", "remove 'start 0'",
                                    needle="start 0", start=start)
                starts[target] += 1
                if starts[target] > lives[target]:
                    raise ctx.error(where, f"'start {target}' starts cpu"
                                    f" {target} while it runs",
                                    "one start per application processor,"
                                    " and one more after each 'offline' in"
                                    " its program",
                                    "remove the extra start, or take the CPU"
                                    " offline first",
                                    needle=f"start {target}", start=start)
                if target == c:
                    raise ctx.error(where, f"cpu {c} starts itself",
                                    f"'start {c}' in another CPU's program",
                                    f"move 'start {c}' to the CPU that"
                                    " brings it up (usually cpu 0)",
                                    needle=f"start {c}", start=start)
                started_by[target] = c
            if kinds[op] == smp.WAIT_ONLINE:
                target = arg_a[op]
                if not any(kinds[o] == smp.ONLINE_OP
                           for o in programs[target]) and target != 0:
                    raise ctx.error(f"cpu[{c}].program",
                                    f"'{texts[op]}' waits for cpu {target},"
                                    " whose program has no 'online'",
                                    "an 'online' op in that CPU's program",
                                    f"add \"online\" to cpu {target}'s program",
                                    needle=texts[op])
    for c in range(1, len(programs)):
        # A CPU with no program may stay unstarted: present, waiting for
        # its SIPI (it still takes a broadcast machine check).
        if c not in started_by and programs[c]:
            raise ctx.error(f"cpu[{c}]", f"cpu {c} is never started",
                            f"a 'start {c}' in another CPU's program",
                            f'add "start {c}" to the boot CPU\'s program',
                            start=ctx.cpu_line(c), needle="[[cpu]]")


def _point(text: str, cpu: int, programs: list[list[int]],
           routine_of: list[list[str]], texts: list[str],
           where: str, ctx: Ctx) -> tuple[int, int]:
    """First and last program slot of an op text or routine call on `cpu`,
    or (-1, -1); a point that names two places is an error."""
    program = programs[cpu]
    slots = [s for s, op in enumerate(program) if texts[op] == text]
    calls: list[list[int]] = []
    inside = False
    for slot in range(len(program)):
        parts = routine_of[cpu][slot].split("/") if routine_of[cpu][slot] \
            else []
        if text in parts:
            if not inside:
                calls.append([])
            calls[-1].append(slot)
        inside = text in parts
    places = len(slots) if slots else len(calls)
    if places > 1:
        raise ctx.error(where, f"{text!r} occurs {places} times in cpu {cpu}'s"
                        " program", "a point that names one place",
                        "name the routine around the one you mean instead",
                        needle=f'"{text}"',
                        start=ctx.line_of("[orderings") or 0)
    if slots:
        return slots[0], slots[0]
    if calls:
        return calls[0][0], calls[0][-1]
    return -1, -1


def _triggers(orderings: dict[str, Any], programs: list[list[int]],
              routine_of: list[list[str]], kinds: list[int],
              texts: list[str], ncpu: int, ctx: Ctx,
              op_id: Any) -> list[Trigger]:
    specs: list[dict[str, Any]] = []
    short = orderings.get("triggers", {})
    if not isinstance(short, dict):
        raise ctx.error("orderings.triggers", "is not a table",
                        "{ kind = count, ... }", "e.g. triggers = { nmi = 1 }")
    for kind, count in short.items():
        specs.append({"kind": kind, "count": count, "_short": True})
    long_form = orderings.get("trigger", [])
    if not isinstance(long_form, list):
        raise ctx.error("orderings.trigger", "is not an array of tables",
                        "[[orderings.trigger]] tables", "")
    for spec in long_form:
        if not isinstance(spec, dict):
            raise ctx.error("orderings.trigger", "is not a table",
                            "[[orderings.trigger]]", "")
        _check_keys(spec, ("kind", "cpus", "count", "after", "before"),
                    "orderings.trigger", ctx)
        specs.append(dict(spec))
    out: list[Trigger] = []
    for spec in specs:
        kind = spec.get("kind")
        where = "orderings.triggers" if spec.get("_short") else \
            "orderings.trigger"
        if isinstance(kind, str):
            kind = canonical(kind)
        words = kind.split() if isinstance(kind, str) else []
        head = words[0] if words else ""
        low, high = TRIGGER_WORDS.get(head, (1, 1))
        if not isinstance(kind, str) or head not in TRIGGER_KINDS \
                or not low <= len(words) <= high:
            raise ctx.error(where, f"unknown trigger kind {kind!r}",
                            TRIGGER_HELP, "see the README's trigger table",
                            needle=str(kind))
        count = spec.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or \
                not 0 <= count <= 16:
            shown = str(count).lower() if isinstance(count, bool) else \
                repr(count)
            raise ctx.error(where, f"count {shown} for {kind}",
                            "an integer from 0 to 16",
                            "write e.g. nmi = 1", needle=kind.split()[0])
        cpus = spec.get("cpus", list(range(ncpu)))
        if not isinstance(cpus, list) or not all(
                type(c) is int and 0 <= c < ncpu for c in cpus):
            raise ctx.error(where, f"cpus {cpus!r}",
                            f"a list of CPU numbers from 0 to {ncpu - 1}",
                            "e.g. cpus = [1]", needle="cpus")
        op = op_id(canonical(kind), where, 0)
        named_cpus = "cpus" in spec
        default_after = "online" if kind == "nmi" else "start"
        after = spec.get("after", default_after)
        before = spec.get("before", "end")
        windows = 0
        for cpu in cpus:
            # With the CPUs named, every point must be in each program;
            # otherwise a CPU whose program lacks the point has no window.
            lo, after_slots = _bound(after, True, cpu, programs, routine_of,
                                     kinds, texts, where, ctx, named_cpus)
            hi, before_slots = _bound(before, False, cpu, programs,
                                      routine_of, kinds, texts, where, ctx,
                                      named_cpus)
            if lo < 0 or hi < 0 or lo > hi:
                if named_cpus:
                    raise ctx.error(where, f"the window of {kind} on cpu"
                                    f" {cpu} is empty (after {after!r},"
                                    f" before {before!r})",
                                    "an 'after' point before the 'before'"
                                    " point in that CPU's program",
                                    "fix after/before or drop the cpu",
                                    needle=kind)
                continue  # e.g. default NMI window of an AP with no online
            windows += 1
            if count:
                out.append(Trigger(kind, op, cpu, count, after_slots,
                                   before_slots))
        if not windows and ("after" in spec or "before" in spec):
            raise ctx.error(where, f"the window of {kind} (after {after!r},"
                            f" before {before!r}) is empty on every CPU",
                            "an 'after' point before the 'before' point in"
                            " some CPU's program", "fix after/before",
                            needle=kind)
    return out


def _bound(point: Any, is_after: bool, cpu: int, programs: list[list[int]],
           routine_of: list[list[str]], kinds: list[int], texts: list[str],
           where: str, ctx: Ctx, strict: bool
           ) -> tuple[int, tuple[int, ...]]:
    """A window bound: its position in program order (-1: no such point,
    the window is empty) and the program slots that make it (all done for
    an `after` point; none done yet for a `before` point)."""
    n = len(programs[cpu])
    if not isinstance(point, str):
        raise ctx.error(where, f"window point {point!r} is not a string",
                        '"start", "end", "online" or an op or routine',
                        "quote it")
    if point == "start":
        return (0 if is_after else -1), ()
    if point == "end":
        return (n if not is_after else -1), ()
    if point == "online":
        if cpu == 0:  # the boot CPU is online from boot
            return (0 if is_after else -1), ()
        slots = [s for s, op in enumerate(programs[cpu])
                 if kinds[op] == smp.ONLINE_OP]
        if not slots:
            return -1, ()
        return (slots[0] + 1 if is_after else slots[0]), (slots[0],)
    first, last = _point(canonical(point), cpu, programs, routine_of, texts,
                         where, ctx)
    if first < 0 and not strict:
        return -1, ()
    if first < 0:
        raise ctx.error(where, f"window point {point!r} is not in cpu {cpu}'s"
                        " program", "an op or routine of that CPU's program,"
                        " or start/end/online", "copy the op text exactly",
                        needle=point)
    return (last + 1 if is_after else first), tuple(range(first, last + 1))


def _resolve(ref: Any, programs: list[list[int]], routine_of: list[list[str]],
             texts: list[str], ctx: Ctx) -> tuple[int, range]:
    """A `before` program point: its CPU and its slots (every op of a
    routine's first call)."""
    if not isinstance(ref, str) or ":" not in ref or \
            not ref.split(":", 1)[0].strip().startswith("cpu"):
        raise ctx.error("orderings.before", f"{ref!r} names no program point",
                        '"cpuN: op text" or "cpuN: routine"',
                        'e.g. "cpu1: wrmsr FRED_CONFIG entry"', needle=str(ref))
    head, text = ref.split(":", 1)
    try:
        cpu = int(head.strip()[3:])
    except ValueError:
        cpu = -1
    if not 0 <= cpu < len(programs):
        raise ctx.error("orderings.before", f"{ref!r}: no such cpu",
                        f"cpu0 to cpu{len(programs) - 1}", "fix the number",
                        needle=ref)
    lo, hi = _point(canonical(text), cpu, programs, routine_of, texts,
                    "orderings.before", ctx)
    if lo < 0:
        raise ctx.error("orderings.before", f"{ref!r}: not in cpu {cpu}'s"
                        " program", "an op or routine of that CPU",
                        "copy the op text exactly", needle=ref)
    return cpu, range(lo, hi + 1)


def _before(orderings: dict[str, Any], programs: list[list[int]],
            routine_of: list[list[str]], texts: list[str],
            ctx: Ctx) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    pairs = orderings.get("before", [])
    if not isinstance(pairs, list):
        raise ctx.error("orderings.before", "is not a list",
                        '[["cpuA: op", "cpuB: op"], ...]', "")
    out = []
    for pair in pairs:
        if not isinstance(pair, list) or len(pair) != 2:
            raise ctx.error("orderings.before", f"{pair!r} is not a pair",
                            '["cpuA: op", "cpuB: op"]',
                            "write each constraint as a two-element list",
                            needle="before")
        # "A before B": every op of A completes before any op of B starts.
        a_cpu, a_slots = _resolve(pair[0], programs, routine_of, texts, ctx)
        b_cpu, b_slots = _resolve(pair[1], programs, routine_of, texts, ctx)
        out += [((a_cpu, a), (b_cpu, b)) for a in a_slots for b in b_slots]
    return out


def _check_acyclic(programs: list[list[int]], kinds: list[int],
                   arg_a: list[int], texts: list[str],
                   before: list[tuple[tuple[int, int], tuple[int, int]]],
                   ctx: Ctx) -> None:
    """Program order, start/online sync and `before` constraints must admit
    at least one complete ordering (no cycle, no deadlock)."""
    nodes = [(c, s) for c, p in enumerate(programs) for s in range(len(p))]
    succ: dict[tuple[int, int], list[tuple[int, int]]] = {n: [] for n in nodes}

    # A CPU with more than one life (an `offline` in its program) is left to
    # _check_lives: which start or wait meets which of its lives depends on
    # the ordering.
    several = {c for c, p in enumerate(programs)
               if any(kinds[o] in life.PARKING for o in p)}
    for c, program in enumerate(programs):
        for s, op in enumerate(program):
            if s + 1 < len(program):
                succ[(c, s)].append((c, s + 1))
            kind, target = kinds[op], arg_a[op]
            if kind not in (smp.START, smp.WAIT_ONLINE) or target in several:
                continue
            if kind == smp.START and programs[target]:
                succ[(c, s)].append((target, 0))
            if kind == smp.WAIT_ONLINE and target != 0:
                online = [t for t, o in enumerate(programs[target])
                          if kinds[o] == smp.ONLINE_OP][0]
                succ[(target, online)].append((c, s))
    for a, b in before:
        succ[a].append(b)
    indegree = {n: 0 for n in nodes}
    for n in nodes:
        for m in succ[n]:
            indegree[m] += 1
    ready = [n for n in nodes if indegree[n] == 0]
    done = 0
    while ready:
        n = ready.pop()
        done += 1
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
    if done == len(nodes):
        return
    # Walk predecessors inside the stuck set to name one cycle.
    stuck = {n for n in nodes if indegree[n] > 0}
    node = min(stuck)
    path: list[tuple[int, int]] = []
    while node not in path:
        path.append(node)
        node = min(m for m in stuck if node in succ[m])
    ring = path[path.index(node):][::-1]
    cycle = ring + [ring[0]]
    shown = " -> ".join(f"cpu{c}: {texts[programs[c][s]]}" for c, s in cycle)
    raise ctx.error("orderings", f"ordering constraints form a cycle: {shown}",
                    "constraints that some ordering satisfies",
                    "remove or reverse one of the 'before' pairs (or a"
                    " start/wait_online) on that cycle", needle="before")
