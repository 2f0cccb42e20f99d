"""pytest plugin (entry point pytest11): --fuzzinit-profile,
--fuzzinit-min-rule-coverage and a header line naming the active profile.
See fuzzinit.testing."""

from __future__ import annotations

import os

import pytest

from fuzzinit import model_build, testing


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("fuzzinit")
    group.addoption("--fuzzinit-profile", choices=sorted(testing.PROFILES),
                    default=None, help="budget of fuzzinit searches: dev"
                    " (default), ci (deterministic) or nightly; also"
                    " FUZZINIT_PROFILE")
    group.addoption("--fuzzinit-min-rule-coverage", type=float, default=None,
                    metavar="FRACTION", help="measure every"
                    " assert_no_failing_ordering search and fail it when it"
                    " reached less than FRACTION of the model's rules or"
                    " left a trigger unfired (its min_rule_coverage)")


def pytest_configure(config: pytest.Config) -> None:
    name = config.getoption("--fuzzinit-profile")
    if name:
        testing.set_profile(name)
    fraction = config.getoption("--fuzzinit-min-rule-coverage")
    if fraction is not None and model_build.build() == "compiled":
        raise pytest.UsageError(
            "--fuzzinit-min-rule-coverage measures the interpreted model;"
            " this run imported the compiled one: run pytest with"
            " FUZZINIT_MODEL=interpreted")
    try:
        testing.set_min_rule_coverage(fraction)
    except ValueError as exc:
        raise pytest.UsageError(f"--fuzzinit-min-rule-coverage: {exc}") \
            from exc
    env = os.environ.get("FUZZINIT_PROFILE")
    if env and env not in testing.PROFILES:
        raise pytest.UsageError(
            f"FUZZINIT_PROFILE={env!r}: unknown profile; expected one of"
            f" {', '.join(testing.PROFILES)}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"fuzzinit profile: {testing.active_profile()}"
