"""The local APIC's mode and the x2APIC MSRs (fuzzinit/model/apic.py):
IA32_APIC_BASE transitions, the x2APIC-mode gate, the per-register #GPs,
and what SEV-ES/SNP and TDX guests see (exact outcome and chain)."""

from __future__ import annotations

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzinit.export import promela as pml
from fuzzinit.export.command import default_max_triggers
from fuzzinit.model import apic
from fuzzinit.model.machine import APIC_EXTD, APIC_OFF, F_FLAGS, NF
from fuzzinit.model.outcome import NAMES
from fuzzinit.model.run import initial_state, run, step
from fuzzinit.scenario.load import Scenario, load

sys.path.insert(0, str(Path(__file__).parent))
from test_promela import _defines, _lockstep, needs_spin  # noqa: E402

CRASH = ["#GP through the reset IDT (no LIDT yet): no valid gate -> #GP",
         "#GP while delivering #GP -> #DF (SDM table 6-5)",
         "#DF through the reset IDT (no LIDT yet): no valid gate -> #GP",
         "#GP while delivering #DF -> SHUTDOWN (triple fault)"]


def _load(tmp_path: Path, programs: list[list[str]], guest: str = "bare",
          mode: str = "") -> Scenario:
    path = tmp_path / "t.toml"
    lines = ['[scenario]', 'name = "t"',
             'fail_on = ["triple_fault", "unhandled", "guest_terminated"]',
             '[platform]', f'guest = "{guest}"']
    if mode:
        lines.append(f'apic = "{mode}"')
    for program in programs:
        lines += ["[[cpu]]", "program = [" + ", ".join(
            f'"{o}"' for o in program) + "]"]
    path.write_text("\n".join(lines) + "\n")
    return load(path)


def _run(tmp_path: Path, ops: list[str], guest: str = "bare",
         mode: str = "") -> tuple[str, list[str], list[str]]:
    sc = _load(tmp_path, [ops], guest, mode)
    r = run(sc.machine, [0] * len(ops), [sc.op_index[o] for o in ops])
    return NAMES[r.outcome], r.chain, r.warnings


def _mode(flags: int) -> str:
    return {0: "xapic", APIC_EXTD: "x2apic", APIC_OFF: "disabled"}[
        flags & (APIC_EXTD | APIC_OFF)]


def _modes_after(tmp_path: Path, ops: list[str], mode: str) -> list[str]:
    """Each op in turn on cpu0, every one OK: the APIC mode after it."""
    sc = _load(tmp_path, [ops], "bare", mode)
    st = initial_state(sc.machine)
    out = []
    for o in ops:
        chain: list[str] = []
        assert NAMES[step(sc.machine, st, 0, sc.op_index[o], chain,
                          [])] == "ok", chain
        out.append(_mode(st[F_FLAGS]))
    return out


@pytest.mark.parametrize(("mode", "start"), [
    ("", "xapic"), ("xapic", "xapic"), ("x2apic", "x2apic"),
    ("x2apic-locked", "x2apic"), ("xapic-only", "xapic")])
def test_every_cpu_starts_in_the_mode_firmware_left(
        tmp_path: Path, mode: str, start: str) -> None:
    sc = _load(tmp_path, [["start 1", "wait_online 1"], ["online"]], "bare",
               mode)
    st = initial_state(sc.machine)
    assert _mode(st[F_FLAGS]) == start
    assert st[NF + F_FLAGS] == 0          # an AP waiting for SIPI: nothing
    assert NAMES[step(sc.machine, st, 0, sc.op_index["start 1"], [],
                      [])] == "ok"
    assert _mode(st[NF + F_FLAGS]) == start


def test_a_tdx_guest_is_in_locked_x2apic_mode(tmp_path: Path) -> None:
    sc = _load(tmp_path, [["nop"]], "tdx")
    assert sc.machine.apic == 2
    assert _mode(initial_state(sc.machine)[F_FLAGS]) == "x2apic"


