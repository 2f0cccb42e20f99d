"""Ring 3 and handlers that schedule (issue 15 item 4, ops_user.py): the
stack an event from user mode is delivered on, SYSCALL, the SS a FRED frame
saves and ERETS compares (723edbd2ca5f), and the load-time rules that keep
kernel code out of user mode."""

from pathlib import Path

import pytest
from one_cpu import run_ops, scenario

from fuzzinit.errors import ScenarioError
from fuzzinit.model import machine as mc
from fuzzinit.model.outcome import INVALID, NAMES
from fuzzinit.model.run import initial_state, step
from fuzzinit.scenario.load import load

FRED = '["fred"]'
FRED_ON = ["wrmsr FRED_CONFIG entry", "wrmsr FRED_RSP0 stack",
           "cr4_set fred"]


@pytest.mark.parametrize(("ops", "features", "expected"), [
    # FRED: from ring 3 an NMI goes to level 0 on FRED_RSP0
    (["wrmsr FRED_CONFIG entry", "cr4_set fred", "exit_to_user", "nmi"],
     FRED, "triple_fault"),
    ([*FRED_ON, "exit_to_user", "nmi"], FRED, "ok"),
    # ... even when its configured level is 2 and FRED_RSP2 is 0
    ([*FRED_ON, "wrmsr FRED_STKLVLS linux", "exit_to_user", "nmi"], FRED,
     "ok"),
    # and in kernel mode that level-2 NMI faults
    ([*FRED_ON, "wrmsr FRED_STKLVLS linux", "nmi"], FRED, "unhandled"),
    # IDT: a gate without IST reads TSS.RSP0 - no TSS loaded, #PF, and
    # #DF's IST needs the TSS too
    (["lidt full", "exit_to_user", "pf"], "[]", "triple_fault"),
    (["lidt full", "ltr", "exit_to_user", "pf"], "[]", "ok"),
    # a user #PF at a wrong address (the FRED flag's rule) is the task's
    # problem: do_user_addr_fault signals or refaults it
    (["lidt full", "ltr", "exit_to_user", "pf"], FRED, "ok"),
])
def test_events_from_user_mode_use_the_ring_0_stack(
        tmp_path: Path, ops: list[str], features: str,
        expected: str) -> None:
    r = run_ops(tmp_path, ops, features)
    assert NAMES[r.outcome] == expected, r.chain


def test_a_user_fault_is_the_tasks_not_the_kernels(tmp_path: Path) -> None:
    """#BP in kernel code dies; from user mode it is a signal. An NMI from
    user mode does not enter paranoid_entry."""
    r = run_ops(tmp_path, ["lidt full", "ltr", "int3"])
    assert NAMES[r.outcome] == "unhandled"
    r = run_ops(tmp_path, ["lidt full", "ltr", "exit_to_user", "int3"])
    assert (NAMES[r.outcome], r.chain) == ("ok", [])
    ist = ["lidt full", "ltr", "tss_setup_ist", "patch_alternatives"]
    assert NAMES[run_ops(tmp_path, [*ist, "nmi"], '["fsgsbase"]')
                 .outcome] == "unhandled"
    assert NAMES[run_ops(tmp_path, [*ist, "exit_to_user", "nmi"],
                         '["fsgsbase"]').outcome] == "ok"


def test_syscall_needs_efer_sce(tmp_path: Path) -> None:
    booted = ["lidt full", "ltr", "tss_setup_ist"]
    sc = scenario(tmp_path, [*booted, "exit_to_user", "syscall"])
    st = initial_state(sc.machine)
    for op in sc.programs[0]:
        assert step(sc.machine, st, 0, op, [], []) == 0
    assert not st[mc.F_FLAGS] & mc.USER and st[mc.F_FLAGS] & mc.SS_KERNEL
    # EFER.SCE = 0: #UD, a SIGILL for the task; the CPU is in the kernel
    # (test_a_faulting_syscall_still_ends_in_the_kernel)
    sc = scenario(tmp_path, [*booted, "wrmsr EFER 0xd00", "exit_to_user",
                             "syscall"])
    st = initial_state(sc.machine)
    chain: list[str] = []
    for op in sc.programs[0]:
        assert step(sc.machine, st, 0, op, chain, []) == 0
    assert chain[0] == "SYSCALL with EFER.SCE = 0 -> #UD"
    assert not st[mc.F_FLAGS] & mc.USER


def test_a_faulting_syscall_still_ends_in_the_kernel(tmp_path: Path) -> None:
    """SYSCALL with EFER.SCE = 0: #UD from user mode, a SIGILL; the CPU
    goes on in the kernel, with the SS that entry loaded."""
    for features, setup, ss in (
            ("[]", ["lidt full", "ltr", "tss_setup_ist"], 0),
            (FRED, FRED_ON, mc.SS_KERNEL)):
        ops = [*setup, "wrmsr EFER 0xd00", "exit_to_user", "syscall",
               "printk"]
        sc = scenario(tmp_path, ops, features)
        st = initial_state(sc.machine)
        chain: list[str] = []
        for op in sc.programs[0]:
            assert step(sc.machine, st, 0, op, chain, []) == 0, chain
        assert chain[:2] == ["SYSCALL with EFER.SCE = 0 -> #UD",
                             "#UD from user mode: the kernel handles it for"
                             " the task"]
        assert st[mc.F_FLAGS] & (mc.USER | mc.SS_KERNEL) == ss


