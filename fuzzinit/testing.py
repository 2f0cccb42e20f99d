"""fuzzinit inside your own test suite.

The three-line test:

    from fuzzinit.testing import assert_no_failing_ordering
    def test_ap_bringup():
        assert_no_failing_ordering("models/upstream-fix-sev-es.toml")

It searches the scenario with the active profile's budget and, on a
failure, saves the causal core as a trace and fails with the core, the
chain and the replay command. For a hand-written Hypothesis test, combine
`orderings(scenario)` with `check_ordering(scenario, ordering)`.

Profiles (`--fuzzinit-profile` or FUZZINIT_PROFILE; default dev):

    dev      300 examples, random seed, database .hypothesis/fuzzinit
    ci       2000 examples, seed 0, no database: the same result every run
    nightly  50000 examples, random seed, database .hypothesis/fuzzinit

They are also registered as Hypothesis profiles fuzzinit-dev, fuzzinit-ci
and fuzzinit-nightly for @given tests over `orderings(...)`.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fuzzinit.database import DEFAULT as DEFAULT_DB
from fuzzinit.database import open_database
from fuzzinit.errors import TraceError
from fuzzinit.minimise.core import causal_core
from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event, well_formed
from fuzzinit.orderings.strategies import Ordering
from fuzzinit.orderings.strategies import orderings as _orderings
from fuzzinit.reach.result import Reach
from fuzzinit.reach.rules import BY_ID
from fuzzinit.reach.summary import lines as reach_lines
from fuzzinit.report import trace as tracefile
from fuzzinit.report.files import write_atomic
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.search import search
from fuzzinit.verdict import evaluate, fails, signature

__all__ = ["PROFILES", "FailingOrdering", "TooLittleReached",
           "active_profile", "assert_no_failing_ordering",
           "assert_replay_passes", "check_ordering", "load_scenario",
           "orderings", "set_min_rule_coverage", "set_profile"]


@dataclass(frozen=True)
class Profile:
    examples: int
    seed: int | None          # None: a fresh random seed each run
    database: str             # "none" or a folder


PROFILES: dict[str, Profile] = {
    "dev": Profile(300, None, DEFAULT_DB),
    "ci": Profile(2000, 0, "none"),
    "nightly": Profile(50_000, None, DEFAULT_DB),
}
for _name, _p in PROFILES.items():
    hypothesis_settings.register_profile(
        f"fuzzinit-{_name}", max_examples=_p.examples, deadline=None,
        derandomize=_p.seed is not None,
        suppress_health_check=list(HealthCheck),
        database=open_database(_p.database))

_selected: str | None = None


def set_profile(name: str) -> None:
    """Select a profile (the pytest plugin calls this for
    --fuzzinit-profile)."""
    global _selected
    if name not in PROFILES:
        raise ValueError(f"unknown fuzzinit profile {name!r}; expected one"
                         f" of {', '.join(PROFILES)}")
    _selected = name


def active_profile() -> str:
    """--fuzzinit-profile, else FUZZINIT_PROFILE, else dev."""
    name = _selected or os.environ.get("FUZZINIT_PROFILE") or "dev"
    if name not in PROFILES:
        raise ValueError(f"FUZZINIT_PROFILE={name!r}: unknown profile;"
                         f" expected one of {', '.join(PROFILES)}")
    return name


def load_scenario(scenario: Scenario | str | Path) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load(scenario)


def orderings(scenario: Scenario | str | Path,
              swarm: bool = False) -> st.SearchStrategy[Ordering]:
    """The Hypothesis strategy of the scenario's orderings."""
    return _orderings(load_scenario(scenario), swarm)


class FailingOrdering(AssertionError):
    """A scenario has an ordering that fails; the message has its causal
    core, its chain and the command that replays it."""


class TooLittleReached(AssertionError):
    """No ordering failed, but the search reached less of the model than
    the test asked for (min_rule_coverage): its clean verdict proves less
    than it seems to."""


# --fuzzinit-min-rule-coverage: the default of min_rule_coverage.
_min_rule_coverage: float | None = None


def set_min_rule_coverage(fraction: float | None) -> None:
    """The default min_rule_coverage of assert_no_failing_ordering (the
    pytest plugin's --fuzzinit-min-rule-coverage)."""
    global _min_rule_coverage
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise ValueError(f"min_rule_coverage {fraction}: expected a fraction"
                         " from 0 to 1")
    _min_rule_coverage = fraction


def _check_wanted(wanted: float | Collection[str]) -> None:
    """A bad min_rule_coverage is a mistake in the test: said before the
    search, whatever it finds."""
    if isinstance(wanted, str):
        raise ValueError(f"min_rule_coverage {wanted!r}: expected a fraction"
                         " or a list of rule ids, e.g. [\"fred-delivery\"]")
    if isinstance(wanted, float | int):
        if not 0 <= wanted <= 1:
            raise ValueError(f"min_rule_coverage {wanted}: expected a"
                             " fraction from 0 to 1")
        return
    unknown = sorted(set(wanted) - set(BY_ID))
    if unknown:
        raise ValueError(f"min_rule_coverage: unknown rule ids"
                         f" {', '.join(unknown)}; the ids are in"
                         " fuzzinit/reach/rules.py")


