"""`fuzzinit constraints`: the happens-before rules every safe ordering
must obey, mined from permutation-mode failures.

1. Reference: the programs as written must be safe - no failure with no
   trigger or with any one trigger anywhere its window allows.
2. Candidates: permutation-mode search (seeded random orderings) collects
   failures; for each event B in a failure's causal core, every op A of the
   same CPU segment that precedes B in the program but had not run before B
   suggests the rule "A before B". So does every op before the point where
   a trigger's window opens (events can start to arrive there).
3. Check: a rule is reported when both minimal ways of breaking it, starting
   from the reference order - B moved to just before A, and A moved to just
   after B - can fail (with at most one trigger). The first failing variant,
   reduced to its causal core, is the rule's counterexample.
4. Sufficiency: permutation-mode search with every rule added as a `before`
   constraint; no failure within the budget means "sufficient so far", not
   proven (the exhaustive explorer is a later issue).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass

from fuzzinit.minimise.core import causal_core
from fuzzinit.model.outcome import Result
from fuzzinit.orderings.random_walk import random_ordering
from fuzzinit.orderings.schedule import Event, Schedule, program_order, well_formed
from fuzzinit.scenario.load import Scenario
from fuzzinit.search import search_or_raise
from fuzzinit.verdict import evaluate, fails


@dataclass
class Rule:
    a: Event            # must run before
    b: Event
    counterexample: list[Event]
    result: Result

    def text(self, sc: Scenario) -> str:
        return (f"cpu{self.a.cpu}: {sc.op_text(self.a.op)} before"
                f" cpu{self.b.cpu}: {sc.op_text(self.b.op)}")

    def why(self, sc: Scenario) -> str:
        """What goes wrong without the rule, from the counterexample."""
        chain = self.result.chain
        trigger = next((e for e in self.counterexample if e.slot < 0), None)
        if trigger is not None:
            head = f"a {sc.op_text(trigger.op)} on cpu{trigger.cpu} between them"
        else:
            head = f"{chain[0].replace(':', '', 1)} out of order"
        steps = chain[1:2] + chain[-1:] if len(chain) > 2 else chain[1:]
        return f"{head}: " + "; ".join(steps) + f" -> {self.result.name}"


@dataclass
class Mined:
    scenario: Scenario
    reference_failure: Result | None    # the order as written fails
    failures: int                        # failing permuted orderings seen
    examples: int
    rules: list[Rule]
    sufficient: bool | None              # None: not checked
    sufficiency_examples: int
    insufficient_core: list[Event] | None
    interrupted: bool = False            # Ctrl-C/SIGTERM: the rules so far


def with_trigger_variants(sc: Scenario, order: list[Event]) -> list[list[Event]]:
    """`order` itself, then `order` with one trigger inserted at each point
    its window allows, earliest first."""
    out = [order]
    sched = Schedule(sc, permute=True)
    for i in range(len(order) + 1):
        for trig in sched.trigger_candidates():
            out.append(order[:i] + [trig] + order[i:])
        if i < len(order):
            sched.take(order[i])
    return out


def first_failure(sc: Scenario, order: list[Event]
                  ) -> tuple[list[Event], Result] | None:
    for variant in with_trigger_variants(sc, order):
        result = evaluate(sc, variant)
        if fails(sc, result):
            return variant, result
    return None


def _move(order: list[Event], item: Event, anchor: Event, before: bool) -> list[Event]:
    rest = [e for e in order if e != item]
    at = rest.index(anchor) + (0 if before else 1)
    return rest[:at] + [item] + rest[at:]


def check_rule(sc: Scenario, reference: list[Event], a: Event,
               b: Event) -> Rule | None:
    """Report "a before b" when both minimal ways of breaking it (b moved
    to just before a; a moved to just after b) can fail, and for at least
    one of them putting `a` back just before `b` - nothing else changed -
    passes: the failure is this rule's, not a neighbour's."""
    evidence: tuple[list[Event], Result] | None = None
    for variant in (_move(reference, b, a, before=True),
                    _move(reference, a, b, before=False)):
        if well_formed(sc, variant):
            return None  # cannot be broken that way (sync, constraints)
        # The earliest failure of this variant (no trigger, then one
        # trigger at the earliest point it breaks) is the one judged.
        failing = first_failure(sc, variant)
        if failing is None:
            return None
        v, result = failing
        fixed = _move(v, a, b, before=True)
        if not well_formed(sc, fixed) and not fails(sc, evaluate(sc, fixed)):
            if evidence is None or len(v) < len(evidence[0]):
                evidence = (v, result)
    if evidence is None:
        return None
    core = causal_core(sc, evidence[0], evidence[1])
    return Rule(a, b, core, evaluate(sc, core))


def transitive_reduction(rules: list[Rule]) -> list[Rule]:
    """Drop "A before C" when "A before B" and "B before C" are rules."""
    after: dict[Event, set[Event]] = {}
    for r in rules:
        after.setdefault(r.a, set()).add(r.b)
    return [r for r in rules
            if not any(r.b in after.get(mid, ()) for mid in after[r.a]
                       if mid != r.b)]


def _segment_start(sched: Schedule, cpu: int, slot: int) -> int:
    end = sched.segment_end[cpu][slot]
    while slot > 0 and sched.segment_end[cpu][slot - 1] == end:
        slot -= 1
    return slot


def candidates(sc: Scenario, ordering: list[Event], core: list[Event]
               ) -> set[tuple[Event, Event]]:
    """(A, B) pairs a failure suggests: A precedes B in the program (same
    segment) but had not run before B. B is a program op of the core, or
    the op that opens the window of a trigger in the core."""
    sched = Schedule(sc, permute=True)
    position = {e: i for i, e in enumerate(ordering)}
    pairs: set[tuple[Event, Event]] = set()
    for e in core:
        if e.slot >= 0:
            b, at = e, position[e]
        else:
            opens = sc.triggers[e.trigger].after
            if not opens:
                continue
            slot = max(opens)
            b = Event(e.cpu, sc.programs[e.cpu][slot], slot)
            at = position[e]
        program = sc.programs[b.cpu]
        for s in range(_segment_start(sched, b.cpu, b.slot), b.slot):
            a = Event(b.cpu, program[s], s)
            if position.get(a, len(ordering)) > at:
                pairs.add((a, b))
    return pairs


def window_candidates(sc: Scenario) -> set[tuple[Event, Event]]:
    """(A, W) for every op A of the segment before W, the op after which a
    trigger's window opens."""
    sched = Schedule(sc, permute=True)
    pairs: set[tuple[Event, Event]] = set()
    for t in sc.triggers:
        if not t.after:
            continue
        w = max(t.after)
        program = sc.programs[t.cpu]
        b = Event(t.cpu, program[w], w)
        for s in range(_segment_start(sched, t.cpu, w), w):
            pairs.add((Event(t.cpu, program[s], s), b))
    return pairs