@pytest.mark.parametrize(("setup", "features", "why"), [
    (["lidt full", "ltr", "tss_setup_ist"], "[]",
     "INT 8 from user mode: gate 8 has DPL 0 -> #GP"),
    (FRED_ON, FRED, "INT 8 from user mode: fred_intx() treats it as #GP"),
])
def test_int_n_from_user_mode_reaches_only_user_gates(
        tmp_path: Path, setup: list[str], features: str, why: str) -> None:
    r = run_ops(tmp_path, [*setup, "exit_to_user", "int 8"], features)
    assert (NAMES[r.outcome], r.chain) == ("ok", [])
    sc = scenario(tmp_path, [*setup, "exit_to_user", "int 8"], features)
    st = initial_state(sc.machine)
    chain: list[str] = []
    for op in sc.programs[0]:
        assert step(sc.machine, st, 0, op, chain, []) == 0
    assert chain == ["INT 8: software interrupt through gate 8", why,
                     "#GP from user mode: the kernel handles it for the"
                     " task"]
    # a user gate is taken: INT 3 is #BP's
    r = run_ops(tmp_path, [*setup, "exit_to_user", "int 3"], features)
    assert NAMES[r.outcome] == "ok"


@pytest.mark.parametrize(("ops", "expected"), [
    # the boot's null SS saved by a FRED frame, __KERNEL_DS at ERETS
    ([*FRED_ON, "preempt_event", "exit_to_user", "syscall",
      "event_return"], "unhandled"),
    # SS loaded first (723edbd2ca5f)
    ([*FRED_ON, "loadsegment ss", "preempt_event", "exit_to_user",
      "syscall", "event_return"], "ok"),
    # no other task went to user mode: SS still matches
    ([*FRED_ON, "preempt_event", "event_return"], "ok"),
    # the other way round: saved __KERNEL_DS, SS nulled by the GDT fixup
    (["lidt full", "ltr", *FRED_ON, "loadsegment ss", "preempt_event",
      "lgdt null", "loadsegment ss", "event_return"], "unhandled"),
    # an IDT frame: IRET does not compare SS
    (["lidt full", "preempt_event", "exit_to_user", "syscall",
      "event_return"], "ok"),
])
def test_erets_compares_the_frames_ss(tmp_path: Path, ops: list[str],
                                      expected: str) -> None:
    r = run_ops(tmp_path, ops, FRED)
    assert NAMES[r.outcome] == expected, r.chain
    if expected == "unhandled":
        assert r.chain[1].startswith("ERETS: the frame's SS (")
        assert r.chain[1].endswith(") -> #GP(0)")


def test_kernel_code_in_user_mode_cannot_happen(tmp_path: Path) -> None:
    """A trigger of kernel code (printk) that would fire in user mode is an
    ordering that cannot happen; user code (cpuid) can."""
    path = tmp_path / "t.toml"
    path.write_text('[scenario]\nname = "t"\n[[cpu]]\nprogram = ["lidt full",'
                    ' "ltr", "exit_to_user", "cpuid"]\n[orderings]\n'
                    "triggers = { printk = 1 }\n")
    sc = load(path)
    st = initial_state(sc.machine)
    for op in sc.programs[0][:3]:
        assert step(sc.machine, st, 0, op, [], []) == 0
    printk = sc.op_index["printk"]
    assert step(sc.machine, st, 0, printk, [], []) == INVALID
    assert step(sc.machine, st, 0, sc.op_index["cpuid"], [], []) == 0


@pytest.mark.parametrize(("program", "problem"), [
    ('["exit_to_user", "wrmsr EFER 0xd01"]',
     "cpu[0].program: 'wrmsr EFER 0xd01' runs in user mode (after"
     " 'exit_to_user'), where kernel code does not; expected one of cpuid,"
     " div0, int, int3, mce, nmi, nop, pf, raise, rdgsbase, syscall, ud2;"
     " fix: put 'syscall' before it"),
    ('["syscall"]', "cpu[0].program: 'syscall' in kernel mode; expected"
     " 'exit_to_user' before it; fix: SYSCALL enters the kernel from user"
     " mode: return to user first"),
    ('["preempt_event", "preempt_event"]', "cpu[0].program:"
     " 'preempt_event' while a frame is open; expected 'event_return'"
     " before it; fix: one interrupt may be scheduled away at a time"),
    ('["event_return"]', "cpu[0].program: 'event_return' with no frame to"
     " return from; expected 'preempt_event' before it; fix: remove it or"
     " add the interrupt"),
])
def test_programs_keep_kernel_code_out_of_user_mode(
        tmp_path: Path, program: str, problem: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(f'[scenario]\nname = "t"\n[[cpu]]\nprogram = {program}\n')
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert str(err.value).split(": ", 1)[1] == problem