@pytest.mark.parametrize(("mode", "values", "after"), [
    ("xapic", ["0xfee00c00"], ["x2apic"]),
    ("xapic", ["0xfee00000", "0xfee00800"], ["disabled", "xapic"]),
    ("xapic", ["0xfee00900"], ["xapic"]),
    ("x2apic", ["0xfee00000", "0xfee00800", "0xfee00c00"],
     ["disabled", "xapic", "x2apic"]),
    ("x2apic-locked", ["0xfee00c00", "0xfee00d00"], ["x2apic", "x2apic"]),
    ("xapic-only", ["0xfee00000", "0xfee00800"], ["disabled", "xapic"]),
])
def test_legal_apic_base_transitions(tmp_path: Path, mode: str,
                                     values: list[str],
                                     after: list[str]) -> None:
    ops = [f"wrmsr APIC_BASE {v}" for v in values]
    assert _modes_after(tmp_path, ops, mode) == after


@pytest.mark.parametrize(("mode", "before", "value", "why"), [
    ("xapic", [], "0xfee00400", "EN = 0 with EXTD = 1 is the invalid state"),
    ("x2apic", [], "0xfee00400", "EN = 0 with EXTD = 1 is the invalid state"),
    ("x2apic", [], "0xfee00800", "x2APIC -> xAPIC is not a valid transition"),
    ("xapic", ["wrmsr APIC_BASE 0xfee00000"], "0xfee00c00",
     "disabled -> x2APIC is not a valid transition"),
    ("xapic-only", [], "0xfee00c00", "sets EXTD without x2APIC support"),
    ("x2apic-locked", [], "0xfee00000",
     "leaves x2APIC mode while firmware locked it"),
    ("x2apic-locked", [], "0xfee00800",
     "leaves x2APIC mode while firmware locked it"),
    ("xapic", [], "0xfee00801", "sets a reserved APIC_BASE bit"),
    ("xapic", [], "0xfee00a00", "sets a reserved APIC_BASE bit"),
    ("xapic", [], "0x10000000fee00800", "sets a reserved APIC_BASE bit"),
])
def test_illegal_apic_base_writes_gp_and_keep_the_mode(
        tmp_path: Path, mode: str, before: list[str], value: str,
        why: str) -> None:
    op = f"wrmsr APIC_BASE {value}"
    outcome, chain, _ = _run(tmp_path, [*before, op], "bare", mode)
    assert (outcome, chain) == ("triple_fault", [
        f"cpu0: {op}", f"WRMSR 0x1b: {why} -> #GP", *CRASH])
    # Fixed up by the exception table, the APIC stays in its mode.
    ops = ["lidt full", *before, f"wrmsr_safe APIC_BASE {value}"]
    modes = _modes_after(tmp_path, ops, mode)
    assert modes[-1] == modes[-2]


@pytest.mark.parametrize(("mode", "before"), [
    ("xapic", []), ("xapic-only", []),
    ("xapic", ["wrmsr APIC_BASE 0xfee00000"]),
    ("x2apic", ["wrmsr APIC_BASE 0xfee00000"])])
@pytest.mark.parametrize("access", ["rdmsr 0x802", "wrmsr 0x808 0",
                                    "rdmsr 0xbff"])
def test_x2apic_msrs_gp_outside_x2apic_mode(
        tmp_path: Path, mode: str, before: list[str], access: str) -> None:
    msr = access.split()[1]
    what = "RDMSR" if access.startswith("rdmsr") else "WRMSR"
    outcome, chain, _ = _run(tmp_path, [*before, access], "bare", mode)
    assert (outcome, chain) == ("triple_fault", [
        f"cpu0: {access}",
        f"{what} {msr}: the local APIC is not in x2APIC mode -> #GP", *CRASH])