def _check_reach(sc: Scenario, reach: Reach,
                 wanted: float | Collection[str]) -> None:
    """Raise TooLittleReached when `reach` falls short of `wanted`: a
    fraction of the model's rules, or rule ids that must each be reached;
    either way, every trigger must have fired."""
    problems = []
    reached = {r.rule.id for r in reach.reached()}
    if isinstance(wanted, float | int):
        if reach.fraction() < wanted:
            problems.append(f"it reached {len(reached)} of {len(reach.rules)}"
                            f" model rules ({reach.fraction():.0%}), below"
                            f" min_rule_coverage {wanted:.0%}")
    else:
        missing = [rid for rid in wanted if rid not in reached]
        if missing:
            problems.append(f"it never reached {', '.join(missing)}")
    never = [t.label for t in reach.never_fired()]
    if never:
        problems.append(f"trigger{'s' if len(never) > 1 else ''}"
                        f" {', '.join(never)} never fired")
    if problems:
        raise TooLittleReached(
            f"{sc.name}: no failing ordering in {reach.units} orderings, but"
            f" {'; '.join(problems)}\n" + "\n".join(reach_lines(reach)))


def _failure_message(sc: Scenario, core: list[Event], result: Result,
                     trace_path: Path, seed: int | None) -> str:
    lines = [f"{sc.name}: {result.name} - causal core ({len(core)} events):"]
    lines += [f"  {i:2d}. cpu{e.cpu} {sc.op_text(e.op)}"
              + ("  (trigger)" if e.slot < 0 else "")
              for i, e in enumerate(core, 1)]
    lines.append("chain:")
    lines += [f"  {link}" for link in result.chain]
    lines.append(f"replay: fuzzinit replay {trace_path}")
    if seed is not None:
        lines.append(f"search: fuzzinit run {sc.path} --seed {seed}")
    return "\n".join(lines)


def _save(sc: Scenario, core: list[Event], result: Result,
          seed: int | None, corpus: str | Path) -> Path:
    path = Path(corpus) / sc.name / f"{signature(result)}.json"
    write_atomic(path, tracefile.dumps(tracefile.to_json(
        sc, core, seed, {"verdict": result.name, "chain": result.chain})))
    return path


def assert_no_failing_ordering(
        scenario: Scenario | str | Path, *, examples: int | None = None,
        seed: int | None = None, corpus: str | Path = "corpus",
        min_rule_coverage: float | Collection[str] | None = None) -> None:
    """Search `scenario`; raise FailingOrdering if an ordering fails.

    With `min_rule_coverage` (a fraction of the model's rules, or rule
    ids that must each be reached; default: --fuzzinit-min-rule-coverage)
    the search is measured (--rule-coverage), and a clean search that
    reached less, or left a trigger unfired, raises TooLittleReached."""
    sc = load_scenario(scenario)
    profile = PROFILES[active_profile()]
    if seed is None:
        seed = profile.seed if profile.seed is not None else \
            random.SystemRandom().randrange(2**32)
    wanted = _min_rule_coverage if min_rule_coverage is None \
        else min_rule_coverage
    probe = None
    if wanted is not None:
        _check_wanted(wanted)
        from fuzzinit.reach.probe import Probe
        probe = Probe(sc)
    report = search(sc, examples or profile.examples, seed,
                    database=open_database(profile.database), probe=probe)
    if report.interrupted:
        raise KeyboardInterrupt  # nothing was checked
    if report.finding is None:
        if probe is not None and wanted is not None:
            _check_reach(sc, probe.result(), wanted)
        return
    finding = report.finding
    path = _save(sc, finding.core, finding.result, seed, corpus)
    raise FailingOrdering(_failure_message(sc, finding.core, finding.result,
                                           path, seed))


def check_ordering(scenario: Scenario | str | Path, ordering: list[Event],
                   corpus: str | Path = "corpus") -> None:
    """For @given tests over `orderings(...)`: raise FailingOrdering with
    the ordering's causal core if it fails."""
    sc = load_scenario(scenario)
    complete = getattr(ordering, "complete", True)
    result = evaluate(sc, ordering, complete)
    if not fails(sc, result):
        return
    core = causal_core(sc, list(ordering), result) if complete else \
        list(ordering)
    final = evaluate(sc, core) if complete else result
    path = _save(sc, core, final, None, corpus)
    raise FailingOrdering(_failure_message(sc, core, final, path, None))


def assert_replay_passes(scenario: Scenario | str | Path,
                         events: list[dict[str, object]],
                         mode: str | None = None) -> None:
    """Replay trace events ({"cpu", "op"} dicts) against `scenario`; raise
    FailingOrdering with the chain if the ordering fails there. If the
    scenario's programs no longer allow that ordering (a fix moved an op),
    search the scenario instead."""
    sc = load_scenario(scenario)
    if mode in ("interleave", "permute") and mode != sc.mode:
        sc = dataclasses.replace(sc, mode=mode)  # as the trace was found
    try:
        ordering = tracefile.events_of(sc, {"events": events},
                                       "regression test")
    except TraceError:
        ordering = None  # the fix removed an op the ordering used
    if ordering is None or well_formed(sc, ordering):
        # The fix reordered the program: this exact ordering can no longer
        # happen, so check the scenario itself (bounded, seed 0) instead.
        assert_no_failing_ordering(sc, examples=PROFILES["ci"].examples,
                                   seed=0)
        return
    result = evaluate(sc, ordering)
    if fails(sc, result):
        chain = "\n".join(f"  {link}" for link in result.chain)
        raise FailingOrdering(f"{sc.name}: the replayed ordering still ends"
                              f" in {result.name}:\n{chain}")