def reversed_pairs(sc: Scenario, ordering: list[Event]
                   ) -> set[tuple[Event, Event]]:
    """Every same-segment pair the ordering runs against program order."""
    sched = Schedule(sc, permute=True)
    seen: list[Event] = []
    pairs: set[tuple[Event, Event]] = set()
    for b in ordering:
        if b.slot < 0:
            continue
        start = _segment_start(sched, b.cpu, b.slot)
        for a in seen:
            if a.cpu == b.cpu and start <= b.slot < a.slot:
                pairs.add((b, a))
        seen.append(b)
    return pairs


ROUNDS = 6


def mine(sc: Scenario, examples: int = 2000, seed: int = 0,
         sufficiency_examples: int = 2000,
         on_progress: Callable[[str], None] | None = None) -> Mined:
    sc = dataclasses.replace(sc, mode="permute")
    reference = program_order(sc)
    ref_fail = first_failure(sc, reference)
    if ref_fail is not None:
        return Mined(sc, ref_fail[1], 0, 0, [], None, 0, None)
    rng = random.Random(seed)
    failing: list[tuple[list[Event], list[Event]]] = []
    rules: list[Rule] = []
    tried = [0]
    try:
        _sample(sc, examples, rng, failing, tried, on_progress)
        return _rules(sc, reference, failing, rules, examples, seed,
                      sufficiency_examples)
    except KeyboardInterrupt:
        # Interrupted: what was found so far, with no claim of sufficiency.
        return Mined(sc, None, len(failing), tried[0],
                     transitive_reduction(rules), None, 0, None, True)


