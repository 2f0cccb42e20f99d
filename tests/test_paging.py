"""Memory as named regions (issue 15 item 6, fuzzinit/model/paging.py):
page tables from [memory], the global TLB entries that outlive a CR3
switch and what flushes them, the permission checks of an access, the
#PF of a delivery that touches an unmapped IDT or stack, and the errors a
bad [memory] gives."""

from pathlib import Path

import pytest

from fuzzinit.cli import main
from fuzzinit.errors import ScenarioError
from fuzzinit.model.outcome import NAMES, Result
from fuzzinit.model.run import run
from fuzzinit.scenario.load import Scenario, load

KERNEL = '["text:rxg", "data:rwg", "stack:rwg", "estack:rwg", "desc:rg",' \
    ' "control:rxg", "user:rwxu"]'
OTHER = '["text:rx", "control:rwx", "desc:r", "stack:rw"]'


def scenario(tmp_path: Path, ops: list[str], kernel: str = KERNEL,
             other: str = OTHER, features: str = "[]") -> Scenario:
    path = tmp_path / "t.toml"
    path.write_text(
        '[scenario]\nname = "t"\nfail_on = ["triple_fault", "unhandled"]\n'
        f"[platform]\nfeatures = {features}\n"
        '[memory]\ncr3 = "kernel"\n[memory.tables]\n'
        f"kernel = {kernel}\nkexec = {other}\n"
        "[[cpu]]\nprogram = [" + ", ".join(f'"{o}"' for o in ops) + "]\n")
    return load(path)


def run_ops(tmp_path: Path, ops: list[str], **kw: str) -> Result:
    sc = scenario(tmp_path, ["lidt null", *ops], **kw)
    return run(sc.machine, [0] * (len(ops) + 1),
               [sc.op_index[" ".join(o.split())]
                for o in ["lidt null", *ops]])


STALE_RO = ("write of control: a global TLB entry from an earlier CR3"
            " (read-only) may still be used -> #PF")


@pytest.mark.parametrize(("ops", "expected"), [
    # the read-only global entry outlives the switch (d144d8a65286)
    (["write_cr3 kexec", "access control write"], "triple_fault"),
    # PGE off before the switch: no global entry is kept
    (["mov_cr4 -pge", "write_cr3 kexec", "access control write"], "ok"),
    # MOV to CR4 changing PGE flushes global entries (SDM 4.10.4.1)
    (["write_cr3 kexec", "mov_cr4 -pge", "access control write"], "ok"),
    (["write_cr3 kexec", "mov_cr4 -pge", "mov_cr4 +pge",
      "access control write"], "ok"),
    # ... and so does clearing CR4.PCIDE
    (["cr4_set pcide", "write_cr3 kexec", "cr4_clear pcide",
      "access control write"], "ok"),
    # setting it does not
    (["write_cr3 kexec", "cr4_set pcide", "access control write"],
     "triple_fault"),
    # leaving and re-entering paging flushes (compatibility mode first)
    (["write_cr3 kexec", "ljmp cs32", "mov_cr0 -pg", "mov_cr0 +pg",
      "ljmp cs64", "access control write"], "ok"),
    # a non-global entry goes with the CR3 write
    (["write_cr3 kexec", "write_cr3 kernel", "write_cr3 kexec",
      "access control write"], "triple_fault"),
])
def test_global_entries_survive_cr3_until_a_flush(
        tmp_path: Path, ops: list[str], expected: str) -> None:
    r = run_ops(tmp_path, ops, features='["pcid"]')
    assert NAMES[r.outcome] == expected
    assert (STALE_RO in r.chain) == (expected != "ok")


def test_a_non_global_entry_is_not_kept(tmp_path: Path) -> None:
    kernel = KERNEL.replace("control:rxg", "control:rx")
    r = run_ops(tmp_path, ["write_cr3 kexec", "access control write"],
                kernel=kernel)
    assert NAMES[r.outcome] == "ok"


@pytest.mark.parametrize(("ops", "why"), [
    (["access control write"], "write of control through the kernel page"
     " table: read-only -> #PF"),
    (["access data fetch"], "fetch of data through the kernel page table:"
     " execute-disable -> #PF"),
    (["write_cr3 kexec", "mov_cr4 -pge", "access data read"],
     "read of data through the kexec page table: not mapped -> #PF"),
    # XD with EFER.NXE = 0 is a reserved bit (SDM 4.5, 4.7)
    (["wrmsr EFER 0x501", "access data read"], "read of data through the"
     " kernel page table: XD set while EFER.NXE = 0 (a reserved bit) -> #PF"),
    (["cr4_set smep", "access user fetch"], "fetch of user through the"
     " kernel page table: a user page with CR4.SMEP -> #PF"),
    (["cr4_set smap", "access user read"], "read of user through the kernel"
     " page table: a user page with CR4.SMAP and EFLAGS.AC = 0 -> #PF"),
])
def test_an_access_the_entry_forbids_is_a_page_fault(
        tmp_path: Path, ops: list[str], why: str) -> None:
    r = run_ops(tmp_path, ops, features='["smep", "smap"]')
    assert NAMES[r.outcome] == "triple_fault"
    assert r.chain[1] == why


@pytest.mark.parametrize("ops", [
    ["access text fetch"], ["access user write"],
    ["wrmsr EFER 0x501", "access text fetch"],       # XD clear: no reserved bit
    ["cr4_set smap", "stac", "access user write"],   # AC = 1 lets it through
    ["mov_cr0 -wp", "access control write"],         # WP = 0: supervisor writes
])
def test_an_access_the_entry_allows_is_not(tmp_path: Path,
                                           ops: list[str]) -> None:
    r = run_ops(tmp_path, ops, features='["smep", "smap"]')
    assert (NAMES[r.outcome], r.chain) == ("ok", [])


