"""`fuzzinit windows`: for every program point of every CPU and every
trigger kind the platform can raise there, whether a trigger at that point
fails - the "window where no exceptions can be handled" of kernel mails,
computed.

The programs run as written (the lowest ready CPU first) - minus any op
that itself fails where it stands, which is left out and named, so that
the points after it can be mapped - and the trigger is inserted right
after the CPU's k-th op, and a point is fatal when the
model fails on the trigger itself (what the programs do afterwards is
another question: fuzzinit run answers it). Kinds: nmi and pf always; on
SEV-ES/SNP also printk (with a port-I/O console), cpuid, port_io, mmio;
on TDX printk, port_io, mmio; and every kind the scenario's triggers
name. Scenario trigger windows are ignored on purpose: this maps where an
event *would* be fatal.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

from fuzzinit.model import machine as mc
from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_smp as smp
from fuzzinit.model.life import CODE_SHIFT, IMAGES, image, park
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import (
    PARKED,
    RUNNING,
    Event,
    in_life,
    lives_of,
    program_order,
    trigger_lives,
)
from fuzzinit.scenario.load import Scenario
from fuzzinit.scenario.ops import parse_op
from fuzzinit.verdict import evaluate, fails


@dataclass(frozen=True)
class Point:
    cpu: int
    after: int            # program slot after which (0: just started)
    after_op: str         # the op just done ("start" for 0)
    kind: str
    outcome: str          # "ok" or the failing outcome
    image: str = ""       # the kernel image the CPU runs there (life.py),
    #                       "" in a scenario without images
    restart: bool = False  # just started again after an `offline` (its
    #                        `after` is the parked point's too)
    parked: bool = False   # parked by `offline` there (nmi and mce only)
    at: int = 0            # events of the as-written order before it


def kinds_for(sc: Scenario) -> list[str]:
    m = sc.machine
    kinds = ["nmi", "pf"]
    if m.sev:
        kinds += ["printk"] if m.console_port_io else []
        kinds += ["cpuid", "port_io", "mmio"]
    elif m.platform == mc.TDX:
        kinds += ["printk"] if m.console_port_io else []
        kinds += ["port_io", "mmio"]
    # The scenario's own trigger kinds too (a `ud2 warn`, an `mce`).
    for trigger in sc.triggers:
        if trigger.kind not in kinds:
            kinds.append(trigger.kind)
    return kinds


def _with_ops(sc: Scenario, texts: list[str]) -> tuple[Scenario, list[int]]:
    """`sc` with op rows for `texts` (trigger ops it may not have)."""
    args = dict(sc.machine_args)
    kinds, a, b, text = (list(args["op_kind"]), list(args["op_a"]),
                         list(args["op_b"]), list(args["op_text"]))
    ids = []
    for t in texts:
        if t in text:
            ids.append(text.index(t))
            continue
        k, x, y = parse_op(t, sc.ncpu)
        kinds.append(k)
        a.append(x)
        b.append(y)
        text.append(t)
        ids.append(len(text) - 1)
    args.update(op_kind=kinds, op_a=a, op_b=b, op_text=text)
    return dataclasses.replace(sc, machine=mc.Machine(**args),
                               machine_args=args), ids


def survivable_order(sc: Scenario) -> tuple[list[Event], list[Event]]:
    """The programs as written, minus the events that fail where they
    stand (so that the points after them can be mapped too); returns the
    order and the events left out."""
    base: list[Event] = []
    skipped: list[Event] = []
    for ev in program_order(sc):
        r = evaluate(sc, base + [ev])
        if r.at == len(base):  # this op ends the run (failing or not)
            skipped.append(ev)
        else:
            base.append(ev)
    return base, skipped


def images_along(sc: Scenario, events: list[Event]
                 ) -> tuple[list[list[str]], list[list[bool]]]:
    """Per prefix of `events` (0..len), the image each CPU's code is in
    (the windows of a resume or kexec scenario, told apart by image; ""
    without images) and whether it is parked."""
    m = sc.machine
    st = initial_state(m)

    def now() -> tuple[list[str], list[bool]]:
        lives = [st[c * mc.NF + mc.F_LIFE] for c in range(sc.ncpu)]
        return ([IMAGES[image(x, CODE_SHIFT)] if m.images else ""
                 for x in lives], [park(x) != 0 for x in lives])
    names, parks = now()
    out, parked = [names], [parks]
    for ev in events:
        step(m, st, ev.cpu, ev.op, [], [])
        names, parks = now()
        out.append(names)
        parked.append(parks)
    return out, parked


def windows(sc: Scenario) -> list[Point]:
    kinds = kinds_for(sc)
    sc2, ops = _with_ops(sc, kinds)
    base, _ = survivable_order(sc)
    images, parked = images_along(sc, base)
    points: list[Point] = []
    for cpu, program in enumerate(sc.programs):
        # Where the CPU is after 0..n of its ops, in the as-written order.
        positions = [i + 1 for i, e in enumerate(base) if e.cpu == cpu]
        done_slots = [e.slot for e in base if e.cpu == cpu]
        # Each start of this CPU (a later one after an `offline`), as the
        # point just before its next op.
        starts = [i + 1 for i, e in enumerate(base)
                  if sc.machine.op_kind[e.op] == smp.START
                  and sc.machine.op_a[e.op] == cpu]
        if cpu and not starts:
            continue
        stops: list[tuple[int, int, str, bool]] = []
        if cpu == 0:
            stops.append((0, 0, "start", False))
        for i, at in enumerate(starts):
            after = next((s for s, p in zip(done_slots, positions,
                                            strict=True) if p > at), None)
            stops.append((at, len(program) if after is None else after,
                          "restart" if i else "start", i > 0))
        done_at = 0
        for at, s in zip(positions, done_slots, strict=True):
            stops.append((at, s + 1, sc.op_text(program[s]), False))
        # A parked CPU meets what other CPUs do to memory meanwhile: a point
        # after each kernel copy it sleeps through.
        for at in range(1, len(base) + 1):
            ev = base[at - 1]
            while done_at < len(positions) and positions[done_at] <= at:
                done_at += 1
            if ev.cpu != cpu and parked[at][cpu] and \
                    sc.machine.op_kind[ev.op] == life.REPLACE_IMAGE:
                stops.append((at, done_slots[done_at - 1] + 1,
                              f"cpu{ev.cpu} {sc.op_text(ev.op)}", False))
        stops.sort()
        for at, after, after_op, restart in stops:
            for kind, op in zip(kinds, ops, strict=True):
                # Only the trigger's own verdict: the rest of the as-written
                # order may fail on its own (a pinned-FRED AP does).
                trial = base[:at] + [Event(cpu, op, -1, -1)]
                r = evaluate(sc2, trial)
                if r.name == "invalid" and r.at == len(trial) - 1:
                    continue   # no such event there (a #PF on a parked CPU)
                fatal = fails(sc2, r) and r.at == len(trial) - 1
                points.append(Point(cpu, after, after_op, kind,
                                    r.name if fatal else "ok",
                                    images[at][cpu], restart,
                                    parked[at][cpu], at))
    return points


def timeline(points: list[Point]) -> list[str]:
    """Compact lines, per CPU, one per stretch of program points with the
    same fatal kinds: "cpuN: A .. B: kinds fatal" - fatal from just after
    op A until op B has run."""
    lines: list[str] = []
    by_cpu: dict[int, dict[tuple[int, int], tuple[str, str, set[str]]]] = {}
    for p in points:
        entry = by_cpu.setdefault(p.cpu, {}).setdefault(
            (p.after, p.at), (p.after_op, p.image, set()))
        if p.outcome != "ok":
            entry[2].add(p.kind)
    for cpu in sorted(by_cpu):
        steps = sorted(by_cpu[cpu].items())
        i = 0
        while i < len(steps):
            _, img, fatal = steps[i][1]
            j = i
            while j + 1 < len(steps) and steps[j + 1][1][2] == fatal and \
                    steps[j + 1][1][1] == img:
                j += 1
            if fatal:
                opens = steps[i][1][0]
                closes = steps[j + 1][1][0] if j + 1 < len(steps) else "end"
                where = f"cpu{cpu} [{img}]" if img else f"cpu{cpu}"
                lines.append(f"{where}: {opens} .. {closes}: "
                             + ", ".join(sorted(fatal)) + " fatal")
            i = j + 1
    return lines


def allowed(sc: Scenario, p: Point) -> bool:
    """Whether one of the scenario's triggers may fire at `p`: one of
    that kind on that CPU, in that life, whose `after` ops are done there
    (program order) and whose `before` ops are not
    (schedule.Schedule.window_open)."""
    lives = lives_of(sc)
    where = PARKED if p.parked else RUNNING
    return any(t.cpu == p.cpu and t.kind == p.kind
               and in_life(where, p.after, lives[p.cpu], t.kind, life)
               and all(s < p.after for s in t.after)
               and not any(s < p.after for s in t.before)
               for t, life in zip(sc.triggers, trigger_lives(sc, lives),
                                  strict=True))


def _anchors(before: list[str], after: list[str]) -> dict[int, int]:
    """Program slots of `before` matched to slots of `after`: the longest
    matching runs of op texts, in order (difflib), so that an op a fix
    removed, added or changed is matched to nothing."""
    sm = difflib.SequenceMatcher(None, before, after, autojunk=False)
    return {b.a + i: b.b + i for b in sm.get_matching_blocks()
            for i in range(b.size)}


def closed(before_sc: Scenario, before: list[Point], after_sc: Scenario,
           after: list[Point]) -> list[Point]:
    """The fatal points of `before` that `after` closes. Points are matched
    by position, not op text alone: a point after op s of a CPU's program
    stands for the stretch up to the next op both programs share (matched
    in order by _anchors); it is closed only if no point of `after` in the
    matching stretch is fatal for the same kind - so removing, adding or
    duplicating an op does not make a window that is still open look
    closed."""
    # A restart point shares `after` with the parked point before it.
    fatal_after = {(p.cpu, p.after, p.restart, p.kind) for p in after
                   if p.outcome != "ok"}
    out: list[Point] = []
    for p in before:
        if p.outcome == "ok":
            continue
        if p.cpu >= after_sc.ncpu:
            out.append(p)
            continue
        b_prog = [before_sc.op_text(op) for op in before_sc.programs[p.cpu]]
        a_prog = [after_sc.op_text(op) for op in after_sc.programs[p.cpu]]
        match = _anchors(b_prog, a_prog)
        s = p.after - 1             # the op just done (-1: just started)
        prev = max((x for x in match if x <= s), default=-1)
        lo = match[prev] + 1 if prev >= 0 else 0
        nxt = min((x for x in match if x > s), default=None)
        hi = match[nxt] if nxt is not None else len(a_prog)
        if not any((p.cpu, a, p.restart, p.kind) in fatal_after
                   for a in range(lo, hi + 1)):
            out.append(p)
    return out