@pytest.mark.parametrize(("access", "why"), [
    ("rdmsr 0x800", "reserved x2APIC MSR"),
    ("rdmsr 0x80e", "reserved x2APIC MSR"),
    ("wrmsr 0x831 0", "reserved x2APIC MSR"),
    ("rdmsr 0x840", "reserved x2APIC MSR"),
    ("rdmsr 0xbff", "reserved x2APIC MSR"),
    ("rdmsr 0x80b", "write-only x2APIC register"),
    ("rdmsr 0x83f", "write-only x2APIC register"),
    ("wrmsr 0x802 0", "read-only x2APIC register"),
    ("wrmsr 0x803 0", "read-only x2APIC register"),
    ("wrmsr 0x80a 0", "read-only x2APIC register"),
    ("wrmsr 0x80d 0", "read-only x2APIC register"),
    ("wrmsr 0x827 0", "read-only x2APIC register"),
    ("wrmsr 0x839 0", "read-only x2APIC register"),
    ("wrmsr 0x80b 1", "writes a non-zero value"),
    ("wrmsr 0x828 4", "writes a non-zero value"),
    ("wrmsr 0x832 0x100000000", "sets bits 63:32"),
    ("wrmsr 0x80b 0x100000000", "sets bits 63:32"),
    ("wrmsr 0x83f 0x102", "sets SELF IPI bits 31:8"),
])
def test_x2apic_mode_register_rules(tmp_path: Path, access: str,
                                    why: str) -> None:
    msr = f"0x{int(access.split()[1], 16):x}"
    what = "RDMSR" if access.startswith("rdmsr") else "WRMSR"
    outcome, chain, _ = _run(tmp_path, [access], "bare", "x2apic")
    assert (outcome, chain) == ("triple_fault", [
        f"cpu0: {access}", f"{what} {msr}: {why} -> #GP", *CRASH])


@pytest.mark.parametrize("access", [
    "rdmsr 0x802", "rdmsr 0x803", "rdmsr 0x808", "rdmsr 0x80a", "rdmsr 0x80d",
    "rdmsr 0x80f", "rdmsr 0x810", "rdmsr 0x827", "rdmsr 0x828", "rdmsr 0x830",
    "rdmsr 0x839", "rdmsr 0x83e", "wrmsr 0x808 0x10", "wrmsr 0x80b 0",
    "wrmsr 0x828 0", "wrmsr 0x830 0x100000000000fd", "wrmsr 0x832 0x10000",
    "wrmsr 0x838 0xffffffff", "wrmsr 0x83f 0xfd"])
def test_x2apic_mode_accesses_that_work(tmp_path: Path, access: str) -> None:
    assert _run(tmp_path, [access], "bare", "x2apic") == ("ok", [], [])


def test_kernel_accessors_fix_up_the_new_gps(tmp_path: Path) -> None:
    """rdmsr()/wrmsr() report the first failed read and write; the _safe
    ones report nothing (README rule 18)."""
    ops = ["lidt early", "rdmsr_safe 0x802", "wrmsr_safe APIC_BASE 0xfee00400",
           "rdmsr 0x802", "rdmsr 0x80b", "wrmsr APIC_BASE 0xfee00400"]
    assert _run(tmp_path, ops, "bare", "xapic") == ("warn", [
        "WARN: unchecked MSR access error: RDMSR 0x802 (fixed up)",
        "WARN: unchecked MSR access error: WRMSR 0x1b (fixed up)"], [
        "unchecked MSR access error: RDMSR 0x802 (fixed up)",
        "unchecked MSR access error: WRMSR 0x1b (fixed up)"])
    assert _run(tmp_path, ops[:3], "bare", "xapic") == ("ok", [], [])


SEV_RUNTIME = ["tss_setup_ist", "ltr", "lidt full", "sev_es_init_vc_handling",
               "setup_ghcb"]


@pytest.mark.parametrize("guest", ["sev-es", "sev-snp"])
def test_sev_x2apic_msrs_raise_vc_first(tmp_path: Path, guest: str) -> None:
    # Before a GHCB: vc_no_ghcb serves CPUID only.
    assert _run(tmp_path, ["lidt bringup", "rdmsr 0x808"], guest,
                "x2apic") == ("guest_terminated", [
        "cpu0: rdmsr 0x808",
        f"RDMSR: MSR access raises #VC in a {guest} guest",
        "#VC (MSR access) reaches vc_no_ghcb, which serves CPUID only:"
        " sev_es_terminate()"], [])
    # Even an access that #GPs on the CPU exits first.
    assert _run(tmp_path, ["rdmsr 0x802"], guest, "xapic")[1][:2] == [
        "cpu0: rdmsr 0x802",
        f"RDMSR: MSR access raises #VC in a {guest} guest"]
    # The runtime handler emulates; the hypervisor's #GP comes back.
    assert _run(tmp_path, [*SEV_RUNTIME, "rdmsr 0x802"], guest,
                "x2apic") == ("ok", [], [])
    assert _run(tmp_path, [*SEV_RUNTIME, "rdmsr 0x802"], guest,
                "xapic")[2] == [
        "unchecked MSR access error: RDMSR 0x802 (fixed up)"]


