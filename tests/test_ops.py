"""Every op's own examples (fuzzinit/model/ops_*.py), run exactly, and the
checks that keep an op defined in one place: grammar, docs, Promela or a
refusal, tests."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fuzzinit.model import machine as mc
from fuzzinit.model.op import Example, Op
from fuzzinit.model.outcome import NAMES
from fuzzinit.model.run import run
from fuzzinit.model.vocabulary import OPS, markdown_table, parse_op
from fuzzinit.scenario.load import Scenario, load

README = (Path(__file__).parent.parent / "README.md").read_text()
CASES = [(op, i, ex) for op in OPS for i, ex in enumerate(op.examples)]


def example_scenario(tmp_path: Path, ex: Example) -> tuple[Scenario,
                                                          list[int],
                                                          list[str]]:
    """The example as a scenario whose programs its events spell, and the
    ordering (cpus, op texts) it names."""
    cpus: list[int] = []
    texts: list[str] = []
    for event in ex.events:
        match = re.fullmatch(r"cpu(\d+): (.+)", event)
        cpus.append(int(match.group(1)) if match else 0)
        texts.append(match.group(2) if match else event)
    programs: list[list[str]] = [[] for _ in range(max(cpus) + 1)]
    for cpu, text in zip(cpus, texts, strict=True):
        programs[cpu].append(text)
    lines = ["[scenario]", 'name = "example"',
             'fail_on = ["triple_fault", "guest_terminated", "hang",'
             ' "unhandled", "never_online", "warn"]',
             "[platform]", f'guest = "{ex.guest}"',
             "features = [" + ", ".join(f'"{f}"' for f in ex.features) + "]",
             'console = "8250"']
    lines += [f"{key} = {value}" for key, value in ex.platform]
    lines.append("[kernel]")
    lines += [f"{key} = {value}" for key, value in ex.kernel]
    if ex.memory:
        lines += ["[memory]", f'cr3 = "{ex.memory[0][0]}"',
                  "[memory.tables]"]
        lines += [f"{table} = [" + ", ".join(
            f'"{e}"' for e in entries.split()) + "]"
            for table, entries in ex.memory]
    for program in programs:
        lines += ["[[cpu]]", "program = [" + ", ".join(
            f'"{t}"' for t in program) + "]"]
    path = tmp_path / "example.toml"
    path.write_text("\n".join(lines) + "\n")
    return load(path), cpus, texts


@pytest.mark.parametrize(("op", "index", "ex"), CASES,
                         ids=[f"{op.name}-{i}" for op, i, _ in CASES])
def test_example(tmp_path: Path, op: Op, index: int, ex: Example) -> None:
    sc, cpus, texts = example_scenario(tmp_path, ex)
    assert op.name in {t.split()[0] for t in texts}
    result = run(sc.machine, cpus, [sc.op_index[" ".join(t.split())]
                                    for t in texts])
    assert (NAMES[result.outcome], tuple(result.chain),
            tuple(result.handled)) == (ex.outcome, ex.chain, ex.handled)


def test_every_op_has_docs_a_source_and_an_example() -> None:
    for op in OPS:
        assert op.doc and op.source and op.examples, op.name
        assert op.syntax.split()[0] == op.name


def test_every_translated_op_has_lockstep_samples_that_parse() -> None:
    """Promela: an op is either translated (and then sampled by the SPIN
    lockstep test in test_promela.py) or refused with a reason."""
    sync = {"start", "online", "wait_online", "nop"}
    for op in OPS:
        if op.promela:
            assert not op.samples, op.name
            continue
        assert op.samples or op.name in sync, op.name
        for text in op.samples:
            kind, a, b = parse_op(text, 2)
            assert kind == op.kind, text
            assert op.refusal(a, b) == "", text


def test_the_readme_op_table_is_generated_from_the_ops() -> None:
    """`make docs` writes the table; this fails when an op changed and
    the README was not regenerated."""
    start = README.index("<!-- ops table")
    start = README.index("\n", start) + 1
    end = README.index("<!-- end ops table -->")
    assert README[start:end] == markdown_table()


def test_every_op_is_translated_or_refused_with_a_reason() -> None:
    """runtime.pml translates every op but the memory, ring-3 and life
    cycle ones, which the export refuses with the reason their definition
    gives."""
    memory = "page tables and regions ([memory]) are not in runtime.pml"
    user = "ring 3 and scheduling handlers are not in runtime.pml"
    life = "CPU offline, INIT and kernel images are not in runtime.pml"
    assert {op.name: op.promela for op in OPS if op.promela} == {
        "write_cr3": memory, "access": memory, "exit_to_user": user,
        "syscall": user, "preempt_event": user, "event_return": user,
        "offline": life, "send_init": life, "replace_image": life,
        "jump_image": life, "wait_offline": life, "kick_play_dead": life,
        "stop_this_cpu": life}


def test_export_refuses_an_op_without_a_promela_translation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An op whose definition gives a reason instead of a translation:
    export says it cannot, exit 2, one line naming the op, and writes
    nothing (run and explore still take the op)."""
    from fuzzinit.cli import main
    op = next(op for op in OPS if op.name == "mce")
    monkeypatch.setattr(op, "promela", "no machine-check rule (test)")
    example_scenario(tmp_path, op.examples[0])
    out = tmp_path / "out.pml"
    status = main(["export", "--promela", str(tmp_path / "example.toml"),
                   "-o", str(out)])
    captured = capsys.readouterr()
    assert (status, captured.out) == (2, "")
    assert captured.err == (
        f"fuzzinit: error: {tmp_path / 'example.toml'}: cannot export op"
        " 'mce': the Promela runtime has no translation of 'mce' (no"
        " machine-check rule (test)); fix: check this scenario with"
        " `fuzzinit explore` instead\n")
    assert not out.exists()


def test_life_knows_the_kinds_it_cannot_import() -> None:
    """life.py names the IDT and FRED_CONFIG loads by kind (the op modules
    import it): the numbers must be the ops' own."""
    from fuzzinit.model import life, ops_idt, ops_msr
    from fuzzinit.model.arch import MSR_FRED_CONFIG
    assert life.LIDT_KIND == ops_idt.LIDT
    assert life.WRMSR_KINDS == (ops_msr.WRMSR, ops_msr.WRMSR_SAFE)
    assert life.MSR_FRED_CONFIG == MSR_FRED_CONFIG


def test_the_machine_knows_which_ops_name_images() -> None:
    """machine.IMAGE_OPS switches image checks on (life.py): exactly the
    ops that name images."""
    from fuzzinit.model import ops_life
    assert mc.IMAGE_OPS == (ops_life.REPLACE_IMAGE, ops_life.JUMP_IMAGE)
