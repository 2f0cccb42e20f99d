"""`fuzzinit run`: search with Hypothesis, then reduce to the causal core."""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis.database import ExampleDatabase
from hypothesis.errors import HypothesisWarning, NoSuchExample

from fuzzinit.errors import FuzzinitError
from fuzzinit.minimise.core import causal_core
from fuzzinit.minimise.displacement import move_home
from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.orderings.strategies import Ordering, as_written, orderings
from fuzzinit.progress import Progress
from fuzzinit.report import trace as tracefile
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate, fails

if TYPE_CHECKING:
    from fuzzinit.reach.probe import Probe


@dataclass
class Finding:
    """A failing ordering as Hypothesis shrank it, and its causal core."""
    shrunk: list[Event]
    core: list[Event]
    result: Result


@dataclass
class SearchReport:
    scenario: Scenario
    seed: int
    examples: int                  # orderings generated and run
    elapsed_s: float
    finding: Finding | None
    first_failure_s: float | None  # time to the first failing ordering
    first_failure_example: int | None  # and how many orderings that took
    interrupted: bool = False
    from_database: bool = False    # the database held an example for it
    out_of_time: bool = False      # stopped at `deadline` before `examples`


# A first failure this long (events) is first tried as written (below).
AS_WRITTEN_FROM = 500


class _AsWritten(BaseException):
    """Raised from the test function when a long first failure fails the
    same way as written: Hypothesis's shrinking is skipped."""


class _OutOfTime(BaseException):
    """Raised from the test function at search()'s deadline. A
    BaseException, like KeyboardInterrupt, so that Hypothesis lets it
    through rather than counting it as a failure."""


@contextmanager
def _stop_requests(stop: list[bool]) -> Iterator[None]:
    """SIGINT/SIGTERM set a flag that the search checks between orderings,
    so the interrupt lands at a known point (not inside Hypothesis's own
    callbacks, which swallow it); a second signal interrupts at once."""

    def handler(signum: int, frame: object) -> None:
        if stop[0]:
            raise KeyboardInterrupt
        stop[0] = True

    saved = []
    # Not inside an atheris harness (the campaign's child, which alone has
    # FUZZINIT_OUT): libFuzzer's C handlers are installed there, which
    # Python cannot restore afterwards. The campaign process itself, which
    # imports atheris too, keeps Python's handlers.
    if not ("atheris" in sys.modules and "FUZZINIT_OUT" in os.environ):
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                saved.append((sig, signal.signal(sig, handler)))
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield
    finally:
        for sig, old in saved:
            signal.signal(sig, old)


def database_key(sc: Scenario, swarm: bool) -> bytes:
    """Where a scenario's failing example lives in an example database: the
    same file, mode and generator share it across runs and machines."""
    return f"fuzzinit:{sc.name}:{sc.sha256}:{sc.mode}:swarm={swarm}".encode()


def search_or_raise(sc: Scenario, examples: int, seed: int,
                    deadline: float | None = None,
                    shrink: bool = True) -> SearchReport:
    """search() for callers that use the answer as a check: an interrupted
    search has checked nothing, so the interrupt goes on up."""
    report = search(sc, examples, seed, deadline=deadline, shrink=shrink)
    if report.interrupted:
        raise KeyboardInterrupt
    return report


