"""`fuzzinit export --promela`: SPIN, given a scenario as Promela, answers
what `fuzzinit explore` answers - on every model and on small hand-made
scenarios - and SPIN's simulator steps in lockstep with the Python model.

The SPIN tests need `spin` (and gcc) on PATH and are skipped without it;
CI installs it (.ci/run). Every verification is built and run once, two at
a time, in a module fixture.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from fuzzinit.explore.bfs import BUDGET, COMPLETE, Exploration, explore
from fuzzinit.export import promela as pml
from fuzzinit.export.command import default_max_triggers
from fuzzinit.export.spin import (
    FAILED,
    SpinError,
    SpinResult,
    simulate,
    verify,
)
from fuzzinit.model import (
    apic,
    arch,
    delivery,
    machine,
    ops_cet,
    ops_cr,
    ops_events,
    ops_exceptions,
    ops_idt,
    ops_kernel,
    ops_lass,
    ops_mode,
    ops_msr,
    ops_platform,
    ops_segments,
    ops_smp,
    outcome,
    vocabulary,
)
from fuzzinit.model import run as model_run
from fuzzinit.model.outcome import NAMES, OK
from fuzzinit.orderings.schedule import Event, Schedule, well_formed
from fuzzinit.scenario.load import FAILABLE, Scenario, load
from fuzzinit.verdict import evaluate

ROOT = Path(__file__).parent.parent
MODELS = sorted(ROOT.joinpath("models").glob("*.toml"))
FIXED = ROOT / "models/upstream-fix-sev-es.toml"
SPIN = shutil.which("spin")
if SPIN is None and os.environ.get("CI"):
    pytest.fail("spin is not installed; .ci/run installs it", pytrace=False)
needs_spin = pytest.mark.skipif(
    SPIN is None, reason="spin is not installed: the SPIN cross-check"
    " needs it (apt-get install spin; .ci/run installs it)")
EXPLORE_BUDGET = 1_000_000
M64 = (1 << 64) - 1

# Small scenarios, each for one rule of the exploration, and what both
# explore and SPIN must answer: "ok" or the outcome of the failing ordering.
SHARED = {p.stem: p.read_text() for p in
          (Path(__file__).parent / "scenarios").glob("*.toml")}
HAND: dict[str, tuple[str, str]] = {
    # A broadcast machine check once both CPUs have CR4.MCE: #MC through
    # each CPU's IDT, and the AP's early handler halts.
    "mce-broadcast": ("unhandled", """
[scenario]
name = "mce-broadcast"
fail_on = ["triple_fault", "unhandled"]
[[cpu]]
program = ["cr4_set mce", "lidt full", "ltr", "tss_setup_ist", "start 1",
  "wait_online 1", "nop end"]
[[cpu]]
program = ["cr4_set mce", "lidt early", "online"]
[[orderings.trigger]]
kind = "mce"
cpus = [0]
after = "wait_online 1"
"""),
    # ... and once the AP has the runtime IDT too, both survive it.
    "mce-survived": ("ok", """
[scenario]
name = "mce-survived"
fail_on = ["triple_fault", "unhandled"]
[[cpu]]
program = ["cr4_set mce", "lidt full", "ltr", "tss_setup_ist", "start 1",
  "wait_online 1", "nop end"]
[[cpu]]
program = ["cr4_set mce", "lidt full", "ltr", "tss_setup_ist", "online"]
[[orderings.trigger]]
kind = "mce"
cpus = [0]
after = "wait_online 1"
"""),
    # A CPU never started (empty program) takes it with CR4 = 0.
    "mce-unstarted": ("triple_fault", """
[scenario]
name = "mce-unstarted"
[[cpu]]
program = ["cr4_set mce", "lidt full", "ltr", "tss_setup_ist", "nop end"]
[[cpu]]
program = []
[[orderings.trigger]]
kind = "mce"
cpus = [0]
after = "tss_setup_ist"
"""),
    # Bug sites: a WARN on the early IDT continues (its report is console
    # output, #VC on SEV-ES: the boot GHCB serves it); a kCFI failure on
    # the runtime IDT dies.
    "bug-sites": ("unhandled", """