@pytest.mark.parametrize(("access", "exit_"), [
    ("rdmsr 0x802", "ve"), ("rdmsr 0x803", "ve"), ("rdmsr 0x80d", "ve"),
    ("rdmsr 0x80f", "ve"), ("wrmsr 0x80f 0", "ve"), ("rdmsr 0x830", "ve"),
    ("wrmsr 0x830 0", "ve"), ("rdmsr 0x839", "ve"), ("wrmsr 0x83a 0", "ve"),
    ("wrmsr 0x828 0", "ve"),
    ("wrmsr 0x802 0", "gp"), ("wrmsr 0x803 0", "gp"), ("wrmsr 0x80d 0", "gp"),
    ("wrmsr 0x839 0", "gp"), ("rdmsr 0x800", "gp"), ("rdmsr 0x831", "gp"),
    ("wrmsr 0x83b 0", "gp"), ("rdmsr 0x840", "gp"), ("rdmsr 0xbff", "gp"),
    ("rdmsr 0x808", ""), ("wrmsr 0x808 0", ""), ("rdmsr 0x80a", ""),
    ("wrmsr 0x80b 0", ""), ("rdmsr 0x820", ""), ("wrmsr 0x83f 0x20", ""),
])
def test_tdx_module_exits(access: str, exit_: str) -> None:
    msr = int(access.split()[1], 16)
    assert apic.tdx_exit(msr, access.startswith("wrmsr")) == exit_


def test_tdx_guest_outcomes(tmp_path: Path) -> None:
    # #VE, handled by the runtime handler (the VMM emulates it).
    assert _run(tmp_path, ["lidt full", "rdmsr 0x802"], "tdx") == \
        ("ok", [], [])
    # The early handler does port I/O only.
    assert _run(tmp_path, ["lidt early", "rdmsr 0x802"], "tdx") == (
        "unhandled", [
            "cpu0: rdmsr 0x802", "RDMSR: MSR access raises #VE in a tdx guest",
            "#VE (MSR access) in the early handler: tdx_early_handle_ve()"
            " handles port I/O only"], [])
    # The module's #GP: no #VE at all.
    assert _run(tmp_path, ["wrmsr 0x802 0"], "tdx") == ("triple_fault", [
        "cpu0: wrmsr 0x802 0",
        "WRMSR 0x802: the TDX module injects #GP(0) -> #GP", *CRASH], [])
    # Virtualised by the CPU: no exit, the SDM's rules.
    assert _run(tmp_path, ["rdmsr 0x80b"], "tdx") == ("triple_fault", [
        "cpu0: rdmsr 0x80b", "RDMSR 0x80b: write-only x2APIC register -> #GP",
        *CRASH], [])
    assert _run(tmp_path, ["rdmsr 0x808", "wrmsr 0x80b 0"], "tdx") == \
        ("ok", [], [])


