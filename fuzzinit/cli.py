"""The `fuzzinit` command line.

Exit status: 0 no failing ordering (or a replayed trace passes), 1 a failing
ordering was found (or a replayed trace fails), 2 bad input or usage (one
line on stderr), 130 interrupted by Ctrl-C and 143 by SIGTERM (after a
summary), 141 when the reader of stdout went away.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from fuzzinit import model_build
from fuzzinit.database import DEFAULT as DEFAULT_DB
from fuzzinit.database import open_database
from fuzzinit.errors import FuzzinitError, TraceError, describe_os_error
from fuzzinit.explore.options import add_store_options
from fuzzinit.export.command import add_parser as add_export_parser
from fuzzinit.minimise.core import causal_core
from fuzzinit.model.arch import vector_name
from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.reach.command import add_rule_coverage, probe_for
from fuzzinit.reach.summary import lines as reach_lines
from fuzzinit.reach.summary import to_json as reach_json
from fuzzinit.reach.summary import verdict_note
from fuzzinit.report import trace as tracefile
from fuzzinit.report.commit import render as render_commit
from fuzzinit.report.document import build as build_report
from fuzzinit.report.files import write_atomic
from fuzzinit.report.fixes import FIX_CHECK_S
from fuzzinit.report.html import render as render_html
from fuzzinit.report.markdown import render as render_markdown
from fuzzinit.report.regression import regression_test
from fuzzinit.report.write import report_json, write_reports, write_trace
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.search import SearchReport, search
from fuzzinit.verdict import evaluate, fails, signature

if TYPE_CHECKING:
    from fuzzinit.constraints import Mined
    from fuzzinit.reach.result import Reach


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"fuzzinit: usage error: {message}; see"
                         f" '{self.prog} --help'\n")
        sys.exit(2)


def _version() -> str:
    try:
        version = importlib.metadata.version("fuzzinit")
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    return f"fuzzinit {version}, {model_build.describe()}"


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="fuzzinit", description="Find x86 CPU-initialisation"
                " orderings that end in a triple fault.")
    p.add_argument("--version", action="version", version=_version(),
                   help="print the version and which build of the model"
                   " runs (compiled or interpreted), then exit")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="search a scenario with Hypothesis")
    run.add_argument("model", help="scenario file (models/*.toml)")
    run.add_argument("--examples", type=int, default=1000,
                     help="orderings to try (default 1000)")
    run.add_argument("--seed", type=int, default=0, help="random seed")
    run.add_argument("--json", action="store_true", help="one JSON object")
    run.add_argument("--reports", default="reports", help="report folder")
    run.add_argument("--corpus", default="corpus", help="trace folder")
    run.add_argument("--mode", choices=("interleave", "permute"),
                     help="override the scenario's [orderings] mode")
    run.add_argument("--swarm", action="store_true",
                     help="swarm testing: switch trigger kinds on per example")
    run.add_argument("--db", default=DEFAULT_DB,
                     help="example database: none, a folder, or"
                     f" redis://HOST:PORT (default {DEFAULT_DB})")
    add_rule_coverage(run)
    _add_fix_check_time(run)
    replay = sub.add_parser("replay", help="replay a trace file")
    replay.add_argument("trace")
    replay.add_argument("--scenario", help="scenario to replay against"
                        " (default: the one named in the trace)")
    replay.add_argument("--json", action="store_true")
    mini = sub.add_parser("minimize", help="reduce a trace to its causal core")
    mini.add_argument("trace")
    mini.add_argument("--scenario")
    mini.add_argument("--json", action="store_true")
    rep = sub.add_parser("report", help="print a trace's report, or write a"
                         " regression test for it")
    rep.add_argument("trace")
    rep.add_argument("--scenario")
    rep.add_argument("--format", choices=("md", "json", "html", "commit"),
                     default="md", help="commit: a git commit message body")
    rep.add_argument("--pytest", nargs="?", const="", default=None,
                     metavar="FILE", help="write a pytest file that replays"
                     " the trace and asserts it does not fail")
    _add_fix_check_time(rep)
    cons = sub.add_parser("constraints", help="mine the happens-before rules"
                          " safe orderings obey (permutation mode)")
    cons.add_argument("model")
    cons.add_argument("--examples", type=int, default=2000,
                      help="permuted orderings to mine (default 2000)")
    cons.add_argument("--seed", type=int, default=0)
    cons.add_argument("--json", action="store_true")
    cons.add_argument("--corpus", default="corpus", help="trace folder")
    fuzz = sub.add_parser("fuzz", help="long coverage-guided campaign"
                          " (atheris/libFuzzer)")
    fuzz.add_argument("model")
    fuzz.add_argument("--time", type=int, default=None, metavar="SECONDS",
                      help="stop after this long (default: until Ctrl-C"
                      " unless --runs)")
    fuzz.add_argument("--runs", type=int, default=None,
                      help="stop after this many inputs")
    fuzz.add_argument("--jobs", type=int, default=1,
                      help="parallel workers (libFuzzer fork mode)")
    fuzz.add_argument("--corpus", default="corpus", help="corpus folder")
    fuzz.add_argument("--reports", default="reports", help="report folder")
    fuzz.add_argument("--seed", type=int, default=None)
    fuzz.add_argument("--coverage", choices=("state", "lines"),
                      default="state", help="what counts as new: model"
                      " state (default) or Python lines of the model")
    fuzz.add_argument("--stop-on-failure", action="store_true")
    fuzz.add_argument("--json", action="store_true")
    add_rule_coverage(fuzz, "the campaign's corpus, replayed afterwards")
    exp = sub.add_parser("explore", help="every ordering, breadth first,"
                         " up to bounds")
    exp.add_argument("model")
    exp.add_argument("--max-triggers", type=int, default=None, metavar="K",
                     help="default: every trigger the scenario allows")
    exp.add_argument("--budget", type=int, default=1_000_000,
                     metavar="STATES")
    exp.add_argument("--mode", choices=("interleave", "permute"))
    exp.add_argument("--no-por", action="store_true",
                     help="no partial-order reduction")
    exp.add_argument("--no-symmetry", action="store_true",
                     help="no symmetry reduction")
    exp.add_argument("--json", action="store_true")
    add_store_options(exp)
    add_rule_coverage(exp, "each expanded state")
    win = sub.add_parser("windows", help="where each trigger kind is fatal")
    win.add_argument("model")
    win.add_argument("--json", action="store_true")
    vf = sub.add_parser("verify-fix", help="BEFORE must fail, AFTER must"
                        " explore clean")
    vf.add_argument("before")
    vf.add_argument("after")
    vf.add_argument("--max-triggers", type=int, default=None, metavar="K",
                    help="default: every trigger the scenarios allow")
    vf.add_argument("--budget", type=int, default=1_000_000,
                    metavar="STATES")
    vf.add_argument("--json", action="store_true")
    add_store_options(vf)
    add_rule_coverage(vf, "both explorations")
    add_export_parser(sub)
    models = sub.add_parser("models", help="list scenarios and expectations")
    models.add_argument("folder", nargs="?", default=None,
                        help="a folder of scenarios (default: the library"
                        " installed with fuzzinit)")
    models.add_argument("--json", action="store_true")
    return p


EXIT_INTERRUPTED = 130   # Ctrl-C (128 + SIGINT)
EXIT_TERMINATED = 143    # SIGTERM (128 + SIGTERM)
_terminated = [False]


def _on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM ends a command the way Ctrl-C does (summary, counts so far);
    the exit status then says which signal it was."""
    _terminated[0] = True
    raise KeyboardInterrupt