[scenario]
name = "bug-sites"
fail_on = ["unhandled", "triple_fault", "warn"]
[platform]
guest = "sev-es"
[[cpu]]
program = ["lidt bringup_ghcb", "setup_ghcb", "console_init", "lidt early",
  "ud2 warn", "lidt full", "ltr", "tss_setup_ist", "ud2 warn", "ud2 cfi"]
"""),
    # The guest's own termination request.
    "terminate": ("hang", """
[scenario]
name = "terminate"
fail_on = ["guest_terminated", "hang"]
[platform]
guest = "sev-snp"
terminate = "hangs"
[[cpu]]
program = ["lidt early", "sev_es_terminate"]
"""),
    # A read-only MSR's write #GPs (fixed up, reported); an MSR that exists
    # only after the microcode update reads fine once it is loaded; an
    # absent MSR's #GP on the bringup IDT has no gate.
    "microcode-msr": ("triple_fault", """
[scenario]
name = "microcode-msr"
fail_on = ["triple_fault", "unhandled"]
[platform]
microcode_msrs = ["TSX_FORCE_ABORT"]
absent_msrs = ["AMD64_SEV"]
readonly_msrs = ["TSX_CTRL"]
[[cpu]]
program = ["lidt full", "rdmsr TSX_CTRL", "wrmsr TSX_CTRL 2",
  "load_microcode", "rdmsr TSX_FORCE_ABORT", "lidt bringup",
  "rdmsr AMD64_SEV"]
"""),
    # Leaving IA-32e mode needs compatibility mode and CR4.PCIDE = 0.
    "leave-long-mode-pcide": ("triple_fault", """
[scenario]
name = "leave-long-mode-pcide"
fail_on = ["triple_fault"]
[platform]
features = ["pcid"]
[[cpu]]
program = ["lidt null", "mov_cr4 +pcide", "ljmp cs32", "mov_cr0 -pg"]
"""),
    # An NMI on the way down to real mode: #GP, #DF, shutdown while the
    # real-mode IDT is read with 16- or 8-byte gates; in real mode the IVT
    # entry is taken, where the model stops (unhandled).
    "real-mode-nmi": ("unhandled", """
[scenario]
name = "real-mode-nmi"
fail_on = ["unhandled"]
[[cpu]]
program = ["lidt real", "ljmp cs32", "mov_cr0 -pg", "wrmsr EFER 0",
  "mov_cr0 -pe", "nop end"]
[[orderings.trigger]]
kind = "nmi"
cpus = [0]
after = "lidt real"
"""),
    # kexec jump's return with the GDT invalidated: the SS load #GPs and
    # the #GP gate's __KERNEL_CS lies beyond the GDT limit -> #DF ->
    # shutdown; an NMI before the IDT is back meets the null IDT.
    "gdt-null": ("triple_fault", """
[scenario]
name = "gdt-null"
fail_on = ["triple_fault"]
[[cpu]]
program = ["lidt full", "ltr", "tss_setup_ist", "lgdt null", "lidt null",
  "nop peer", "lidt full", "loadsegment ss", "lgdt percpu", "nop end"]
"""),
    # TDX CPUID: leaves the module answers, a #VE the runtime handler
    # answers (0xb), then a hypervisor leaf on the early IDT: unhandled.
    "tdx-cpuid-leaves": ("unhandled", """
[scenario]
name = "tdx-cpuid-leaves"
fail_on = ["unhandled", "triple_fault"]
[platform]
guest = "tdx"
[[cpu]]
program = ["lidt full", "cpuid", "cpuid 0xb", "cpuid 0x80000003",
  "cpuid 0x21", "lidt early", "cpuid 0x40000000"]
"""),
    # IBT: a firmware call without ENDBR64 is fine until S_CET.ENDBR_EN
    # and CR4.CET are both on (#CP -> BUG()); ibt_save() clears ENDBR_EN.
    "ibt-efi-call": ("unhandled", """