def _sample(sc: Scenario, examples: int, rng: random.Random,
            failing: list[tuple[list[Event], list[Event]]], tried: list[int],
            on_progress: Callable[[str], None] | None) -> None:
    """Random permuted orderings; the distinct failing ones (with their
    cores) are appended to `failing`, the count tried kept in `tried`."""
    seen: set[tuple[tuple[Event, ...], str]] = set()
    for i in range(examples):
        ordering = random_ordering(sc, rng, trigger_chance=0.05)
        result = evaluate(sc, ordering)
        if fails(sc, result):
            core = causal_core(sc, ordering, result)
            key = (tuple(core), result.name)
            if key not in seen:
                seen.add(key)
                failing.append((ordering, core))
        tried[0] = i + 1
        if on_progress is not None and i % 200 == 0:
            on_progress(f"{sc.name}: {i} permuted orderings,"
                        f" {len(failing)} distinct failures")


def _rules(sc: Scenario, reference: list[Event],
           failing: list[tuple[list[Event], list[Event]]], rules: list[Rule],
           examples: int, seed: int, sufficiency_examples: int) -> Mined:
    """Check the candidate pairs of the failures; `rules` grows in place
    so that an interrupted run keeps what it found."""
    checked: set[tuple[Event, Event]] = set()
    shown: set[tuple[int, int, int]] = set()

    def check_all(pairs: set[tuple[Event, Event]]) -> int:
        added = 0
        for a, b in sorted(pairs - checked,
                           key=lambda p: (p[1].cpu, p[1].slot, p[0].slot)):
            checked.add((a, b))
            # The same op text twice in a program (cr4_set fsgsbase, say):
            # one rule per text pair, at its earliest program point.
            key = (b.cpu, a.op, b.op)
            if key in shown:
                continue
            rule = check_rule(sc, reference, a, b)
            if rule is not None:
                shown.add(key)
                rules.append(rule)
                added += 1
        return added

    pairs: set[tuple[Event, Event]] = set()
    for ordering, core in failing:
        pairs |= candidates(sc, ordering, core)
    check_all(pairs)
    # Where a trigger's window opens, events can start to arrive: what must
    # be set up by then (a GHCB, an IDT) is a rule of the form "A before the
    # op that opens the window".
    check_all(window_candidates(sc))
    # Counterexample-guided rounds: a failure that obeys every rule so far
    # suggests the pairs it runs out of order.
    sufficient: bool | None = None
    insufficient: list[Event] | None = None
    for _ in range(ROUNDS):
        extra = [((r.a.cpu, r.a.slot), (r.b.cpu, r.b.slot)) for r in rules]
        constrained = dataclasses.replace(sc, before=sc.before + extra)
        report = search_or_raise(constrained, sufficiency_examples, seed)
        if report.finding is None:
            sufficient, insufficient = True, None
            break
        sufficient, insufficient = False, report.finding.core
        shrunk = report.finding.shrunk
        if not check_all(reversed_pairs(sc, shrunk)
                         | candidates(sc, shrunk, report.finding.core)):
            break
    return Mined(sc, None, len(failing), examples,
                 transitive_reduction(rules), sufficient,
                 sufficiency_examples, insufficient)