def _interpreted_again(argv: list[str] | None) -> NoReturn:
    """--rule-coverage traces the model's Python code, which a compiled
    model does not run: start this command again on the interpreted model
    (nothing has been searched or printed yet)."""
    if argv is not None:
        raise FuzzinitError("--rule-coverage measures the interpreted model;"
                            " this process runs the compiled one: set"
                            f" {model_build.ENV}=interpreted before"
                            " importing fuzzinit")
    sys.stdout.flush()
    sys.stderr.flush()
    env = dict(os.environ, **{model_build.ENV: "interpreted",
                              model_build.REEXEC: "1"})
    os.execve(sys.executable, [sys.executable, "-m", "fuzzinit",
                               *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "rule_coverage", False) \
            and model_build.build() == "compiled":
        try:
            _interpreted_again(argv)
        except FuzzinitError as exc:
            sys.stderr.write(f"fuzzinit: error: {exc}\n")
            return 2
    try:
        saved = signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread: leave signals alone
        saved = signal.getsignal(signal.SIGTERM)
    _terminated[0] = False
    try:
        status = _dispatch(args)
        # Output that never reached its reader is a failed run, not a
        # clean one (stdout on a full disk, a closed pipe).
        sys.stdout.flush()
    except FuzzinitError as exc:
        sys.stderr.write(f"fuzzinit: error: {exc}\n")
        return 2
    except BrokenPipeError:
        # The reader went away (| head): say nothing more, and not 0.
        _silence_stdout()
        return 141
    except OSError as exc:
        _silence_stdout()
        sys.stderr.write("fuzzinit: error:"
                         f" {describe_os_error(exc, 'I/O error on')}\n")
        return 2
    except RecursionError:
        sys.stderr.write("fuzzinit: error: input nested too deeply to"
                         " process; fix: flatten the nesting\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("fuzzinit: interrupted\n")
        status = EXIT_INTERRUPTED
    finally:
        if saved is not _on_sigterm:
            try:
                signal.signal(signal.SIGTERM, saved)
            except (ValueError, TypeError):
                pass
    if status == EXIT_INTERRUPTED and _terminated[0]:
        return EXIT_TERMINATED
    return status


@contextmanager
def _deferred_signals() -> Iterator[list[int]]:
    """While a finding is printed and saved, Ctrl-C and SIGTERM are noted,
    not raised: the finding is whole on screen and on disk, and the
    command then exits 1 for it."""
    seen: list[int] = []

    def note(signum: int, frame: object) -> None:
        seen.append(signum)

    saved = []
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            saved.append((sig, signal.signal(sig, note)))
    except ValueError:   # not the main thread
        pass
    try:
        yield seen
    finally:
        for sig, old in saved:
            signal.signal(sig, old)
        if seen:
            sys.stderr.write("fuzzinit: interrupted while saving the finding;"
                             " it is saved (see above)\n")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return cmd_run(args)
    if args.command in ("replay", "minimize", "report"):
        return cmd_trace(args)
    if args.command == "constraints":
        return cmd_constraints(args)
    if args.command == "fuzz":
        return cmd_fuzz(args)
    if args.command in ("explore", "windows", "verify-fix"):
        from fuzzinit.explore.commands import run_command
        return run_command(args)
    if args.command == "export":
        from fuzzinit.export.command import run_command as run_export
        return run_export(args)
    return cmd_models(args)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's own flush at
    exit does not fail a second time and print a traceback."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _events_json(sc: Scenario, events: list[Event]) -> list[dict[str, Any]]:
    return [tracefile.event_json(sc, e) for e in events]


def event_label(sc: Scenario, ev: Event) -> str:
    where = sc.routine_of[ev.cpu][ev.slot] if ev.slot >= 0 else "trigger"
    text = f"cpu{ev.cpu} {sc.op_text(ev.op)}"
    return f"{text}  ({where})" if where else text


def _writable_folder(flag: str, value: str) -> Path:
    """A folder the run will write into, checked before the search so that
    a typo does not cost the search: not a file, and writable (the nearest
    existing ancestor when it does not exist yet)."""
    folder = Path(value)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise FuzzinitError(f"{flag} {value}: {probe} is a file; expected a"
                            f" folder; fix: name a folder for {flag}")
    if not os.access(probe if str(probe) else ".", os.W_OK | os.X_OK):
        raise FuzzinitError(f"{flag} {value}: {probe} is not writable;"
                            f" fix: point {flag} at a writable folder")
    return folder


def _fix_check_time(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a positive number of seconds")
    return value


def _add_fix_check_time(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fix-check-time", type=_fix_check_time,
                        default=FIX_CHECK_S, metavar="SECONDS",
                        help="seconds the report's fix checks share"
                        f" (default {FIX_CHECK_S:g})")


def _save_finding(sc: Scenario, core: list[Event], shrunk: list[Event],
                  result: Result, seed: int | None, trace_path: Path,
                  reports: Path, reach: Reach | None = None,
                  fix_check_s: float = FIX_CHECK_S) -> str | None:
    """Write the trace, then the reports. Returns an error line when a
    write failed (the finding is already printed), else None."""
    try:
        write_trace(sc, core, shrunk, result, seed, trace_path)
    except OSError as exc:
        return f"{describe_os_error(exc)}; the finding above is not saved"
    try:
        write_reports(sc, core, shrunk, result, seed, trace_path, reports,
                      reach_json(reach) if reach is not None else None,
                      fix_check_s)
    except OSError as exc:
        return (f"{describe_os_error(exc)}; the trace is saved:"
                f" fuzzinit report {trace_path}")
    except KeyboardInterrupt:
        # The finding is saved; its report (with the fix searches) is not.
        return (f"interrupted while writing the report; the trace is saved:"
                f" fuzzinit report {trace_path}")
    return None


def cmd_run(args: argparse.Namespace) -> int:
    if args.examples < 1:
        raise FuzzinitError(f"--examples {args.examples}: expected a positive"
                            " number of orderings")
    sc = load(args.model)
    reports = _writable_folder("--reports", args.reports)
    corpus = _writable_folder("--corpus", args.corpus)
    _writable_folder("--corpus", str(corpus / sc.name))
    if args.mode:
        sc = dataclasses.replace(sc, mode=args.mode)
    probe = probe_for(args, sc)
    report = search(sc, args.examples, args.seed,
                    progress=not args.json and sys.stderr.isatty(),
                    swarm=args.swarm, database=open_database(args.db),
                    probe=probe)
    reach = None
    if probe is not None:
        try:
            reach = probe.result()
        except KeyboardInterrupt:
            # A finding must not be lost to the measuring: report it
            # without the coverage, and a clean run as interrupted.
            sys.stderr.write("fuzzinit: interrupted while counting rule"
                             " coverage; reporting without it\n")
            if report.finding is None:
                report.interrupted = True
    out: dict[str, Any] = {
        "scenario": sc.path, "name": sc.name, "seed": args.seed,
        "examples": report.examples, "elapsed_s": round(report.elapsed_s, 4),
        "first_failure_s": None if report.first_failure_s is None
        else round(report.first_failure_s, 4),
        "expect": sc.expect, "interrupted": report.interrupted,
        "first_failure_example": report.first_failure_example,
        "mode": sc.mode, "from_database": report.from_database,
    }
    if reach is not None:
        out["rule_coverage"] = reach_json(reach)
    finding = report.finding
    if finding is None:
        out.update(verdict="ok", events=[], chain=[])
        if args.json:
            print(json.dumps(out))
        else:
            state = "interrupted after" if report.interrupted else \
                "no failing ordering in"
            print(f"{sc.name}: {state} {report.examples} orderings"
                  f" ({report.elapsed_s:.2f} s, seed {args.seed})"
                  + (verdict_note(reach) if reach is not None else ""))
            if reach is not None:
                print("\n".join(reach_lines(reach)))
        return EXIT_INTERRUPTED if report.interrupted else 0
    result = finding.result
    if report.interrupted:
        sys.stderr.write("fuzzinit: interrupted while shrinking; reporting"
                         " the smallest failing ordering seen so far\n")
    sig = signature(result)
    trace_path = corpus / sc.name / f"{sig}.json"
    md = reports / f"{sc.name}-{sig}.md"
    out.update(verdict=result.name, events=_events_json(sc, finding.core),
               chain=result.chain, signature=sig, trace=str(trace_path),
               report=str(md), shrunk_events=len(finding.shrunk),
               elapsed_s=round(report.elapsed_s, 4))
    # The finding is printed before anything is written: a full disk or
    # a kill while writing cannot lose it; and output that cannot be
    # printed does not stop it from being saved.
    with _deferred_signals():
        try:
            _print_finding(args, sc, report, out, reach)
        except OSError:
            problem = _save_finding(sc, finding.core, finding.shrunk, result,
                                    args.seed, trace_path, reports, reach,
                                    args.fix_check_time)
            if problem is not None:
                # Neither shown nor saved: say at least what it was.
                core = ", ".join(f"cpu{e['cpu']} {e['op']}"
                                 for e in out["events"])
                sys.stderr.write(f"fuzzinit: error: {problem}; the finding:"
                                 f" {result.name}: {core}\n")
            raise
        problem = _save_finding(sc, finding.core, finding.shrunk, result,
                                args.seed, trace_path, reports, reach,
                                args.fix_check_time)
    if problem is not None:
        sys.stderr.write(f"fuzzinit: error: {problem}\n")
    return 1


def _print_finding(args: argparse.Namespace, sc: Scenario,
                   report: SearchReport, out: dict[str, Any],
                   reach: Reach | None = None) -> None:
    finding = report.finding
    assert finding is not None
    if args.json:
        print(json.dumps(out), flush=True)
        return
    print(f"{sc.name}: {out['verdict']} after {report.examples} orderings"
          f" ({report.elapsed_s:.2f} s, seed {args.seed})")
    print(f"causal core ({len(finding.core)} of {len(finding.shrunk)}"
          " events):")
    for i, ev in enumerate(finding.core, 1):
        print(f"  {i:2d}. {event_label(sc, ev)}")
    print("chain:")
    for link in out["chain"]:
        print(f"  {link}")
    print(f"report: {out['report']}")
    print(f"trace:  {out['trace']}  (fuzzinit replay {out['trace']})",
          flush=True)
    if reach is not None:
        print("\n".join(reach_lines(reach)), flush=True)


def _load_trace(args: argparse.Namespace) -> tuple[Scenario, list[Event],
                                                   dict[str, Any], list[str]]:
    doc = tracefile.read(args.trace)
    scenario_path = args.scenario or doc["scenario"]
    if not Path(scenario_path).exists():
        raise TraceError(f"{args.trace}: scenario {scenario_path} not found;"
                         " fix: run from the folder the trace was written"
                         " in, or pass --scenario PATH")
    sc = load(scenario_path)
    mode = doc.get("mode")
    if mode in ("interleave", "permute") and mode != sc.mode:
        sc = dataclasses.replace(sc, mode=mode)  # as the trace was made
    notes = []
    if doc.get("scenario_sha256") not in (None, sc.sha256):
        notes.append(f"warning: {scenario_path} changed since the trace was"
                     " written (sha256 differs); replaying anyway")
    return sc, tracefile.events_of(sc, doc, args.trace), doc, notes


def cmd_trace(args: argparse.Namespace) -> int:
    start = time.monotonic()
    sc, events, doc, notes = _load_trace(args)
    for note in notes:
        sys.stderr.write(f"fuzzinit: {note}\n")
    result = evaluate(sc, events)
    if result.name == "invalid":
        raise TraceError(f"{args.trace}: the ordering cannot happen in"
                         f" {sc.path}: {result.chain[-1]}")
    if args.command == "report":
        return _cmd_report(args, sc, events, doc, result)
    if args.command == "minimize" and fails(sc, result):
        events = causal_core(sc, events, result)
        result = evaluate(sc, events)
    out = {"scenario": sc.path, "verdict": result.name,
           "events": _events_json(sc, events), "chain": result.chain,
           "warnings": result.warnings, "seed": doc.get("seed"),
           "handled": [{"cpu": cpu, "vector": v, "name": vector_name(v)}
                       for cpu, v in result.handled],
           "elapsed_s": round(time.monotonic() - start, 4)}
    recorded = doc.get("verdict")
    if recorded is not None and recorded != result.name:
        # The model is deterministic: a different verdict means the model
        # or the scenario changed since the trace was written.
        sys.stderr.write(f"fuzzinit: warning: the trace recorded {recorded},"
                         f" the model now says {result.name}: the model or"
                         " scenario changed\n")
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{sc.name}: {result.name} ({len(events)} events)")
        if args.command == "minimize":
            for i, ev in enumerate(events, 1):
                print(f"  {i:2d}. {event_label(sc, ev)}")
        for link in result.chain:
            print(f"  {link}")
        if result.handled:
            print("  stub handlers that ran: " + ", ".join(
                f"cpu{cpu} {vector_name(v)}" for cpu, v in result.handled))
    return 1 if fails(sc, result) else 0


def cmd_constraints(args: argparse.Namespace) -> int:
    from fuzzinit.constraints import mine

    if args.examples < 1:
        raise FuzzinitError(f"--examples {args.examples}: expected a positive"
                            " number of orderings")
    start = time.monotonic()
    sc = load(args.model)
    tty = not args.json and sys.stderr.isatty()

    def progress(text: str) -> None:
        if tty:
            sys.stderr.write(f"\r{text}\x1b[K")
            sys.stderr.flush()

    corpus = _writable_folder("--corpus", args.corpus)
    mined = mine(sc, args.examples, args.seed, on_progress=progress)
    if tty:
        sys.stderr.write("\r\x1b[K")
    psc = mined.scenario
    elapsed = round(time.monotonic() - start, 3)
    if mined.reference_failure is not None:
        ref = mined.reference_failure
        if args.json:
            print(json.dumps({"scenario": sc.path, "name": sc.name,
                              "reference_fails": True, "verdict": ref.name,
                              "chain": ref.chain, "rules": [],
                              "elapsed_s": elapsed}))
        else:
            print(f"{sc.name}: the programs as written already fail"
                  f" ({ref.name}); rules are mined against a safe order:"
                  f" fix that first (fuzzinit run {sc.path} shows how)")
            for link in ref.chain:
                print(f"  {link}")
        return 1
    rules_json = []
    folder = corpus / sc.name / "constraints"
    pending: list[tuple[Path, dict[str, Any]]] = []
    for rule in mined.rules:
        sig = signature(rule.result) + f"-{rule.a.slot}-{rule.b.slot}"
        path = folder / f"{sig}.json"
        # seed None: `fuzzinit run` does not reproduce a mined
        # counterexample; `fuzzinit replay` does.
        pending.append((path, tracefile.to_json(
            psc, rule.counterexample, None, {
                "verdict": rule.result.name, "chain": rule.result.chain,
                "rule": rule.text(psc)})))
        rules_json.append({
            "rule": rule.text(psc), "why": rule.why(psc),
            "before": tracefile.event_json(psc, rule.a),
            "after": tracefile.event_json(psc, rule.b),
            "verdict": rule.result.name,
            "counterexample": _events_json(psc, rule.counterexample),
            "trace": str(path)})
    out: dict[str, Any] = {
        "scenario": sc.path, "name": sc.name, "mode": "permute",
        "seed": args.seed, "examples": mined.examples,
        "failures": mined.failures, "rules": rules_json,
        "sufficient": mined.sufficient,
        "sufficiency_examples": mined.sufficiency_examples,
        "insufficient_counterexample": None if mined.insufficient_core is None
        else _events_json(psc, mined.insufficient_core),
        "interrupted": mined.interrupted, "elapsed_s": elapsed}
    # Printed first, then written: a full disk loses no rule; output that
    # cannot be printed does not stop them from being saved.
    with _deferred_signals():
        try:
            if args.json:
                print(json.dumps(out), flush=True)
            else:
                _print_rules(sc, psc, mined, rules_json, elapsed, args.seed)
                sys.stdout.flush()
        except OSError:
            _save_rules(pending)
            raise
        problem = _save_rules(pending)
    if problem is not None:
        sys.stderr.write(f"fuzzinit: error: {problem}; the rules above are"
                         " not all saved\n")
        return 1
    failing = mined.failures or mined.rules or mined.sufficient is False
    if mined.interrupted and not failing:
        return EXIT_INTERRUPTED
    return 1 if failing else 0


def _save_rules(pending: list[tuple[Path, dict[str, Any]]]) -> str | None:
    """Write the counterexample traces; the first failure's line, or
    None."""
    for path, doc in pending:
        try:
            write_atomic(path, tracefile.dumps(doc))
        except OSError as exc:
            return describe_os_error(exc)
    return None


def _print_rules(sc: Scenario, psc: Scenario, mined: Mined,
                 rules_json: list[dict[str, Any]], elapsed: float,
                 seed: int) -> None:
    state = "interrupted after" if mined.interrupted else "from"
    print(f"{sc.name}: {len(mined.rules)} rules {state} {mined.failures}"
          f" distinct failing permutations ({mined.examples} tried,"
          f" {elapsed:.1f} s, seed {seed})")
    for i, (rule, row) in enumerate(zip(mined.rules, rules_json,
                                        strict=True), 1):
        print(f"{i:3d}. {row['rule']}")
        print(f"     else {row['why']}")
        print(f"     counterexample: {row['trace']}"
              f" ({len(rule.counterexample)} events)")
    if mined.interrupted:
        print("interrupted: the rules so far; sufficiency not checked")
    elif mined.sufficient:
        print(f"sufficient so far: no ordering that obeys every rule fails"
              f" in {mined.sufficiency_examples} examples (not exhaustive)")
    elif mined.insufficient_core is not None:
        shown = ", ".join(f"cpu{e.cpu} {psc.op_text(e.op)}"
                          for e in mined.insufficient_core)
        print("not sufficient: an ordering that obeys every rule still"
              f" fails; its core: {shown}")


def _cmd_report(args: argparse.Namespace, sc: Scenario, events: list[Event],
                doc: dict[str, Any], result: Result) -> int:
    raw = doc.get("shrunk_events")
    shrunk = events
    if isinstance(raw, list) and raw:
        shrunk = tracefile.events_of(sc, {"events": raw}, args.trace)
    if fails(sc, result):
        # A trace need not hold a causal core (a hand-written one, a whole
        # ordering): the report is about the core.
        events = causal_core(sc, events, result)
        result = evaluate(sc, events)
    seed = doc.get("seed")
    seed = seed if isinstance(seed, int) else None
    if args.pytest is not None:
        if not fails(sc, evaluate(sc, shrunk)):
            raise TraceError(f"{args.trace}: this ordering does not fail in"
                             f" {sc.path}; a regression test needs a failing"
                             " trace")
        ident = "".join(ch if ch.isalnum() else "_" for ch in sc.name)
        path = Path(args.pytest or
                    f"test_fuzzinit_{ident}_{signature(result)}.py")
        write_atomic(path, regression_test(sc, shrunk, result, args.trace,
                                           path))
        print(f"wrote {path}: replays {len(shrunk)} events and asserts"
              " they do not fail")
        return 0
    report = build_report(sc, events, shrunk, result, seed, args.trace,
                          fix_check_s=args.fix_check_time)
    if args.format == "json":
        sys.stdout.write(report_json(report))
    elif args.format == "html":
        sys.stdout.write(render_html(report))
    elif args.format == "commit":
        sys.stdout.write(render_commit(report))
    else:
        sys.stdout.write(render_markdown(report))
    return 1 if fails(sc, result) else 0


def cmd_fuzz(args: argparse.Namespace) -> int:
    try:
        import atheris  # noqa: F401
    except ImportError as exc:
        raise FuzzinitError("fuzz needs atheris; fix: pip install"
                            " 'fuzzinit[fuzz]' (atheris 3.0.0 on Python"
                            " 3.11)") from exc
    import os
    import signal

    from fuzzinit.fuzz.campaign import run_campaign

    # libFuzzer reads these as C ints: a larger value would wrap and end
    # the campaign early, looking clean.
    for flag, low, high in (("time", 1, 2**31 - 1), ("runs", 1, 2**31 - 1),
                            ("seed", 0, 2**32 - 1)):
        value = getattr(args, flag)
        if value is not None and not low <= value <= high:
            raise FuzzinitError(f"--{flag} {value}: expected {low} to {high}")
    # Each job is one process busy on one core: more only fight for them.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count() or 1
    if not 1 <= args.jobs <= cores:
        raise FuzzinitError(f"--jobs {args.jobs}: expected 1 to {cores} (the"
                            f" CPU cores fuzzinit may use here); fix: --jobs"
                            f" {cores} or fewer")
    sc = load(args.model)
    # Built before the campaign: a probe that cannot be made (the model's
    # markers broken, say) fails here, not after a campaign it would hide.
    probe = probe_for(args, sc, "corpus inputs")
    summary = run_campaign(
        sc, Path(args.corpus), Path(args.reports), args.time, args.runs,
        args.jobs, args.seed, args.coverage, args.stop_on_failure,
        show=not args.json and sys.stderr.isatty())
    failing = summary.distinct_failures > 0
    out = {"scenario": sc.path, "name": sc.name, "execs": summary.execs,
           "exec_per_s": round(summary.exec_per_s, 1),
           "corpus": summary.corpus, "features": summary.features,
           "new_failures": [{"signature": s, "verdict": v, "core_events": n}
                            for s, v, n in summary.new_failures],
           "distinct_failures": summary.distinct_failures,
           "first_failure_s": None if summary.first_failure_s is None
           else round(summary.first_failure_s, 3),
           "elapsed_s": round(summary.elapsed_s, 3),
           "interrupted": summary.interrupted,
           "crashes": summary.crashes_dir, "coverage": args.coverage,
           "jobs": args.jobs}
    reach = None
    measure_interrupted = False
    measure_error: str | None = None
    if probe is not None and summary.interrupted:
        # The user stopped the campaign: the summary now, no measuring.
        measure_interrupted = True
    elif probe is not None:
        # After the campaign, whose findings are saved by now; Ctrl-C or
        # an unreadable input here ends the measuring, not the summary.
        from fuzzinit.reach.corpus import measure_corpus
        try:
            measure_corpus(sc, Path(args.corpus) / sc.name / "inputs", probe,
                           show=not args.json and sys.stderr.isatty())
            reach = probe.result()
        except KeyboardInterrupt:
            measure_interrupted = True
        except FuzzinitError as exc:
            measure_error = str(exc)
        if reach is not None:
            out["rule_coverage"] = dict(reach_json(reach),
                                        interrupted=False, error=None)
    if probe is not None and reach is None:
        out["rule_coverage"] = {"interrupted": measure_interrupted,
                                "error": measure_error}
    try:
        with _deferred_signals():
            _print_fuzz_summary(sc, summary, out, args.json,
                                verdict_note(reach) if reach else "")
            if reach is not None and not args.json:
                print("\n".join(reach_lines(reach)))
            elif measure_interrupted and not args.json:
                print("rule coverage: not measured (interrupted)")
            sys.stdout.flush()
    except BrokenPipeError:
        # A closed stdout must not turn a finding into exit 0 (main()),
        # nor a clean campaign: 141, as for every command.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if not failing:
            return 141
    if measure_error is not None:
        sys.stderr.write(f"fuzzinit: error: {measure_error}\n")
    if failing:
        return 1
    if measure_error is not None:
        return 2
    if measure_interrupted:
        return EXIT_INTERRUPTED
    # Interrupted before any failure: 130 for SIGINT, 143 for SIGTERM.
    return 128 + (summary.signal or signal.SIGINT) \
        if summary.interrupted else 0


def _print_fuzz_summary(sc: Scenario, summary: Any, out: dict[str, Any],
                        as_json: bool, note: str = "") -> None:
    if as_json:
        print(json.dumps(out))
    else:
        state = "interrupted" if summary.interrupted else "done"
        print(f"{sc.name}: campaign {state} after {summary.elapsed_s:.1f} s"
              + (note if not summary.distinct_failures else ""))
        rows = [("execs", f"{summary.execs}"),
                ("exec/s", f"{summary.exec_per_s:,.0f}"),
                ("corpus inputs", f"{summary.corpus}"),
                ("coverage features", f"{summary.features}"),
                ("distinct failures", f"{summary.distinct_failures}"
                 f" ({len(summary.new_failures)} new)"),
                ("findings", summary.crashes_dir)]
        for name, value in rows:
            print(f"  {name:<18} {value}")
        for sig, verdict, n in summary.new_failures:
            print(f"  new: {verdict} {sig} ({n} events):"
                  f" fuzzinit replay {summary.crashes_dir}/{sig}.json")
    sys.stdout.flush()


def _is_profile(path: Path) -> bool:
    """A profile file has a [profile] table and no [scenario] one."""
    import tomllib

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False   # load() reports it
    return "profile" in doc and "scenario" not in doc


def _shown(path: Path) -> str:
    """A path relative to the working folder when it is under it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _fix_commit(sc: Scenario) -> str | None:
    """The upstream fix a scenario cites: its `"fix: <sha> <subject>"`."""
    for entry in sc.sources:
        if entry.startswith("fix: "):
            return entry[len("fix: "):]
    return None


def _print_models(rows: list[dict[str, Any]]) -> None:
    """The scenarios grouped by category, each with its expectation, kernel
    and fix; files that do not load last."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if "error" not in row:
            groups.setdefault(row["category"] or "(no category)",
                              []).append(row)
    for category in sorted(groups):
        print(f"{category}:")
        for row in groups[category]:
            print(f"  {row['path']:<46} expect {row['expect'] or '-':<13}"
                  f" {row['guest']:<8} {row['kernel'] or '-'}")
            print(f"      {row['title']}")
            if row["fix"]:
                print(f"      fix: {row['fix']}")
            if row["fixed_in"]:
                print(f"      fixed in: {row['fixed_in']}")
    for row in rows:
        if "error" in row:
            print(f"{row['path']}: ERROR {row['error']}")


def cmd_models(args: argparse.Namespace) -> int:
    from fuzzinit.scenario.profiles import LIBRARY

    folder = Path(args.folder) if args.folder is not None else LIBRARY
    if folder.is_file():
        raise FuzzinitError(f"{folder}: is a file; expected a folder of"
                            " scenario files; fix: name its folder, e.g."
                            f" 'fuzzinit models {folder.parent}'")
    if not folder.is_dir():
        raise FuzzinitError(f"{folder}: no such folder; expected a folder of"
                            " scenario files; fix: run from the project root"
                            " or name the folder")
    rows: list[dict[str, Any]] = []
    bad = 0
    profiles = 0
    for path in sorted(folder.glob("*.toml")):
        if _is_profile(path):
            profiles += 1   # a kernel profile file, not a scenario
            continue
        try:
            sc = load(path)
        except FuzzinitError as exc:
            bad += 1
            rows.append({"path": _shown(path), "error": str(exc)})
            continue
        rows.append({"path": _shown(path), "name": sc.name,
                     "guest": sc.guest, "category": sc.category,
                     "kernel": sc.kernel, "fix": _fix_commit(sc),
                     "fixed_in": None if sc.fixed_in is None
                     else _shown(Path(sc.fixed_in)),
                     "expect": sc.expect, "fail_on": sorted(sc.fail_on),
                     "title": sc.title, "cpus": sc.ncpu})
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        _print_models(rows)
        if not rows:
            print(f"{_shown(folder)}: no scenario files"
                  + (f" ({profiles} kernel profile files)" if profiles
                     else ""))
    if bad:
        sys.stderr.write(f"fuzzinit: error: {bad} scenario file(s) do not"
                         " load\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