[scenario]
name = "ibt-efi-call"
fail_on = ["unhandled", "triple_fault"]
[platform]
features = ["cet"]
[[cpu]]
program = ["lidt full", "call_indirect noendbr", "wrmsr S_CET 4",
  "call_indirect noendbr", "cr4_set cet", "wrmsr S_CET 0",
  "call_indirect noendbr", "wrmsr S_CET 4", "call_indirect endbr",
  "call_indirect noendbr"]
"""),
    # LASS (with SMAP on): a data access to the lower half passes with AC,
    # not without it.
    "lass-access": ("unhandled", """
[scenario]
name = "lass-access"
fail_on = ["unhandled", "triple_fault"]
[platform]
features = ["lass", "smap"]
[[cpu]]
program = ["lidt full", "access_user fetch", "cr4_set smap", "cr4_set lass",
  "stac", "access_user data", "clac", "access_user data"]
"""),
    # Out and back in: LMA follows PG, RDGSBASE is #UD until CS.L = 1.
    "mode-reenter": ("ok", """
[scenario]
name = "mode-reenter"
fail_on = ["triple_fault"]
[platform]
features = ["fsgsbase"]
[[cpu]]
program = ["lidt full", "cr4_set fsgsbase", "ljmp cs32", "mov_cr0 -pg",
  "mov_cr0 +pg", "ljmp cs64", "rdgsbase", "nop end"]
[[orderings.trigger]]
kind = "nmi"
cpus = [0]
after = "lidt full"
"""),
    # Permutation mode: the NMI may run before the IST is set up...
    "permute": ("triple_fault", """
[scenario]
name = "permute"
fail_on = ["unhandled", "triple_fault"]
[[cpu]]
program = ["lidt early", "lidt full", "ltr", "tss_setup_ist", "nmi"]
[orderings]
mode = "permute"
"""),
    # ... unless `before` constraints keep it last.
    "permute-before": ("ok", """
[scenario]
name = "permute-before"
fail_on = ["unhandled", "triple_fault"]
[[cpu]]
program = ["lidt early", "lidt full", "ltr", "tss_setup_ist", "nmi"]
[orderings]
mode = "permute"
before = [["cpu0: lidt full", "cpu0: nmi"], ["cpu0: ltr", "cpu0: nmi"],
          ["cpu0: tss_setup_ist", "cpu0: nmi"], ["cpu0: lidt early", "cpu0: nmi"]]
"""),
    # A trigger whose window closes before the IDT is invalidated...
    "window-closed": ("ok", """
[scenario]
name = "window-closed"
fail_on = ["triple_fault", "unhandled"]
[[cpu]]
program = ["lidt early", "nop setup", "lidt null", "lidt full", "ltr",
  "tss_setup_ist"]
[[orderings.trigger]]
kind = "nmi"
cpus = [0]
after = "lidt early"
before = "lidt null"
"""),
    # ... and one that stays open until ltr: an NMI through the null IDT.
    "window-open": ("triple_fault", """
[scenario]
name = "window-open"
fail_on = ["triple_fault", "unhandled"]
[[cpu]]
program = ["lidt early", "nop setup", "lidt null", "lidt full", "ltr",
  "tss_setup_ist"]
[[orderings.trigger]]
kind = "nmi"
cpus = [0]
count = 2
after = "lidt early"
before = "ltr"
"""),
    # #UD in the early handler is unhandled, not in fail_on: the run ends
    # there, so the #PF through the null IDT after it never happens.
    "halts": ("ok", """
[scenario]
name = "halts"
fail_on = ["triple_fault"]
[[cpu]]
program = ["lidt early", "rdgsbase", "lidt null", "pf"]
"""),
    # A trigger that ends the run (#GP from a missing MSR, unhandled) is
    # not a failure either.
    "halts-on-trigger": ("ok", """
