"""Seeded random orderings without Hypothesis: for benchmarks and for the
compiled-versus-interpreted model check."""

from __future__ import annotations

import random

from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario


def random_ordering(sc: Scenario, rng: random.Random,
                    trigger_chance: float = 0.1) -> list[Event]:
    """A complete interleaving; each allowed trigger fires with
    `trigger_chance` at each step it is allowed."""
    sched = Schedule(sc)
    out: list[Event] = []
    while True:
        ready = sched.program_candidates()
        triggers = [t for t in sched.trigger_candidates()
                    if rng.random() < trigger_chance]
        choices = ready + triggers
        if not choices:
            return out
        pick = choices[rng.randrange(len(choices))]
        sched.take(pick)
        out.append(pick)
