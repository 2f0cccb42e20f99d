"""A CPU's later lives: offline, INIT and re-online, kernel images, per-CPU
kernel memory - what the model keeps and resets, and what the tools show
(README rules 30-32)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzinit.cli import main
from fuzzinit.explore.bfs import COMPLETE, FAILED, explore
from fuzzinit.explore.windows import timeline, windows
from fuzzinit.model import machine as mc
from fuzzinit.model.outcome import NAMES, OK
from fuzzinit.model.run import initial_state, run, step
from fuzzinit.orderings.schedule import Event, program_order, well_formed
from fuzzinit.report.timeline import describe, state_of
from fuzzinit.scenario.load import load
from fuzzinit.search import search

ROOT = Path(__file__).parent.parent
MODELS = ROOT / "models"

AP = """\
[scenario]
name = "life"
fail_on = ["triple_fault", "unhandled", "hang"]
[platform]
guest = "bare"
features = ["fred", "pcid", "cet"]
console = "8250"
[[cpu]]
program = {cpu0}
[[cpu]]
program = {cpu1}
"""


def _scenario(tmp_path: Path, cpu0: list[str], cpu1: list[str]) -> Path:
    path = tmp_path / "life.toml"
    path.write_text(AP.format(cpu0=_list(cpu0), cpu1=_list(cpu1)))
    return path


def _list(ops: list[str]) -> str:
    return "[" + ", ".join(f'"{op}"' for op in ops) + "]"


def test_init_resets_registers_and_keeps_msrs_and_memory(
        tmp_path: Path) -> None:
    """After offline and a second start: CR4/IDT/TR are the reset ones
    (then the trampoline's long mode), the FRED MSRs, the TSS's IST slots,
    the microcode update and per-CPU kernel memory are still there (SDM
    Vol. 3A 10.1, 10.11.6.1)."""
    sc = load(_scenario(tmp_path, ["start 1", "wait_offline 1", "start 1"], [
        "lidt full", "ltr", "tss_setup_ist", "load_microcode",
        "wrmsr S_CET 0x4",
        "wrmsr FRED_CONFIG entry", "wrmsr FRED_RSP0 0", "fred_rsp0 update",
        "cr4_set fred", "online", "offline hlt", "nop second life"]))
    st = initial_state(sc.machine)
    for ev in program_order(sc)[:-1]:     # up to the second start
        assert step(sc.machine, st, ev.cpu, ev.op, [], []) == 0
    ap = mc.NF
    assert st[ap + mc.F_IDT] == mc.IDT_NONE
    assert st[ap + mc.F_CR4] == sc.machine.entry_cr4      # no FRED
    assert st[ap + mc.F_TSS] == 0b111110                  # TR gone, ISTs kept
    assert st[ap + mc.F_FRED_CONFIG] != 0
    assert st[ap + mc.F_FRED_RSP0] != 0
    assert st[ap + mc.F_PERCPU] == mc.PERCPU_FRED_RSP0
    assert st[ap + mc.F_FLAGS] & (mc.UCODE | mc.STARTED | mc.ONLINE
                                  | mc.IBT_ON) == \
        mc.UCODE | mc.STARTED | mc.IBT_ON
    assert st[ap + mc.F_LIFE] == 0                        # running, kernel


def test_a_start_waits_for_the_cpu_to_be_down(tmp_path: Path) -> None:
    """The schedule never offers a second `start` while its CPU runs, and
    the model calls one that is forced INVALID."""
    sc = load(_scenario(tmp_path, ["start 1", "start 1"],
                        ["online", "offline mwait"]))
    order = program_order(sc)
    assert [(e.cpu, sc.op_text(e.op)) for e in order] == [
        (0, "start 1"), (1, "online"), (1, "offline mwait"), (0, "start 1"),
        ]
    forced = [order[0], order[3]]
    assert NAMES[run(sc.machine, [e.cpu for e in forced],
                     [e.op for e in forced]).outcome] == "invalid"


def test_an_nmi_to_a_parked_cpu_is_delivered_with_its_parked_state(
        tmp_path: Path) -> None:
    """hlt_play_dead keeps interrupts off, not NMIs: the NMI goes through
    the IDT the CPU parked with, and after a kernel copy the return into
    the loop is a wild jump (the hazard d7893093a741 leaves open)."""
    path = _scenario(
        tmp_path, ["start 1", "wait_offline 1", "jump_image control",
                   "replace_image kernel next", "nop"],
        ["lidt full", "ltr", "tss_setup_ist", "online", "offline hlt"])
    path.write_text(path.read_text() + "[[orderings.trigger]]\n"
                    'kind = "nmi"\ncpus = [1]\nafter = "offline hlt"\n')
    sc = load(path)
    order = program_order(sc)
    nmi = Event(1, sc.triggers[0].op, -1, 0)
    before_copy = order[:-3] + [nmi]
    assert well_formed(sc, before_copy) == ""
    r = run(sc.machine, [e.cpu for e in before_copy],
            [e.op for e in before_copy])
    assert NAMES[r.outcome] == "ok"
    after_copy = order[:-1] + [nmi]
    assert well_formed(sc, after_copy) == ""
    r = run(sc.machine, [e.cpu for e in after_copy],
            [e.op for e in after_copy])
    assert (NAMES[r.outcome], r.chain) == ("triple_fault", [
        "cpu1: nmi", "NMI arrives",
        "NMI: the IDT IDTR points at is in kernel's memory,"
        " which holds another image now: the CPU runs whatever is there"
        " -> taken as SHUTDOWN (triple fault) [derived]"])


def test_windows_are_listed_per_image() -> None:
    """`fuzzinit windows` on a resume scenario: each stretch names the
    image the CPU runs in - the restore kernel, core_restore_code's safe
    page, the image kernel still on the restore kernel's IDT - and a CPU
    started again has its own point (INIT left it the reset IDT); a #PF
    on the parked sibling is no point at all (IF = 0)."""
    sc = load(MODELS / "s4-nosmt-mwait-sibling-fixed.toml")
    assert timeline(windows(sc)) == [
        "cpu0 [kernel]: start .. lidt full: nmi, pf fatal",
        "cpu0 [kernel]: lidt full .. tss_setup_ist: nmi fatal",
        "cpu0 [control]: replace_image kernel next .. jump_image next:"
        " nmi, pf fatal",
        "cpu0 [next]: jump_image next .. lidt full: nmi, pf fatal",
        "cpu1 [kernel]: start .. lidt full: nmi, pf fatal",
        "cpu1 [kernel]: lidt full .. tss_setup_ist: nmi fatal",
        "cpu1 [kernel]: restart .. lidt full: nmi, pf fatal",
        "cpu1 [kernel]: lidt full .. ltr: nmi fatal",
        # parked in HLT, it sleeps through the copy: an NMI then is fatal
        # (the hole d7893093a741 names)
        "cpu1 [kernel]: cpu0 replace_image kernel next .. end: nmi fatal"]


def test_the_cli_prints_windows_per_image(
        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["windows", str(MODELS / "kexec-mwait-play-dead-fixed.toml")])
    out = capsys.readouterr().out
    assert status == 1
    assert "  cpu0 [control]: replace_image kernel next .. jump_image next:" \
        " nmi, pf fatal\n" in out
    assert "  cpu0 [next]: jump_image next .. lidt early: nmi, pf fatal\n" \
        in out


def test_the_report_state_shows_images_parks_and_the_cache() -> None:
    """A value with its image, a parked CPU's loop, and the per-CPU cache
    next to the MSR it caches."""
    sc = load(MODELS / "fred-rsp0-reonline.toml")
    st = initial_state(sc.machine)
    order = program_order(sc)
    parked = next(i for i, e in enumerate(order)
                  if sc.op_text(e.op) == "offline mwait")
    for ev in order[:parked + 1]:
        step(sc.machine, st, ev.cpu, ev.op, [], [])
    line = describe(state_of(sc, st, 1))
    assert line.endswith("offline parked:mwait")
    assert "FRED_RSP0=0xfffffe0000010000 fred_rsp0-cache=task-stack" in line
    sc2 = load(MODELS / "kexec-mwait-play-dead-fixed.toml")
    st = initial_state(sc2.machine)
    for ev in program_order(sc2):
        step(sc2.machine, st, ev.cpu, ev.op, [], [])
    assert "code=next IDT=early@next gone:kernel" in \
        describe(state_of(sc2, st, 0))
    assert "code=kernel IDT=full@kernel gone:kernel" in \
        describe(state_of(sc2, st, 1))


@pytest.mark.parametrize("name", ["kexec-mwait-play-dead",
                                  "fred-rsp0-reonline"])
def test_export_refuses_life_cycle_scenarios(
        name: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.pml"
    path = MODELS / f"{name}.toml"
    status = main(["export", "--promela", str(path), "-o", str(out)])
    assert (status, capsys.readouterr().err) == (2, (
        f"fuzzinit: error: {path}: cannot export op 'wait_offline 1': the"
        " Promela runtime has no translation of 'wait_offline' (CPU offline,"
        " INIT and kernel images are not in runtime.pml); fix: check this"
        " scenario with `fuzzinit explore` instead\n"))
    assert not out.exists()


def _with_nmi(path: Path, where: str = "") -> Path:
    path.write_text(path.read_text() + "[[orderings.trigger]]\n"
                    'kind = "nmi"\ncpus = [1]\n' + where)
    return path


def test_a_window_belongs_to_one_life(tmp_path: Path) -> None:
    """The default NMI window (after `online`) is open in the first life
    and while the CPU is parked after it, and does not reopen when the CPU
    is started again, before its new `online`; a #PF is no event for a
    parked CPU (IF = 0)."""
    path = _with_nmi(_scenario(
        tmp_path, ["start 1", "wait_offline 1", "start 1"],
        ["lidt full", "ltr", "tss_setup_ist", "online", "offline hlt",
         "lidt full", "online"]))
    path.write_text(path.read_text() + "[[orderings.trigger]]\n"
                    'kind = "pf"\ncpus = [1]\n')
    sc = load(path)
    order = program_order(sc)
    nmi = Event(1, sc.triggers[0].op, -1, 0)
    pf = Event(1, sc.triggers[1].op, -1, 1)
    parked = [i for i, e in enumerate(order)
              if sc.op_text(e.op) == "offline hlt"][0] + 1
    restarted = parked + 2          # wait_offline 1, start 1
    assert well_formed(sc, order[:parked] + [nmi]) == ""
    assert well_formed(sc, order[:parked] + [pf]) != ""
    assert well_formed(sc, order[:restarted] + [nmi]) != ""
    assert well_formed(sc, order[:restarted] + [pf]) != ""
    assert well_formed(sc, order + [nmi]) != ""


def test_fred_config_keeps_its_image_across_init(tmp_path: Path) -> None:
    """FRED_CONFIG survives INIT, and so does the image its entry point is
    in: after kexec, an AP the new kernel restarts with CR4.FRED set before
    the FRED MSRs are rewritten enters the old kernel's code."""
    sc = load(_scenario(
        tmp_path, ["start 1", "wait_offline 1", "jump_image control",
                   "replace_image kernel next", "jump_image next", "start 1"],
        ["wrmsr FRED_CONFIG entry", "online", "offline hlt", "cr4_set fred",
         "pf"]))
    order = program_order(sc)
    r = run(sc.machine, [e.cpu for e in order], [e.op for e in order])
    assert (NAMES[r.outcome], r.chain) == ("triple_fault", [
        "cpu1: pf", "#PF raised",
        "#PF: FRED_CONFIG's entry point is in kernel's memory, which holds"
        " another image now: the CPU runs whatever is there -> taken as"
        " SHUTDOWN (triple fault) [derived]"])


def test_a_machine_check_wakes_every_parked_cpu(tmp_path: Path) -> None:
    """#MC is broadcast: a CPU parked in a copied-over image returns into
    garbage whichever CPU the trigger is written on (here both CPUs take
    the #MC through IDTs in the control page, so only the return is
    wrong)."""
    path = _scenario(
        tmp_path, ["cr4_set mce", "jump_image control", "lidt full", "ltr",
                   "tss_setup_ist", "start 1", "wait_offline 1",
                   "replace_image kernel next", "nop after the copy"],
        ["cr4_set mce", "jump_image control", "lidt full", "ltr",
         "tss_setup_ist", "online", "jump_image kernel", "offline hlt"])
    path.write_text(path.read_text() + "[[orderings.trigger]]\n"
                    'kind = "mce"\ncpus = [0]\nafter = "nop after the copy"\n')
    sc = load(path)
    order = program_order(sc)
    events = order + [Event(0, sc.triggers[0].op, -1, 0)]
    assert well_formed(sc, events) == ""
    r = run(sc.machine, [e.cpu for e in events], [e.op for e in events])
    assert (NAMES[r.outcome], r.chain[-1]) == (
        "triple_fault", "cpu1 returns from the #MC into its play-dead loop in"
        " kernel's code, whose memory holds another image now: it runs"
        " whatever is there -> taken as SHUTDOWN (triple fault) [derived;"
        " d7893093a741 and ec527c318036 report triple faults]")


def test_a_restart_tags_fred_with_one_image(tmp_path: Path) -> None:
    """With FRED_CONFIG 0 a restart gives the FRED entry the starter's
    image - replacing, not adding to, the one it had."""
    sc = load(_scenario(
        tmp_path, ["start 1", "wait_offline 1", "jump_image control",
                   "start 1"],
        ["jump_image next", "online", "offline hlt", "nop"]))
    st = initial_state(sc.machine)
    for ev in program_order(sc):
        step(sc.machine, st, ev.cpu, ev.op, [], [])
    assert state_of(sc, st, 1)["fred_image"] == "control"


@pytest.mark.parametrize(("text", "message"), [
    ("jump_image", "jump_image needs 1 image name; expected jump_image"
     " IMAGE (an IMAGE is one of kernel, next, control, firmware); fix:"
     " write e.g. 'jump_image next'"),
    ("replace_image kernel", "replace_image needs 2 image names; expected"
     " replace_image IMAGE IMAGE (an IMAGE is one of kernel, next, control,"
     " firmware); fix: write e.g. 'replace_image kernel next'"),
])
def test_an_image_op_without_images_says_how_to_write_it(
        tmp_path: Path, text: str, message: str) -> None:
    from fuzzinit.errors import ScenarioError
    path = _scenario(tmp_path, [text], [])
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert str(info.value).endswith(message)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_panic_on_an_ap_resets_the_machine_through_init_to_cpu0(
        seed: int) -> None:
    """45e34c8af58f's INIT parking, run by a panicking AP: the core is the
    boot CPU's IDT (the REBOOT IPI is delivered through it), the AP's
    start, the boot CPU's stop and the INIT that reaches it."""
    sc = load(MODELS / "panic-ap-init-bsp.toml")
    report = search(sc, examples=200, seed=seed)
    assert report.finding is not None
    result = report.finding.result
    assert result.name == "reset"
    assert [(e.cpu, sc.op_text(e.op)) for e in report.finding.core] == [
        (0, "lidt full"), (0, "start 1"), (0, "stop_this_cpu reboot"),
        (1, "send_init 0")]
    assert result.chain == [
        "cpu1: send_init 0",
        "INIT to the boot CPU: its BSP flag makes it run the firmware's"
        " boot-strap code rather than wait for a SIPI -> the machine starts"
        " over (SDM Vol. 3A 9.4.2)"]


def test_a_stopped_cpu_takes_an_nmi_through_what_it_stopped_with(
        tmp_path: Path) -> None:
    """The boot CPU stopped by the AP's panic is parked like an offline
    CPU: an NMI reaches it (rule 33), and the fixed pair has no trigger
    that can hurt it, while stop_this_cpu on cpu 0 is no load error."""
    path = tmp_path / "stopped.toml"
    text = (MODELS / "panic-ap-init-bsp-fixed.toml").read_text()
    path.write_text(text + "[[orderings.trigger]]\nkind = \"nmi\"\n"
                    "cpus = [0]\nafter = \"stopped\"\n")
    sc = load(path)
    ex = explore(sc, 1, 1_000_000)
    assert ex.verdict == COMPLETE
    # the same NMI to a boot CPU that stopped before its TSS and IST
    # stacks were set up: the NMI gate's IST push faults
    path.write_text(path.read_text().replace(
        'boot = ["lidt full", "ltr", "tss_setup_ist"]', 'boot = ["lidt full"]'))
    ex = explore(load(path), 1, 1_000_000)
    assert ex.verdict == FAILED and ex.result is not None
    assert ex.result.chain[:3] == [
        "cpu0: nmi", "NMI arrives",
        "NMI gate uses IST2, but no TSS is loaded (ltr): the frame push"
        " faults -> #PF"]


@pytest.mark.parametrize(("how", "outcome"), [("reboot", "triple_fault"),
                                               ("nmi", "ok")])
def test_a_cpu_stopped_by_the_nmi_keeps_nmis_blocked(
        tmp_path: Path, how: str, outcome: str) -> None:
    """stop_this_cpu() never returns from the handler that ran it. Stopped
    by the REBOOT IPI, the AP still takes an NMI, and one after the kexec
    copy returns into the old kernel's bytes; stopped by the NMI fallback,
    a later NMI stays pending and the AP sleeps on (SDM Vol. 3A 6.7.1)."""
    path = tmp_path / "stop.toml"
    path.write_text(
        '[scenario]\nname = "stop"\nfail_on = ["triple_fault", "unhandled"]\n'
        '[platform]\nguest = "bare"\nconsole = "8250"\n'
        '[[cpu]]\nprogram = ["lidt full", "ltr", "tss_setup_ist", "start 1",'
        ' "wait_online 1", "wait_offline 1", "jump_image control",'
        ' "replace_image kernel next"]\n'
        '[[cpu]]\nprogram = ["lidt full", "ltr", "tss_setup_ist", "online",'
        f' "stop_this_cpu {how}"]\n'
        '[[orderings.trigger]]\nkind = "nmi"\ncpus = [1]\n'
        f'after = "stop_this_cpu {how}"\n')
    ex = explore(load(path), 1, 1_000_000)
    if outcome == "ok":
        assert ex.verdict == COMPLETE
        return
    assert ex.verdict == FAILED and ex.result is not None
    assert ex.result.name == outcome
    assert ex.result.chain == [
        "cpu1: nmi", "NMI arrives",
        "NMI: the IDT IDTR points at is in kernel's memory, which holds"
        " another image now: the CPU runs whatever is there -> taken as"
        " SHUTDOWN (triple fault) [derived]"]


def test_a_machine_check_unblocks_nmis_on_a_cpu_stopped_by_the_nmi(
        tmp_path: Path) -> None:
    """The #MC handler's IRET unblocks NMIs (SDM Vol. 3A 6.7.1) on a CPU
    parked inside its NMI handler: the next NMI after the kexec copy wakes
    it into the overwritten IDT."""
    path = tmp_path / "mce.toml"
    path.write_text(
        '[scenario]\nname = "mce"\nfail_on = ["triple_fault", "unhandled"]\n'
        '[platform]\nguest = "bare"\nconsole = "8250"\n'
        '[[cpu]]\nprogram = ["cr4_set mce", "lidt full", "ltr",'
        ' "tss_setup_ist", "start 1", "wait_online 1", "wait_offline 1",'
        ' "jump_image control", "replace_image kernel next"]\n'
        '[[cpu]]\nprogram = ["cr4_set mce", "lidt full", "ltr",'
        ' "tss_setup_ist", "online", "stop_this_cpu nmi"]\n'
        '[[orderings.trigger]]\nkind = "nmi"\ncpus = [1]\n'
        'after = "stop_this_cpu nmi"\n'
        '[[orderings.trigger]]\nkind = "mce"\ncpus = [0]\n'
        'after = "wait_offline 1"\nbefore = "jump_image control"\n')
    ex = explore(load(path), 2, 1_000_000)
    assert ex.verdict == FAILED and ex.result is not None
    assert ex.result.name == "triple_fault"
    assert ex.result.chain[:2] == ["cpu1: nmi", "NMI arrives"]


def test_a_machine_check_unblocks_nmis_without_kernel_images_too(
        tmp_path: Path) -> None:
    """The same IRET as above, in a scenario with no kernel images: the
    #MC taken on the running boot CPU clears NMI blocking on cpu1, which
    the NMI that stopped it left set (a review found this path skipped)."""
    path = tmp_path / "mce-plain.toml"
    path.write_text(
        '[scenario]\nname = "mce-plain"\n'
        '[platform]\nguest = "bare"\nconsole = "8250"\n'
        '[[cpu]]\nprogram = ["cr4_set mce", "lidt full", "ltr",'
        ' "tss_setup_ist", "start 1", "wait_online 1", "wait_offline 1",'
        ' "mce"]\n'
        '[[cpu]]\nprogram = ["cr4_set mce", "lidt full", "ltr",'
        ' "tss_setup_ist", "online", "stop_this_cpu nmi"]\n')
    sc = load(path)
    m = sc.machine
    st = initial_state(m)
    order = [(0, s) for s in range(5)] + [(1, s) for s in range(5)] + \
        [(0, 5), (1, 5), (0, 6)]
    blocked = []
    for cpu, slot in order:
        assert step(m, st, cpu, sc.programs[cpu][slot], [], []) == OK
        blocked.append(bool(st[1 * mc.NF + mc.F_FLAGS] & mc.NMI_BLOCKED))
    assert blocked[-1] and not blocked[0]
    assert step(m, st, 0, sc.programs[0][7], [], []) == OK
    assert not st[1 * mc.NF + mc.F_FLAGS] & mc.NMI_BLOCKED