[scenario]
name = "halts-on-trigger"
fail_on = ["triple_fault"]
[[cpu]]
program = ["start 1", "lidt early", "nop bsp"]
[[cpu]]
program = ["lidt early", "nop ap"]
[[orderings.trigger]]
kind = "rdmsr FRED_CONFIG"
cpus = [1]
after = "lidt early"
"""),
    "unhandled": ("unhandled", """
[scenario]
name = "unhandled"
fail_on = ["triple_fault", "unhandled"]
[[cpu]]
program = ["lidt early", "rdgsbase", "lidt null", "pf"]
"""),
    # A WARN on the way fails a run that ends OK when fail_on has warn.
    "warn": ("warn", """
[scenario]
name = "warn"
fail_on = ["warn"]
[platform]
features = ["smep"]
[[cpu]]
program = ["cr4_set smep", "setup_cr_pinning", "cr4_clear smep", "nop end"]
"""),
    # paranoid_entry runs RDGSBASE only where FSGSBASE is enumerated: an
    # NMI after patch_alternatives is handled on a CPU without it.
    "paranoid-no-fsgsbase": ("ok", """
[scenario]
name = "paranoid-no-fsgsbase"
fail_on = ["unhandled", "triple_fault"]
[[cpu]]
program = ["ltr", "tss_setup_ist", "lidt full", "patch_alternatives",
  "nop end"]
[[orderings.trigger]]
kind = "nmi"
cpus = [0]
after = "patch_alternatives"
"""),
    # Online-gated pinning (cccc0c8ff0a9): cr4_init on an online CPU with
    # the key on WARNs...
    "cr4-init-warn": ("warn", """
[scenario]
name = "cr4-init-warn"
fail_on = ["warn"]
[kernel]
pinning = "online"
[[cpu]]
program = ["setup_cr_pinning", "cr4_init", "nop end"]
"""),
    # ... and in an SEV-ES guest the WARN's #VC reaches vc_boot_ghcb
    # before setup_ghcb(): the NULL boot_ghcb #PFs through the bringup IDT.
    "cr4-init-warn-vc": ("triple_fault", """
[scenario]
name = "cr4-init-warn-vc"
fail_on = ["triple_fault", "unhandled", "guest_terminated"]
[platform]
guest = "sev-es"
[kernel]
pinning = "online"
[[cpu]]
program = ["lidt bringup_ghcb", "setup_cr_pinning", "cr4_init",
  "setup_ghcb", "nop end"]
"""),
    # The NULL boot_ghcb on the early IDT: early_fixup_exception() halts.
    "boot-ghcb-null-early": ("unhandled", """
[scenario]
name = "boot-ghcb-null-early"
fail_on = ["unhandled", "guest_terminated"]
[platform]
guest = "sev-snp"
[[cpu]]
program = ["lidt early", "setup_ghcb", "nop end"]
[[orderings.trigger]]
kind = "cpuid"
cpus = [0]
after = "lidt early"
"""),
    # Shared with tests/test_explore.py (tests/scenarios/).
    "stuck-on-invalid": ("never_online", SHARED["stuck-on-invalid"]),
    "stuck-warn": ("never_online", SHARED["stuck-warn"]),
    # pin_cleared with SMEP pinned, gated on cpu_online().
    "pin-cleared": ("pin_cleared", """
