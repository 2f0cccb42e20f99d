# Two commands are the whole set-up on a fresh machine:
#   make demo   - create .venv, install, find the pinned-FRED triple fault
#   make test   - create .venv, install, run lint, types and the tests
#                 under branch coverage, with a floor
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO := models/fred-pinned-sev-es-ap.toml

.PHONY: demo test lint bench docs clean

# The install compiles the model with mypyc (setup.py) when a C compiler is
# present; an edited model is rebuilt here (until then it runs interpreted).
$(STAMP): pyproject.toml setup.py $(wildcard fuzzinit/model/*.py) fuzzinit/orderings/schedule.py $(wildcard fuzzinit/explore/*.py)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/fuzzinit --version
	touch $(STAMP)

# `fuzzinit run` exits 1 when it finds a failing ordering: that is the
# demo's success.
demo: $(STAMP)
	@$(BIN)/fuzzinit run $(DEMO) --seed 1; status=$$?; \
	if [ $$status -eq 1 ]; then echo "demo: found the triple fault (report above)"; \
	else echo "demo: expected a failing ordering, fuzzinit exited $$status"; exit 1; fi

lint: $(STAMP)
	$(BIN)/ruff check fuzzinit tests benchmarks fuzz tools setup.py
	$(BIN)/mypy fuzzinit tests benchmarks tools setup.py

# The tests run under coverage.py (branch coverage of fuzzinit/, the CLI's
# subprocesses included: pyproject.toml [tool.coverage]); the summary lists
# the files not fully covered, and tools/coverage_floor.py fails the build
# below the branch floors. Coverage traces Python, so the suite runs the
# interpreted model; tests/test_model_build.py checks the compiled build
# the install made and that the two agree.
test: lint
	rm -f .coverage .coverage.*
	FUZZINIT_MODEL=interpreted $(BIN)/coverage run -m pytest -q -rs
	$(BIN)/coverage combine -q
	$(BIN)/coverage report
	$(BIN)/python tools/coverage_floor.py

# The README's op table comes from the op definitions (fuzzinit/model/ops_*.py).
docs: $(STAMP)
	$(BIN)/python tools/ops_table.py

# Every figure of "Performance" in one run: a table on stderr, one JSON
# object on stdout (benchmarks/run_all.py --quick: under a minute).
bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) build fuzzinit/*.so fuzzinit/*/*.so fuzzinit/_compiled.json .hypothesis .mypy_cache .ruff_cache .pytest_cache .coverage .coverage.*