def search(sc: Scenario, examples: int = 1000, seed: int = 0,
           progress: bool = False, swarm: bool = False,
           database: ExampleDatabase | None = None,
           probe: Probe | None = None, deadline: float | None = None,
           shrink: bool = True) -> SearchReport:
    """Generate up to `examples` orderings; on a failure, shrink it with
    Hypothesis and reduce it to its causal core. Deterministic per seed when
    `database` is None; with a database, a failure saved by an earlier run
    (on any machine sharing it) is replayed first. A `probe` measures each
    ordering the search runs (generation and shrinking: rule coverage).
    `deadline` (time.monotonic()) stops the generation there (out_of_time);
    `shrink=False` takes the first failure as it was drawn (a check that
    only asks whether one exists).

    A first failure of AS_WRITTEN_FROM events or more is run again as
    written (strategies.as_written: its triggers where they fired, the
    programs in order around them); if that fails with the same outcome
    and chain, it is the shrunk ordering and Hypothesis does not shrink.
    Hypothesis's shrinker runs the ordering once per attempt and makes
    attempts in proportion to its length: at 128 APs (3,600 events) it
    took 74 s; as written is where it would end, up to the triggers,
    which the causal core then drops."""
    start = time.monotonic()
    count = 0
    first: float | None = None
    first_example: int | None = None
    smallest: Ordering | None = None  # kept in case shrinking is interrupted
    bar = Progress(progress)
    stop = [False]

    def failing(ordering: Ordering) -> bool:
        nonlocal count, first, first_example, smallest
        if stop[0]:
            raise KeyboardInterrupt
        if deadline is not None and first is None and \
                time.monotonic() >= deadline:
            raise _OutOfTime
        count += 1
        result = evaluate(sc, ordering, ordering.complete)
        if probe is not None:
            probe.replay(ordering)
        bad = fails(sc, result)
        if bad and first is None:
            first = time.monotonic() - start
            first_example = count
            if shrink and len(ordering) >= AS_WRITTEN_FROM and \
                    ordering.complete:
                plain = as_written(sc, ordering)
                again = evaluate(sc, plain, plain.complete)
                if probe is not None:
                    probe.replay(plain)
                if plain.complete and fails(sc, again) and \
                        (again.outcome, again.chain) == \
                        (result.outcome, result.chain):
                    smallest = plain
                    raise _AsWritten
        if bad and (smallest is None or len(ordering) < len(smallest)):
            smallest = ordering
        bar.show(f"{sc.name}: {count} orderings"
                 + (", shrinking a failure" if first is not None else ""))
        return bad

    # The stop flag covers the whole search: a signal that comes after a
    # failure was found (while it is reduced and saved to the database)
    # lets that finish, so the finding reaches the caller.
    with _stop_requests(stop):
        key = database_key(sc, swarm)
        if database is not None:
            saved = _replay_saved(sc, database, key)
            if saved is not None:
                if probe is not None:
                    probe.replay(saved)
                core = causal_core(sc, saved, evaluate(sc, saved))
                return SearchReport(sc, seed, 1, time.monotonic() - start,
                                    Finding(saved, core, evaluate(sc, core)),
                                    time.monotonic() - start, 1, False, True)
        # Hypothesis's own database is off: a seeded find() ignores it, and
        # fuzzinit stores the shrunk ordering itself (below), in a format that
        # outlives Hypothesis versions.
        phases = [Phase.generate, Phase.shrink] if shrink else \
            [Phase.generate]
        config = settings(max_examples=examples, database=None, deadline=None,
                          phases=phases,
                          suppress_health_check=list(HealthCheck))
        interrupted = out_of_time = False
        shrunk: Ordering | None = None
        try:
            with warnings.catch_warnings():
                # find() describes each example it runs; at 100+ APs that
                # text passes Hypothesis's size warning, which says nothing
                # to a user of `run`.
                warnings.filterwarnings("ignore", "Generating overly large"
                                        " repr", HypothesisWarning)
                shrunk = find(orderings(sc, swarm), failing, settings=config,
                              random=random.Random(seed))
        except NoSuchExample:
            shrunk = None
        except _OutOfTime:
            out_of_time = True
        except _AsWritten:
            shrunk = smallest
        except KeyboardInterrupt:
            interrupted = True
            shrunk = smallest  # report the best failure seen so far
        finally:
            bar.done()
        finding = None
        if shrunk is not None and not shrink:
            result = evaluate(sc, shrunk, shrunk.complete)
            return SearchReport(sc, seed, count, time.monotonic() - start,
                                Finding(list(shrunk), list(shrunk), result),
                                first, first_example, interrupted)
        if shrunk is not None and sc.mode == "permute" and shrunk.complete:
            moved = Ordering(move_home(sc, list(shrunk),
                                       evaluate(sc, shrunk, shrunk.complete)))
            shrunk = moved
        if shrunk is not None and database is not None and shrunk.complete:
            value = json.dumps(
                [tracefile.event_json(sc, e) for e in shrunk]).encode()
            _database_call(database.save, key, value)
        if shrunk is not None:
            result = evaluate(sc, shrunk, shrunk.complete)
            core = causal_core(sc, list(shrunk), result) if shrunk.complete \
                else list(shrunk)
            finding = Finding(list(shrunk), core, evaluate(sc, core)
                              if shrunk.complete else result)
        return SearchReport(sc, seed, count, time.monotonic() - start, finding,
                            first, first_example, interrupted,
                            out_of_time=out_of_time)


def _replay_saved(sc: Scenario, database: ExampleDatabase,
                  key: bytes) -> list[Event] | None:
    """The first saved ordering that still fails; ones that no longer do
    (the model or scenario changed) are dropped."""
    values = _database_call(lambda: list(database.fetch(key))) or []
    for value in sorted(values, key=lambda v: (len(v), v)):
        try:
            raw = json.loads(value)
            events = tracefile.events_of(sc, {"events": raw}, "database")
        except (ValueError, TypeError, FuzzinitError):
            _database_call(database.delete, key, value)
            continue
        if fails(sc, evaluate(sc, events)):
            return events
        _database_call(database.delete, key, value)
    return None


def _database_call(call: Callable[..., Any], *args: Any) -> Any:
    """An example-database call that cannot cost the search its finding: a
    database that fails mid-run (a Redis server gone, a read-only user) is
    a warning, and the run goes on without it."""
    try:
        return call(*args)
    except Exception as exc:  # redis raises its own RedisError family
        sys.stderr.write(f"fuzzinit: warning: example database:"
                         f" {type(exc).__name__}: {exc}; going on without"
                         " it\n")
        return None