[scenario]
name = "pin-cleared"
fail_on = ["pin_cleared"]
[platform]
features = ["smep"]
[kernel]
pinning = "online"
[[cpu]]
program = ["lidt full", "cr4_set smep", "setup_cr_pinning", "nop runs"]
[[orderings.trigger]]
kind = "clear_online"
cpus = [0]
after = "setup_cr_pinning"
[[orderings.trigger]]
kind = "cr4_gadget -smep"
cpus = [0]
after = "setup_cr_pinning"
"""),
}
# Deadlock by a `before` cycle, which load() rejects: made with
# dataclasses.replace, to reach the never_online check of a stuck state.
DEADLOCK = """
[scenario]
name = "deadlock"
fail_on = ["never_online"]
[[cpu]]
program = ["start 1", "nop a"]
[[cpu]]
program = ["nop b"]
"""


@dataclass
class Case:
    sc: Scenario
    k: int
    ex: Exploration
    spin: SpinResult


def _deadlock(path: Path) -> Scenario:
    path.write_text(DEADLOCK)
    sc = load(path)
    return dataclasses.replace(sc, before=[((1, 0), (0, 1)),
                                           ((0, 1), (1, 0))])


def _scenario(name: str, folder: Path) -> Scenario:
    """A model by its stem, or a hand-made scenario written to `folder`."""
    if name == "deadlock":
        return _deadlock(folder / "deadlock.toml")
    if name in HAND:
        path = folder / f"{name}.toml"
        path.write_text(HAND[name][1])
        return load(path)
    return load(ROOT / "models" / f"{name}.toml")


# Library scenarios using an op runtime.pml does not translate are refused
# by the export (tests/test_ops.py checks the refusal); SPIN checks the rest.
EXPORTABLE = [p.stem for p in MODELS if pml.untranslated(load(p)) is None]
NAMES_ALL = EXPORTABLE + list(HAND) + ["deadlock"]


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    if SPIN is None:
        pytest.skip("spin is not installed: the SPIN cross-check needs it"
                    " (apt-get install spin; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("promela")
    scenarios = {name: _scenario(name, folder) for name in NAMES_ALL}

    def one(name: str) -> Case:
        sc = scenarios[name]
        k = default_max_triggers(sc)
        return Case(sc, k, explore(sc, k, EXPLORE_BUDGET),
                    verify(sc, k, folder / name))

    with ThreadPoolExecutor(2) as pool:
        return dict(zip(scenarios, pool.map(one, scenarios), strict=True))


def _complete(sc: Scenario, events: list[Event]) -> bool:
    sched = Schedule(sc)
    for ev in events:
        sched.take(ev)
    return sched.finished()


@needs_spin
@pytest.mark.parametrize("name", NAMES_ALL)
def test_spin_agrees_with_explore(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    ex, spin, sc = case.ex, case.spin, case.sc
    assert ex.verdict != BUDGET
    assert (spin.verdict == FAILED) == (ex.verdict != COMPLETE), \
        (spin.outcome, ex.result and ex.result.name)
    if ex.verdict == COMPLETE:
        assert spin.ordering is None and spin.outcome is None
        return
    assert ex.result is not None and ex.ordering is not None
    assert spin.ordering is not None
    # SPIN's trail is an ordering the scenario allows, and the Python model
    # fails on it as explore's ordering fails.
    assert well_formed(sc, spin.ordering) == ""
    result = evaluate(sc, spin.ordering,
                      complete=_complete(sc, spin.ordering))
    assert result.name == spin.outcome == ex.result.name
    # Both searches give a shortest failing ordering.
    if ex.shortest:
        assert len(spin.ordering) == len(ex.ordering)


@needs_spin
def test_hand_made_scenarios_answer_as_intended(
        cases: dict[str, Case]) -> None:
    """Each hand-made scenario exercises the rule it was written for."""
    expected = {name: want for name, (want, _) in HAND.items()}
    expected["deadlock"] = "never_online"
    got = {name: cases[name].spin.outcome or "ok" for name in expected}
    assert got == expected


def _lockstep(sc: Scenario, k: int, workdir: Path, seed: int) -> int:
    """Step the Python model along a random SPIN simulation; the number
    of events compared."""
    sim = simulate(sc, k, workdir, seed)
    st = model_run.initial_state(sc.machine)
    for i, traced in enumerate(sim.steps):
        ev = traced.event
        assert well_formed(sc, [s.event for s in sim.steps[:i + 1]]) == ""
        warnings: list[str] = []
        got = model_run.step(sc.machine, st, ev.cpu, ev.op, [], warnings)
        where = f"seed {seed}, event {i}: cpu{ev.cpu} {sc.op_text(ev.op)}"
        assert NAMES[traced.outcome] == NAMES[got], where
        assert traced.warned == bool(warnings), where
        # SPIN keeps 64 bits; an EFER write of a wider value differs above.
        assert traced.state == [x & M64 for x in st], where
        if got != OK:
            assert i == len(sim.steps) - 1
            break
    return len(sim.steps)


@needs_spin
@pytest.mark.parametrize("name", NAMES_ALL)
def test_spin_simulation_steps_with_the_python_model(
        tmp_path: Path, name: str) -> None:
    sc = _scenario(name, tmp_path)
    k = default_max_triggers(sc)
    assert sum(_lockstep(sc, k, tmp_path, seed) for seed in (1, 2, 3)) > 0


# Random scenarios over ops no model uses (MOV to CR0/CR3, EFER and FRED
# SSP writes, out-of-range MSR values, TDX #VE, ROP gadgets...), for the
# lockstep check: SPIN's simulator needs no compile, so these are cheap.
OPS = tuple(text for op in vocabulary.OPS for text in op.samples)
TRIGGERS = ("nmi", "printk", "cpuid", "mmio", "port_io", "pf",
            "rdmsr APIC_BASE", "clear_online", "cr4_gadget -smep")


def random_scenario(seed: int) -> str:
    r = random.Random(seed)
    ncpu = r.choice((1, 2, 2))
    programs = []
    for _ in range(ncpu):
        first = r.choice(("lidt early", "lidt full", "lidt bringup_ghcb"))
        # The trigger windows start after the first op: it must be unique.
        programs.append([first] + r.sample(
            [text for text in OPS if text != first], r.randint(2, 5)))
    if ncpu == 2:
        programs[1].append("online")
        programs[0][1:1] = ["start 1"]
        programs[0].append("wait_online 1")
    guest = r.choice(("bare", "sev-es", "sev-snp", "tdx"))
    lines = ["[scenario]", f'name = "r{seed}"',
             "fail_on = " + json.dumps(sorted(FAILABLE)),
             "[platform]",
             f'guest = "{guest}"',
             *([] if guest == "tdx" else
               [f'apic = "{r.choice(apic.APIC_MODES)}"']),
             "features = " + json.dumps(r.sample(
                 ("fred", "smep", "fsgsbase", "pcid", "la57", "cet", "smap",
                  "lass"), 5)),
             f'console = "{r.choice(("8250", "early_serial", "none"))}"',
             f'terminate = "{r.choice(("exits", "hangs"))}"',
             "intercepted_msrs = " + json.dumps(r.sample(
                 ("APIC_BASE", "EFER", "FRED_CONFIG"), r.randint(0, 2))),
             "absent_msrs = " + json.dumps(r.sample(
                 ("AMD64_SEV", "TSX_CTRL", "EFER"), r.randint(0, 2))),
             "microcode_msrs = " + json.dumps(r.sample(
                 ("TSX_FORCE_ABORT", "0x10f", "FRED_CONFIG"),
                 r.randint(0, 2))),
             "[kernel]",
             f'pinning = "{r.choice(("static_key", "online"))}"',
             f"fred_vc_dispatch = {r.choice(('true', 'false'))}",
             f"boot_ghcb_fallback = {r.choice(('true', 'false'))}"]
    for program in programs:
        lines += ["[[cpu]]", "program = " + json.dumps(program)]
    lines += ["[orderings]",
              f'mode = "{r.choice(("interleave", "permute"))}"']
    for _ in range(r.randint(0, 2)):
        lines += ["[[orderings.trigger]]",
                  f'kind = "{r.choice(TRIGGERS)}"', "cpus = [0]",
                  f"after = \"{programs[0][0]}\""]
    return "\n".join(lines) + "\n"


@needs_spin
@pytest.mark.parametrize("seed", range(12))
def test_spin_simulation_steps_with_the_python_model_on_random_scenarios(
        tmp_path: Path, seed: int) -> None:
    path = tmp_path / "r.toml"
    path.write_text(random_scenario(seed))
    sc = load(path)
    k = default_max_triggers(sc)
    assert sum(_lockstep(sc, k, tmp_path, s) for s in (1, 2, 3)) > 0


def _defines(text: str) -> dict[str, int]:
    """runtime.pml's numeric #defines: N, (N) or (N - M)."""
    out = {}
    for name, value in re.findall(
            r"^#define (\w+)\s+(\(?-?\d+(?: - \d+)?\)?)(?:\s|$)", text,
            re.M):
        parts = value.strip("()").split(" - ")
        out[name] = int(parts[0]) - sum(int(p) for p in parts[1:])
    return out


