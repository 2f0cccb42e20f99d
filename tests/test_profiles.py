"""Kernel profiles: `include`, `[overrides]`, the installed library, and
the library's scenarios rewritten on profiles keeping their call order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fuzzinit.errors import ScenarioError
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.scenario.profiles import LIBRARY, library_profiles
from fuzzinit.search import search

ROOT = Path(__file__).parent.parent
SEED = LIBRARY / "fred-pinned-sev-es-ap.toml"
FLAT = ROOT / "tests/scenarios"

SMALL = """\
include = ["linux/v6.12"]
[scenario]
name = "small"
[platform]
guest = "sev-es"
features = ["fred", "fsgsbase"]
[[cpu]]
program = ["startup_64", "x86_64_start_kernel", "start_kernel"]
[[cpu]]
program = ["secondary_startup_64", "start_secondary"]
"""


def programs(sc: Scenario) -> list[list[str]]:
    return [[sc.op_text(op) for op in prog] for prog in sc.programs]


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def error(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        load(path)
    return str(info.value)


@pytest.mark.parametrize("name", ["fred-pinned-sev-es-ap",
                                  "upstream-fix-sev-es"])
def test_profile_scenarios_keep_the_hand_written_call_order(name: str) -> None:
    """The library file on a profile and the file as it was written before
    profiles give the same programs, kernel and triggers."""
    new, old = load(LIBRARY / f"{name}.toml"), load(FLAT / f"{name}-flat.toml")
    assert programs(new) == programs(old)
    assert new.machine_args == old.machine_args
    assert [(t.kind, t.cpu, t.count, t.after, t.before)
            for t in new.triggers] == [(t.kind, t.cpu, t.count, t.after,
                                        t.before) for t in old.triggers]


def test_seed_scenario_is_short_and_keeps_its_verdict_and_core() -> None:
    assert len(SEED.read_text(encoding="utf-8").splitlines()) <= 25
    sc = load(SEED)
    found = search(sc, 300, 1).finding
    assert found is not None and found.result.name == "triple_fault"
    assert [(e.cpu, sc.op_text(e.op)) for e in found.core] == [
        (0, "cr4_set fred"), (0, "setup_cr_pinning"), (0, "start 1"),
        (1, "cr4_init"), (1, "printk")]
    assert [sc.routine_of[e.cpu][e.slot] for e in found.core] == [
        "start_kernel/setup_arch/cpu_init_fred_exceptions",
        "start_kernel/arch_cpu_finalize_init/identify_boot_cpu",
        "start_kernel/smp_init", "start_secondary",
        "start_secondary/cpu_init_exception_handling/"
        "cpu_init_fred_exceptions"]


def test_readme_shows_the_seed_scenario_whole() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"```toml\n{SEED.read_text(encoding='utf-8')}```" in readme


def test_a_scenario_in_any_folder_includes_a_library_profile(
        tmp_path: Path) -> None:
    sc = load(write(tmp_path, "s.toml", SMALL))
    assert programs(sc)[1][:3] == ["setup_ghcb", "lidt bringup_ghcb",
                                   "cr4_init"]
    assert library_profiles() == ["linux/v6.12", "linux/v7.0"]


def test_a_profile_beside_the_scenario_comes_first(tmp_path: Path) -> None:
    shutil.copytree(LIBRARY / "linux", tmp_path / "linux")
    cpu = tmp_path / "linux/v6.12/cpu.toml"
    cpu.write_text(cpu.read_text().replace(
        'cpu_init = ["cr4_clear vme pvi tsd de", "rdmsr APIC_BASE"]',
        'cpu_init = ["nop local copy"]'))
    sc = load(write(tmp_path, "s.toml", SMALL))
    assert "nop local copy" in programs(sc)[1]


def test_the_scenario_hash_covers_its_profiles(tmp_path: Path) -> None:
    shutil.copytree(LIBRARY / "linux", tmp_path / "linux")
    path = write(tmp_path, "s.toml", SMALL)
    before = load(path).sha256
    boot = tmp_path / "linux/v6.12/boot.toml"
    boot.write_text(boot.read_text() + "# a comment\n")
    assert load(path).sha256 != before


def test_overrides_replace_a_profile_routine(tmp_path: Path) -> None:
    sc = load(write(tmp_path, "s.toml", SMALL
                    + '[overrides]\ncpu_init = ["rdmsr APIC_BASE"]\n'))
    assert "cr4_clear vme pvi tsd de" not in programs(sc)[1]
    assert "rdmsr APIC_BASE" in programs(sc)[1]


def test_v7_0_is_v6_12_with_the_three_fixes() -> None:
    fixed = load(LIBRARY / "upstream-fix-sev-es.toml")
    args = fixed.machine_args
    assert args["fred_vc_dispatch"] and args["boot_ghcb_fallback"]
    ap = programs(fixed)[1]
    assert ap[ap.index("ltr") + 1:ap.index("ltr") + 3] == [
        "setup_ghcb", "cr4_set fsgsbase"]


def test_missing_profile(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml", SMALL.replace("v6.12", "v9.9"))
    assert error(path) == (
        f"{path}:1: include: 'linux/v9.9': no profile folder or .toml file"
        " of that name; expected a path relative to this file, or a library"
        " profile (linux/v6.12, linux/v7.0); fix: check the spelling;"
        " fuzzinit models lists the library")


def test_include_cycle(tmp_path: Path) -> None:
    write(tmp_path, "a.toml", 'include = ["b.toml"]\n')
    write(tmp_path, "b.toml", 'include = ["a"]\n')
    path = write(tmp_path, "s.toml", 'include = ["a.toml"]\n'
                 + SMALL.split("\n", 1)[1])
    assert error(path) == (
        f"{tmp_path}/b.toml:1: include: include cycle: s.toml -> a.toml ->"
        " b.toml -> a.toml; expected includes that end; fix: remove one"
        " include of the cycle")


def test_override_of_a_routine_no_profile_defines(tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml",
                 SMALL + '[overrides]\ncpu_inti = ["nop"]\n')
    message = error(path)
    assert message.startswith(
        f"{path}:12: overrides.cpu_inti: overrides a routine that no"
        " included profile defines; expected one of: arch_cpu_finalize_init,")
    assert message.endswith("; fix: fix the name, or define it under"
                            " [routines]")


def test_redefining_a_profile_routine_must_say_override(
        tmp_path: Path) -> None:
    path = write(tmp_path, "s.toml",
                 SMALL + '[routines]\ncpu_init = ["nop"]\n')
    assert error(path) == (
        f"{path}:12: routines.cpu_init: is already defined by"
        f" {LIBRARY}/linux/v6.12/cpu.toml; expected a new routine name, or"
        " the routine under [overrides]; fix: move cpu_init to [overrides]"
        " to replace the profile's")


def test_a_profile_holds_no_cpus(tmp_path: Path) -> None:
    write(tmp_path, "p.toml", '[[cpu]]\nprogram = ["nop"]\n')
    path = write(tmp_path, "s.toml", 'include = ["p"]\n'
                 + SMALL.split("\n", 1)[1])
    assert error(path) == (
        f"{tmp_path}/p.toml:1: cpu: not allowed in a profile; expected one"
        " of include, profile, routines, overrides, kernel; fix: a profile"
        " holds routines and kernel defaults; CPUs, platform and orderings"
        " belong in the scenario")


def test_an_error_in_a_profile_routine_names_the_profile(
        tmp_path: Path) -> None:
    write(tmp_path, "p.toml", '[routines]\n\nbroken = ["cr4_set warp"]\n')
    path = write(tmp_path, "s.toml", 'include = ["linux/v6.12", "p"]\n'
                 + SMALL.split("\n", 1)[1].replace(
                     '"start_secondary"]', '"start_secondary", "broken"]'))
    assert error(path).startswith(
        f"{tmp_path}/p.toml:3: routines.broken[0]: unknown CR4 bit 'warp'")


def test_profile_kernel_values_are_checked_where_they_stand(
        tmp_path: Path) -> None:
    write(tmp_path, "p.toml", '[kernel]\npinning = "sometimes"\n')
    path = write(tmp_path, "s.toml", 'include = ["p"]\n'
                 + SMALL.split("\n", 1)[1])
    assert error(path).startswith(
        f"{tmp_path}/p.toml:2: kernel.pinning: unknown pinning gate"
        " 'sometimes'")


def test_models_with_no_folder_lists_the_installed_library(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from fuzzinit.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [Path(r["path"]).parent for r in rows] == [LIBRARY] * len(rows)
    assert {r["name"] for r in rows} >= {"fred-pinned-sev-es-ap",
                                         "upstream-fix-sev-es"}
    assert len(rows) == len(list(LIBRARY.glob("*.toml")))


def test_models_on_a_profile_folder_lists_no_scenario(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from fuzzinit.cli import main

    shutil.copytree(LIBRARY / "linux/v6.12", tmp_path / "v6.12")
    monkeypatch.chdir(tmp_path)
    assert main(["models", "v6.12"]) == 0
    assert capsys.readouterr().out == (
        "v6.12: no scenario files (3 kernel profile files)\n")
