"""What a search reached: per rule, the units it ran in; per trigger,
where it fired. Built by probe.py, printed by summary.py."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from fuzzinit.reach.rules import Rule
from fuzzinit.scenario.load import Scenario

# What a trigger's firing records about the CPU it fires on: a name per
# dimension, and the value.
DIMENSIONS = ("IDT", "FRED", "CPU")


@dataclass
class RuleReach:
    rule: Rule
    units: int          # units in which a marked statement ran
    statements: int     # marked statements
    hit: int            # of those, how many ran in some unit


@dataclass
class TriggerReach:
    index: int
    label: str
    fired: int = 0                  # times it fired
    ruled_out: int = 0              # firings the model ruled out (invalid)
    units: int = 0                  # units it fired in
    states: dict[str, Counter[str]] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    open_states: dict[str, set[str]] = field(default_factory=dict)
    last_unit: int = -1

    def never_with(self) -> list[str]:
        """States its window was open in (it was offered there) but in
        which it never fired: "IDT full", "FRED on"."""
        out = []
        for dim in DIMENSIONS:
            seen = self.states.get(dim, Counter())
            for value in sorted(self.open_states.get(dim, set())):
                if value not in seen:
                    out.append(f"{dim} {value}")
        return out


@dataclass
class Reach:
    """What one scenario's search reached."""
    scenario: str
    unit: str                      # "orderings", "states", "corpus inputs"
    units: int
    rules: list[RuleReach]
    triggers: list[TriggerReach]

    def reached(self) -> list[RuleReach]:
        return [r for r in self.rules if r.units]

    def unreached(self) -> list[RuleReach]:
        return [r for r in self.rules if not r.units]

    def never_fired(self) -> list[TriggerReach]:
        return [t for t in self.triggers if not t.fired]

    def fraction(self) -> float:
        return len(self.reached()) / len(self.rules) if self.rules else 0.0


def trigger_labels(sc: Scenario) -> list[str]:
    """"nmi on cpu1"; with a second trigger of the same kind on the same
    CPU, its place in [[orderings.trigger]] is added ("nmi on cpu1 #2")."""
    plain = [f"{t.kind} on cpu{t.cpu}" for t in sc.triggers]
    return [p if plain.count(p) == 1 else f"{p} #{i + 1}"
            for i, p in enumerate(plain)]