def test_runtime_constants_are_the_models() -> None:
    """Every constant runtime.pml shares a name with has the model's value
    (as a 32-bit word: Promela ints are 32 bits)."""
    defines = _defines(pml.runtime_text())
    modules = (machine, apic, arch, outcome, delivery, model_run, ops_cet, ops_cr,
               ops_events, ops_exceptions, ops_idt, ops_kernel, ops_lass, ops_mode,
               ops_msr, ops_segments,
               ops_platform, ops_smp)
    checked = 0
    for name, value in defines.items():
        for module in modules:
            if isinstance(getattr(module, name, None), int):
                assert value & 0xFFFFFFFF == \
                    getattr(module, name) & 0xFFFFFFFF, name
                checked += 1
                break
    assert defines["CR4_FRED_HI"] << 32 == arch.CR4_FRED
    # Every op kind is one runtime.pml knows (KNOWN_KIND guards events):
    # a kind above LAST_KIND would never be taken, silently.
    # ... and every kind has a branch of its own in apply / apply_plain
    # (an untranslated kind would fall through silently).
    text = pml.runtime_text()
    translated = [op for op in vocabulary.OPS if not op.promela]
    for op in translated:
        define = {"online": "ONLINE_OP", "nmi": "NMI_EVENT", "pf": "PF_EVENT",
                  "mce": "MCE_EVENT", "int": "INT_N"}.get(
                      op.name, op.name.upper())
        assert defines[define] == op.kind, op.name
        assert re.search(rf"(AP_IS\(c, op, {define}\)|ap_kind == {define}\b"
                         rf"|op_kind\[op\] == {define}\b)", text), op.name
    last = translated[-1].name.upper()
    assert defines[last] == translated[-1].kind
    # the refused ops come after every translated one: KNOWN_KIND is a bound
    assert all(op.kind > translated[-1].kind for op in vocabulary.OPS
               if op.promela)
    assert re.search(rf"^#define LAST_KIND\s+{last}\s", pml.runtime_text(),
                     re.M)
    assert checked >= 90


