"""Malformed scenarios are rejected with one clear line.

Each ScenarioError names the file (and line), the key, what was expected
and a fix hint. The long "one of ..." lists come from the tables the loader
validates against, so adding an op or an MSR does not break these tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzinit.errors import ScenarioError
from fuzzinit.model.arch import CR4_BITS, FEATURES, MSRS
from fuzzinit.scenario.load import load
from fuzzinit.scenario.ops import OP_HELP

# Line numbers below refer to this text: [[cpu]] 0 is on line 6-7,
# [[cpu]] 1 on lines 8-9, and anything appended starts on line 10.
BASE = """\
[scenario]
name = "t"
[platform]
guest = "sev-es"
features = ["fred"]
[[cpu]]
program = ["start 1"]
[[cpu]]
program = ["cr4_init", "online"]
"""

CPU0 = '["start 1"]'
CPU1 = '["cr4_init", "online"]'
CR4_SORTED = ", ".join(sorted(CR4_BITS))
CR4_LISTED = ", ".join(CR4_BITS)
MSR_LIST = ", ".join(MSRS)
TABLES = ("include, scenario, platform, kernel, memory, routines, overrides,"
          " cpu, orderings")
OUTCOMES = ("ok, warn, triple_fault, guest_terminated, hang, unhandled,"
            " never_online, pin_cleared, reset")
CYCLE_HINT = ("expected constraints that some ordering satisfies; fix:"
              " remove or reverse one of the 'before' pairs (or a"
              " start/wait_online) on that cycle")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str) -> tuple[str, str]:
    """Load `text`; return (message, path) of the ScenarioError it raises."""
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message, "a ScenarioError is one line"
    assert message.startswith(str(path)), "it names the file first"
    return message, str(path)


def test_base_scenario_loads(tmp_path: Path) -> None:
    sc = load(_write(tmp_path, BASE))
    assert sc.name == "t"
    assert sc.ncpu == 2
    assert sc.guest == "sev-es"


CASES: list[tuple[str, str, int | None, str]] = [
    ("bad_toml", BASE.replace('name = "t"', 'name = "t'), 2,
     "invalid TOML: Illegal character '\\n'; expected TOML syntax"
     " (https://toml.io); fix: check quotes, brackets and commas on that"
     " line"),
    ("unknown_table", BASE + "[kernal]\npinned_cr4 = []\n", 10,
     f"kernal: unknown table; expected one of {TABLES}; fix: remove it or"
     " fix its spelling"),
    ("unknown_key", BASE.replace('name = "t"', 'name = "t"\nexpct = "ok"'), 3,
     "scenario.expct: unknown key; expected one of name, title, source,"
     " expect, fail_on, notes, category, kernel, fixed_in, accepts; fix:"
     " remove it or fix its spelling"),
    ("unknown_op", BASE.replace(CPU1, '["cr4_inti", "online"]'), 9,
     f"cpu[1].program[0]: unknown op 'cr4_inti'; expected {OP_HELP}; fix:"
     " did you mean 'cr4_init'?"),
    ("unknown_cr4_bit_op", BASE.replace(CPU1, '["cr4_set fredd", "online"]'),
     9, f"cpu[1].program[0]: unknown CR4 bit 'fredd'; expected one of"
     f" {CR4_SORTED}, or bitN; fix: did you mean 'fred'?"),
    ("cr4_bit_number_out_of_range",
     BASE.replace(CPU1, '["mov_cr4 +bit64", "online"]'), 9,
     "cpu[1].program[0]: CR4 'bit64' is out of range; expected bit0 to"
     " bit63; fix: check the number for a typo"),
    ("unknown_cr4_bit_pinned", BASE + '[kernel]\npinned_cr4 = ["smepp"]\n',
     11, f"kernel.pinned_cr4: unknown CR4 bit 'smepp'; expected one of"
     f" {CR4_LISTED}; fix: use the lower-case SDM name"),
    ("unknown_msr_op",
     BASE.replace(CPU1, '["wrmsr FRED_CONFG entry", "online"]'), 9,
     f"cpu[1].program[0]: unknown MSR 'FRED_CONFG'; expected one of"
     f" {MSR_LIST}, or a number; fix: did you mean 'FRED_CONFIG'?"),
    ("accepts_overlaps_fail_on",
     BASE.replace('name = "t"', 'name = "t"\naccepts = ["triple_fault"]'), 3,
     "scenario.accepts: outcome 'triple_fault'; expected failing outcomes"
     " not in fail_on: the ones this code ends in by design; fix: say why"
     ' in the notes, e.g. accepts = ["guest_terminated"] for a guest that'
     " asks to be ended"),
    ("unknown_absent_msr",
     BASE.replace('["fred"]', '["fred"]\nabsent_msrs = ["0x1d4", "AMD_SEV"]'),
     6, f"platform.absent_msrs: unknown MSR 'AMD_SEV'; expected one of"
     f" {MSR_LIST}, or a number; fix: did you mean 'AMD64_SEV'?"),
    ("absent_msr_out_of_range",
     BASE.replace('["fred"]', '["fred"]\nmicrocode_msrs = ["0x100000000"]'),
     6, "platform.microcode_msrs: MSR 0x100000000 is out of range; expected"
     " 0 to 0xffffffff; fix: check the number for a typo"),
    ("unknown_msr_intercepted",
     BASE.replace('["fred"]', '["fred"]\nintercepted_msrs = ["APIC_BAS"]'),
     6, f"platform.intercepted_msrs: unknown MSR 'APIC_BAS'; expected one of"
     f" {MSR_LIST}; fix: use the names of the README's MSR table"),
    ("unknown_feature", BASE.replace('["fred"]', '["fred", "smepp"]'), 5,
     f"platform.features: unknown feature 'smepp'; expected some of"
     f" {', '.join(FEATURES)}; fix: use the Linux cpufeature name"),
    ("unknown_guest", BASE.replace('"sev-es"', '"sev"'), 4,
     "platform.guest: unknown platform 'sev'; expected one of bare, sev-es,"
     " sev-snp, tdx; fix: use bare for bare metal"),
    ("start_missing_cpu", BASE.replace(CPU0, '["start 1", "start 2"]'), 7,
     "cpu[0].program[1]: start 2: there is no cpu 2; expected a CPU number"
     " from 0 to 1; fix: add a [[cpu]] table for it or fix the number"),
    ("cpu_never_started", BASE + '[[cpu]]\nprogram = ["online"]\n', 10,
     "cpu[2]: cpu 2 is never started; expected a 'start 2' in another CPU's"
     ' program; fix: add "start 2" to the boot CPU\'s program'),
    ("cpu_started_twice", BASE.replace(CPU0, '["start 1", "start 1"]'), 7,
     "cpu[0].program: 'start 1' starts cpu 1 while it runs; expected one"
     " start per application processor, and one more after each 'offline'"
     " in its program; fix: remove the extra start, or take the CPU offline"
     " first"),
    ("offline_boot_cpu", BASE.replace(CPU0, '["start 1", "offline hlt"]'), 7,
     "cpu[0].program: 'offline' on cpu 0; expected offline on an application"
     " processor (the model restarts a CPU with another CPU's 'start N');"
     " fix: take an AP offline, or model the boot CPU's own reset path"
     " (reboot) with its ops"),
    ("init_never_offline", BASE.replace(CPU0, '["start 1", "send_init 1"]'),
     7, "cpu[0].program: 'send_init 1': cpu 1 never goes offline; expected"
     " 'send_init N' for another CPU that an 'offline hlt|mwait' or a"
     " 'stop_this_cpu' parks; fix: add 'offline hlt' to cpu 1's program, or"
     " remove the op"),
    ("wait_offline_never_offline",
     BASE.replace(CPU0, '["start 1", "wait_offline 1"]'), 7,
     "cpu[0].program: 'wait_offline 1': cpu 1 never goes offline; expected"
     " 'wait_offline N' for another CPU that an 'offline hlt|mwait' or a"
     " 'stop_this_cpu' parks; fix: add 'offline hlt' to cpu 1's program, or"
     " remove the op"),
    ("lives_never_finish",
     BASE.replace(CPU0, '["start 1", "wait_offline 1", "wait_online 1"]')
     .replace(CPU1, '["online", "offline hlt", "nop"]'), 6,
     "cpu: the programs can never all finish: no ordering runs every"
     " CPU's program to its end; expected a start after each 'offline'"
     " whose CPU has ops left, and waits that can still be met; fix: check"
     " the order of start, offline, wait_online, wait_offline and the"
     " `before` pairs"),
    ("start_boot_cpu", BASE.replace(CPU0, '["start 0", "start 1"]'), 7,
     "cpu[0].program: 'start 0': cpu 0 is the boot CPU and runs from the"
     " start; expected start N for an application processor, N >= 1; fix:"
     " remove 'start 0'"),
    ("wait_online_without_online",
     BASE.replace(CPU0, '["start 1", "wait_online 1"]')
     .replace(CPU1, '["cr4_init"]'), 7,
     "cpu[0].program: 'wait_online 1' waits for cpu 1, whose program has no"
     " 'online'; expected an 'online' op in that CPU's program; fix: add"
     " \"online\" to cpu 1's program"),
    ("routine_calls_itself",
     '[routines]\ninit_ap = ["cr4_init", "init_ap"]\n'
     + BASE.replace(CPU1, '["init_ap", "online"]'), 2,
     "routines.init_ap: routine calls itself: init_ap -> init_ap; expected"
     " routines that end; fix: remove the recursive call"),
    ("routines_call_each_other",
     '[routines]\na = ["printk", "b"]\nb = ["nop", "a"]\n'
     + BASE.replace(CPU1, '["a", "online"]'), 2,
     "routines.a: routine calls itself: a -> b -> a; expected routines that"
     " end; fix: remove the recursive call"),
    ("unknown_trigger_kind", BASE + "[orderings]\ntriggers = { smi = 1 }\n",
     11, "orderings.triggers: unknown trigger kind 'smi'; expected"
     " one of \"rdmsr MSR\", printk, \"cpuid [LEAF]\", port_io, mmio,"
     " nmi, pf,"
     ' clear_online, "cr4_gadget -BIT", "ud2 [warn|bug|cfi]", mce, int3,'
     ' div0, "int N", "raise V", "rdmsr_safe MSR"; fix: see'
     ' the'
     " README's trigger table"),
    ("trigger_count", BASE + '[orderings]\ntriggers = { nmi = 99 }\n', 11,
     "orderings.triggers: count 99 for nmi; expected an integer from 0 to"
     " 16; fix: write e.g. nmi = 1"),
    ("trigger_window_point",
     BASE + '[orderings]\n[[orderings.trigger]]\nkind = "printk"\n'
     'cpus = [1]\nafter = "setup_ghcb"\n', 14,
     "orderings.trigger: window point 'setup_ghcb' is not in cpu 1's"
     " program; expected an op or routine of that CPU's program, or"
     " start/end/online; fix: copy the op text exactly"),
    ("entry_cr4_fred", BASE + '[kernel]\nentry_cr4 = ["pae", "fred"]\n', 11,
     "kernel.entry_cr4: has fred (CR4 bit above 31); expected CR4 bits 0-31: the"
     " trampoline passes CR4 as a u32; fix: remove it; set it from the"
     " CPU's program instead"),
    ("mode_unknown", BASE + '[orderings]\nmode = "shuffle"\n', 11,
     "orderings.mode: unknown mode 'shuffle'; expected \"interleave\" or"
     ' "permute"; fix: interleave keeps each CPU\'s program order, permute'
     " also reorders ops between sync points"),
    ("unknown_expect",
     BASE.replace('name = "t"', 'name = "t"\nexpect = "tripple_fault"'), 3,
     f"scenario.expect: unknown outcome 'tripple_fault'; expected one of"
     f" {OUTCOMES}; fix: use an outcome of SEMANTICS section 7"),
    ("before_unknown_cpu",
     BASE + '[orderings]\nbefore = [["cpu9: x", "cpu0: start 1"]]\n', 11,
     "orderings.before: 'cpu9: x': no such cpu; expected cpu0 to cpu1; fix:"
     " fix the number"),
    ("missing_name", BASE.replace('name = "t"', 'title = "x"'), None,
     'scenario.name: is missing; expected a string; fix: add name = "..."'
     " under [scenario]"),
]


@pytest.mark.parametrize(("text", "line", "rest"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_message(tmp_path: Path, text: str, line: int | None,
                       rest: str) -> None:
    message, path = _error(tmp_path, text)
    place = path if line is None else f"{path}:{line}"
    assert message == f"{place}: {rest}"


def test_error_fields(tmp_path: Path) -> None:
    """The parts of the message are also attributes, for tools."""
    path = _write(tmp_path, BASE.replace(CPU1, '["cr4_inti", "online"]'))
    with pytest.raises(ScenarioError) as info:
        load(path)
    err = info.value
    assert (err.path, err.where, err.line) == (str(path),
                                               "cpu[1].program[0]", 9)
    assert err.problem == "unknown op 'cr4_inti'"
    assert err.hint == "did you mean 'cr4_init'?"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ScenarioError) as info:
        load(path)
    assert str(info.value) == (
        f"{path}: cannot read: No such file or directory; expected a"
        " readable .toml file; fix: check the path (fuzzinit models lists"
        " them)")


BEFORE_CYCLE = (BASE.replace(CPU0, '["start 1", "printk"]')
                + "[orderings]\n"
                'before = [["cpu1: online", "cpu0: start 1"]]\n')


def test_before_cycle_names_the_ops(tmp_path: Path) -> None:
    message, path = _error(tmp_path, BEFORE_CYCLE)
    assert message.startswith(
        f"{path}:11: orderings: ordering constraints form a cycle: "
        "cpu1: cr4_init -> cpu1: online -> cpu0: start 1")
    assert "cycle" in message
    for op in ("cpu0: start 1", "cpu1: cr4_init", "cpu1: online"):
        assert op in message
    assert "cpu0: printk" not in message  # not on the cycle
    assert message.endswith(CYCLE_HINT)


def test_before_cycle_closes_on_its_first_op(tmp_path: Path) -> None:
    message, path = _error(tmp_path, BEFORE_CYCLE)
    assert message == (
        f"{path}:11: orderings: ordering constraints form a cycle: "
        "cpu1: cr4_init -> cpu1: online -> cpu0: start 1 -> cpu1: cr4_init;"
        f" {CYCLE_HINT}")


def test_before_within_one_program_is_a_cycle(tmp_path: Path) -> None:
    message, path = _error(
        tmp_path,
        BASE + '[orderings]\nbefore = [["cpu1: online", "cpu1: cr4_init"]]\n')
    assert message.startswith(
        f"{path}:11: orderings: ordering constraints form a cycle: "
        "cpu1: online -> cpu1: cr4_init")
    assert message.endswith(CYCLE_HINT)


def test_second_start_on_another_cpu_points_at_it(tmp_path: Path) -> None:
    message, path = _error(
        tmp_path, BASE.replace(CPU1, '["cr4_init", "start 1", "online"]'))
    assert message == (
        f"{path}:9: cpu[1].program: 'start 1' starts cpu 1 while it runs;"
        " expected one start per application processor, and one more after"
        " each 'offline' in its program; fix: remove the extra start, or"
        " take the CPU offline first")


def test_recursive_routine_points_at_its_definition(tmp_path: Path) -> None:
    message, path = _error(
        tmp_path, BASE.replace(CPU1, '["init_ap", "online"]')
        + '[routines]\ninit_ap = ["cr4_init", "init_ap"]\n')
    assert message == (
        f"{path}:11: routines.init_ap: routine calls itself: init_ap ->"
        " init_ap; expected routines that end; fix: remove the recursive"
        " call")


def test_cpu_that_starts_itself(tmp_path: Path) -> None:
    message, path = _error(
        tmp_path, BASE.replace(CPU0, '["printk"]')
        .replace(CPU1, '["start 1", "online"]'))
    text = message.removeprefix(path)
    assert text.startswith(":9: "), "it names the line of 'start 1'"
    assert "itself" in text or "never started" in text


@pytest.mark.parametrize(("text", "line", "rest"), [
    (BASE.replace('name = "t"', 'name = "../../escape"'), 2,
     "scenario.name: '../../escape' cannot name report and trace files;"
     " expected letters, digits, '.', '_' and '-', not starting with '.';"
     ' fix: e.g. name = "fred-pinned-sev-es-ap"'),
    (BASE.replace('name = "t"', 'name = "a\\u0000b"'), 2,
     "scenario.name: 'a\\x00b' cannot name report and trace files;"
     " expected letters, digits, '.', '_' and '-', not starting with '.';"
     ' fix: e.g. name = "fred-pinned-sev-es-ap"'),
    (BASE + '[orderings]\ntriggers = { "" = 1 }\n', 11,
     "orderings.triggers: unknown trigger kind ''; expected"
     " one of \"rdmsr MSR\", printk, \"cpuid [LEAF]\", port_io, mmio,"
     " nmi, pf,"
     ' clear_online, "cr4_gadget -BIT", "ud2 [warn|bug|cfi]", mce, int3,'
     ' div0, "int N", "raise V", "rdmsr_safe MSR"; fix: see'
     ' the'
     " README's trigger table"),
    (BASE.replace(CPU1, '["printk", "cr4_init", "printk", "online"]')
     + '[[orderings.trigger]]\nkind = "nmi"\ncpus = [1]\nafter = "printk"\n',
     13, "orderings.trigger: 'printk' occurs 2 times in cpu 1's program;"
     " expected a point that names one place; fix: name the routine around"
     " the one you mean instead"),
    (BASE + '[routines]\nunused = ["frobnicate 7"]\n', 11,
     "routines.unused[0]: unknown op 'frobnicate'; expected " + OP_HELP
     + "; fix: see the README's tables"),
    (BASE + '[[orderings.trigger]]\nkind = "nmi"\nafter = "online"\n'
     'before = "cr4_init"\n', 11,
     "orderings.trigger: the window of nmi (after 'online', before"
     " 'cr4_init') is empty on every CPU; expected an 'after' point before"
     " the 'before' point in some CPU's program; fix: fix after/before"),
], ids=["name-escapes", "name-nul", "empty-trigger-kind", "ambiguous-point",
        "unused-routine", "empty-window-everywhere"])
def test_more_rejections(tmp_path: Path, text: str, line: int,
                         rest: str) -> None:
    message, path = _error(tmp_path, text)
    assert message == f"{path}:{line}: {rest}"