def test_delivery_reads_the_idt_and_pushes_on_the_stack(
        tmp_path: Path) -> None:
    """The IDT (desc) is read before the gate is checked; the frame goes on
    the current stack, or the IST's (estack)."""
    kernel = '["text:rxg", "desc:rg", "estack:rwg"]'
    sc = scenario(tmp_path, ["lidt full", "ltr", "tss_setup_ist", "int3",
                             "nmi"], kernel=kernel)
    r = run(sc.machine, [0] * 4, sc.programs[0][:4])
    assert NAMES[r.outcome] == "unhandled"
    assert r.chain[2:] == [
        "#BP: write of stack through the kernel page table: not mapped"
        " -> #PF",
        "#PF while delivering #BP is handled serially (SDM table 6-5)",
        "#PF: write of stack through the kernel page table: not mapped"
        " -> #PF",
        "#PF while delivering #PF -> #DF (SDM table 6-5)",
        "#DF reaches the kernel's handler, which cannot recover from it:"
        " oops/panic"]
    # an NMI goes to IST2 (estack), which is mapped
    r = run(sc.machine, [0] * 4, [*sc.programs[0][:3], sc.programs[0][4]])
    assert NAMES[r.outcome] == "ok"


def test_an_event_from_ring_3_goes_on_the_stack_under_fred(
        tmp_path: Path) -> None:
    """From ring 3 an NMI is at FRED stack level 0 whatever STKLVLS says:
    its frame goes on `stack`, not `estack` (Bochs FRED_EventDelivery)."""
    kernel = '["text:rxg", "desc:rg", "stack:rwg"]'
    fred = ["wrmsr FRED_CONFIG entry", "wrmsr FRED_STKLVLS linux",
            "wrmsr FRED_RSP0 stack", "wrmsr FRED_RSP2 stack", "cr4_set fred"]
    sc = scenario(tmp_path, [*fred, "exit_to_user", "nmi"], kernel=kernel,
                  features='["fred"]')
    r = run(sc.machine, [0] * 7, sc.programs[0])
    assert (NAMES[r.outcome], r.chain) == ("ok", [])
    # in kernel mode the same NMI takes level 2, on the unmapped estack
    r = run(sc.machine, [0] * 6, [*sc.programs[0][:5], sc.programs[0][6]])
    assert NAMES[r.outcome] == "unhandled"
    assert "NMI: write of estack through the kernel page table: not mapped" \
        " -> #PF" in r.chain


@pytest.mark.parametrize(("memory", "problem"), [
    ('[memory.tables]\nkernel = ["stak:rw"]\n',
     "memory.tables.kernel: unknown region 'stak'; expected one of text,"
     " data, percpu, stack, estack, desc, directmap, ident, control,"
     " firmware, user; fix: name the region the kernel touches"),
    ('[memory.tables]\nkernel = ["stack:rwq"]\n',
     "memory.tables.kernel: 'stack:rwq': unknown permission 'q'; expected"
     ' letters of r w x u g; fix: e.g. "stack:rwg"'),
    ('[memory.tables]\nkernel = ["stack:wg"]\n',
     "memory.tables.kernel: 'stack:wg' maps nothing readable; expected r"
     ' with any other letter; fix: write "stack:rwg", or leave the region'
     " out to leave it unmapped"),
    ('[memory.tables]\nswapper = ["stack:rw"]\n',
     "memory.tables.swapper: unknown page table 'swapper'; expected one of"
     " kernel, trampoline, kexec, efi, resume, early; fix: use the name of"
     " the table the kernel loads"),
    ('cr3 = "kexec"\n[memory.tables]\nkernel = ["stack:rw"]\n',
     "memory.cr3: 'kexec' is not a table of [memory.tables]; expected one"
     " of kernel; fix: name the table the CPUs start on"),
])
def test_a_bad_memory_table_is_a_load_error(
        tmp_path: Path, memory: str, problem: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[scenario]\nname = "t"\n[memory]\n' + memory
                    + '[[cpu]]\nprogram = ["nop"]\n')
    with pytest.raises(ScenarioError) as err:
        load(path)
    assert str(err.value).split(": ", 1)[1] == problem


def test_memory_ops_need_the_tables_they_name(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[scenario]\nname = "t"\n[[cpu]]\n'
                    'program = ["access stack write"]\n')
    with pytest.raises(ScenarioError, match="'access stack write' needs page"
                       " tables; expected a \\[memory\\] table"):
        load(path)
    path.write_text('[scenario]\nname = "t"\n[memory.tables]\n'
                    'kernel = ["stack:rw"]\n[[cpu]]\n'
                    'program = ["write_cr3 efi"]\n')
    with pytest.raises(ScenarioError, match="'write_cr3 efi' loads a page"
                       " table the scenario does not declare; expected one"
                       " of kernel; fix: add efi = \\[...\\] under"):
        load(path)


def test_export_refuses_a_scenario_with_memory(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Page tables change every delivery: the export refuses [memory] even
    where no memory op is used, and names the op where one is."""
    sc = scenario(tmp_path, ["nop"])
    assert sc.machine.paging
    assert main(["export", "--promela", str(tmp_path / "t.toml")]) == 2
    assert capsys.readouterr().err == (
        f"fuzzinit: error: {tmp_path / 't.toml'}: cannot export [memory]:"
        " the Promela runtime has no translation of '[memory]' (page tables"
        " and regions ([memory]) are not in runtime.pml); fix: check this"
        " scenario with `fuzzinit explore` instead\n")
    scenario(tmp_path, ["write_cr3 kexec"])
    assert main(["export", "--promela", str(tmp_path / "t.toml")]) == 2
    assert "cannot export op 'write_cr3 kexec'" in capsys.readouterr().err