def test_values_split_into_32_bit_words() -> None:
    assert (pml.lo(0xFFFFFFFF81000040), pml.hi(0xFFFFFFFF81000040)) == \
        ("(-2130706368)", "(-1)")
    assert (pml.lo(1 << 31), pml.hi(1 << 32)) == ("(-2147483647 - 1)", "1")
    assert [pml.ext(v) for v in (0, (1 << 64) - 1, 1 << 64, -1, -(1 << 70))] \
        == [0, 0, 1, -1, -1]


@needs_spin
def test_a_search_cut_short_is_an_error_not_an_answer(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(HAND["permute-before"][1])
    sc = load(path)
    with pytest.raises(SpinError, match="depth limit 10 was reached"):
        verify(sc, 0, tmp_path / "depth", depth=10)
    with pytest.raises(SpinError, match="out of memory"):
        verify(sc, 0, tmp_path / "memory", memlim_mb=1)


# --- the command line -------------------------------------------------------


def fz(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          cwd=cwd, capture_output=True, text=True,
                          check=False)


def test_export_writes_the_model(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "fixed.pml"
    proc = fz(tmp_path, "export", "--promela", str(FIXED), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: upstream-fix-sev-es as"
                                  " Promela, at most 2 trigger event(s)")
    text = out.read_text()
    assert text == promela_of(FIXED, 2)
    assert "proctype cpu0()" in text and "proctype cpu1()" in text
    # Without -o, the same text on standard output.
    proc = fz(tmp_path, "export", "--promela", str(FIXED))
    assert proc.returncode == 0 and proc.stdout == text


def promela_of(path: Path, k: int) -> str:
    return pml.promela(load(path), k)


def test_export_bounds_triggers_as_explore_does(tmp_path: Path) -> None:
    explored = json.loads(fz(tmp_path, "explore", str(FIXED),
                             "--json").stdout)
    proc = fz(tmp_path, "export", "--promela", str(FIXED))
    bound = re.search(r"^#define MAX_TRIGGERS\s+(\d+)", proc.stdout, re.M)
    assert bound is not None
    assert int(bound.group(1)) == explored["max_triggers"] == 2
    proc = fz(tmp_path, "export", "--promela", str(FIXED), "--max-triggers",
              "0", "--mode", "permute")
    assert re.search(r"^#define MAX_TRIGGERS\s+0\b", proc.stdout, re.M)
    assert "mode permute, at most 0 trigger event(s)" in proc.stdout


def test_export_of_a_missing_file_is_one_line_and_status_2(
        tmp_path: Path) -> None:
    proc = fz(tmp_path, "export", "--promela", "nope.toml")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == (
        "fuzzinit: error: nope.toml: cannot read: No such file or"
        " directory; expected a readable .toml file; fix: check the path"
        " (fuzzinit models lists them)\n")


def test_export_rejects_a_negative_bound_and_an_unwritable_output(
        tmp_path: Path) -> None:
    proc = fz(tmp_path, "export", "--promela", str(FIXED), "--max-triggers",
              "-1")
    assert (proc.returncode, proc.stderr) == (
        2, "fuzzinit: error: --max-triggers -1: expected 0 or more\n")
    (tmp_path / "file").write_text("")
    proc = fz(tmp_path, "export", "--promela", str(FIXED), "-o",
              "file/model.pml")
    assert proc.returncode == 2
    assert proc.stderr.startswith("fuzzinit: error: cannot write"
                                  " file/model.pml: ")
    assert proc.stderr.count("\n") == 1


@needs_spin
@pytest.mark.parametrize("name", [p.stem for p in MODELS
                                  if p.stem in EXPORTABLE
                                  and load(p).expect == "ok"
                                  and not load(p).accepts
                                  and "ud2" not in p.read_text()])
def test_spin_state_space_is_explores_plain_one(cases: dict[str, Case],
                                                name: str) -> None:
    """On a clean one-AP model SPIN stores explore's unreduced states plus
    four: three start-up states (init and the processes it runs) and the
    end state after the watcher's check. (A model with a `ud2 warn`, or
    one that accepts an outcome ending a run, ends in more than one final
    state - warned or not, the trigger spent or not, terminated or not -
    and SPIN stores an end state after each.)"""
    case = cases[name]
    assert case.ex.verdict == COMPLETE
    plain = explore(case.sc, case.k, EXPLORE_BUDGET, por=False,
                    symmetry=False)
    assert case.spin.states == plain.states + 4


FRED_RSP0_CACHE = """\
[scenario]
name = "fred-rsp0-cache"
fail_on = ["triple_fault", "unhandled"]
[platform]
guest = "bare"
features = ["fred"]
console = "8250"
[[cpu]]
program = ["wrmsr FRED_RSP0 stack", "fred_rsp0 sync", "fred_rsp0 update",
  "wrmsr FRED_RSP0 0", "fred_rsp0 update", "fred_rsp0 sync",
  "wrmsr FRED_RSP0 stack", "clear_cpu_cap fred", "fred_rsp0 sync"]
[orderings]
mode = "permute"
"""


@needs_spin
def test_spin_steps_the_fred_rsp0_cache_with_the_python_model(
        tmp_path: Path) -> None:
    """The per-CPU cache (runtime.pml's `percpu`, F_PERCPU): each order of
    update, sync and the MSR write the permutation allows gives SPIN and
    Python the same MSR and cache, step by step."""
    path = tmp_path / "c.toml"
    path.write_text(FRED_RSP0_CACHE)
    sc = load(path)
    assert sum(_lockstep(sc, 0, tmp_path, seed) for seed in range(1, 17)) \
        == 16 * 9