@pytest.mark.parametrize(("plat", "message"), [
    ('guest = "bare"\napic = "x3apic"',
     "fuzzinit: error: t.toml:5: platform.apic: unknown APIC mode 'x3apic';"
     " expected one of xapic, x2apic, x2apic-locked, xapic-only"),
    ('guest = "tdx"\napic = "xapic"',
     "fuzzinit: error: t.toml:5: platform.apic: APIC mode 'xapic' in a TDX"
     " guest; expected x2apic-locked: the TDX module keeps a TD in x2APIC"
     " mode"),
])
def test_bad_apic_key_is_one_line_and_status_2(tmp_path: Path, plat: str,
                                                message: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[scenario]\nname = "t"\n[platform]\n' + plat +
                    '\n[[cpu]]\nprogram = ["nop"]\n')
    proc = subprocess.run([sys.executable, "-m", "fuzzinit", "explore",
                           "t.toml"], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(message), proc.stderr


def test_runtime_masks_are_the_models() -> None:
    defines = _defines(pml.runtime_text())
    for name in ("X2APIC_READABLE", "X2APIC_WRITABLE", "TDX_VE_READ",
                 "TDX_VE_WRITE", "TDX_NO_EXIT"):
        mask = getattr(apic, name)
        assert defines[f"{name}_LO"] & 0xFFFFFFFF == mask & 0xFFFFFFFF, name
        assert defines[f"{name}_HI"] & 0xFFFFFFFF == mask >> 32, name
    assert defines["APIC_BASE_RESERVED_LO"] | \
        (defines["APIC_BASE_RESERVED_HI"] & 0xFFFFFFFF) << 32 == \
        apic.APIC_BASE_RESERVED


X2APIC_OPS = (
    "rdmsr 0x802", "rdmsr 0x803", "rdmsr 0x808", "rdmsr 0x80b", "rdmsr 0x80f",
    "rdmsr 0x831", "rdmsr 0x839", "rdmsr 0x83f", "rdmsr 0x900",
    "rdmsr_safe 0x80d", "wrmsr 0x802 0", "wrmsr 0x80b 0", "wrmsr 0x80b 1",
    "wrmsr 0x828 0", "wrmsr 0x830 0x100000000", "wrmsr 0x832 0x100000000",
    "wrmsr 0x83a 0", "wrmsr 0x83f 0x102", "wrmsr 0x83f 0x2",
    "wrmsr APIC_BASE 0xfee00c00", "wrmsr APIC_BASE 0xfee00800",
    "wrmsr APIC_BASE 0xfee00000", "wrmsr APIC_BASE 0xfee00400",
    "wrmsr APIC_BASE 0xfee00a00", "wrmsr_safe APIC_BASE 0xfee00000")


def x2apic_scenario(seed: int) -> str:
    r = random.Random(seed)
    guest = r.choice(("bare", "bare", "sev-es", "sev-snp", "tdx"))
    mode = "x2apic-locked" if guest == "tdx" else r.choice(apic.APIC_MODES)
    first = r.choice(("lidt early", "lidt full", "lidt bringup_ghcb"))
    cpu0 = [first, "start 1", *r.sample(X2APIC_OPS, 7), "wait_online 1"]
    cpu1 = ["lidt full", *r.sample(X2APIC_OPS, 4), "online"]
    return "\n".join([
        "[scenario]", f'name = "x{seed}"',
        'fail_on = ["triple_fault", "unhandled", "guest_terminated", "hang"]',
        "[platform]", f'guest = "{guest}"', f'apic = "{mode}"',
        "[[cpu]]", "program = [" + ", ".join(f'"{o}"' for o in cpu0) + "]",
        "[[cpu]]", "program = [" + ", ".join(f'"{o}"' for o in cpu1) + "]",
        "[orderings]", 'mode = "interleave"', ""])


@needs_spin
@pytest.mark.parametrize("seed", range(12))
def test_spin_steps_with_the_model_on_x2apic_scenarios(
        tmp_path: Path, seed: int) -> None:
    path = tmp_path / "x.toml"
    path.write_text(x2apic_scenario(seed))
    sc = load(path)
    k = default_max_triggers(sc)
    assert sum(_lockstep(sc, k, tmp_path, s) for s in (1, 2, 3, 4)) > 0


@needs_spin
@pytest.mark.parametrize(("guest", "mode"), [
    ("bare", "xapic"), ("bare", "x2apic"), ("bare", "x2apic-locked"),
    ("bare", "xapic-only"), ("sev-es", "x2apic"), ("tdx", "x2apic-locked")])
def test_spin_agrees_on_each_x2apic_access_alone(
        tmp_path: Path, guest: str, mode: str) -> None:
    """Each access as the whole program, no IDT: a #GP the translation
    missed (or added) changes the outcome, not just a fixed-up step."""
    for op in X2APIC_OPS:
        sc = _load(tmp_path, [[op]], guest, mode)
        assert _lockstep(sc, 0, tmp_path, 1) == 1, op


def test_x2apic_scenarios_cover_every_mode_and_guest() -> None:
    texts = [x2apic_scenario(seed) for seed in range(12)]
    assert {m for t in texts for m in re.findall(r'apic = "(.*)"', t)} == \
        set(apic.APIC_MODES)
    assert {g for t in texts for g in re.findall(r'guest = "(.*)"', t)} == \
        {"bare", "sev-es", "sev-snp", "tdx"}
