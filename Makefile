# cachelab: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
QUICK  ?=

.PHONY: setup test bench perf profile perf-real lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/cachelab bench $(if $(QUICK),--quick)
	$(BIN)/python bench/redis_vs_memcached.py $(if $(QUICK),--quick)

perf: setup
	$(BIN)/python bench/sim_throughput.py $(if $(QUICK),--quick)

profile: setup
	$(BIN)/python bench/profile.py $(if $(QUICK),--quick)

.PHONY: profile-real
profile-real: setup
	$(BIN)/python bench/real_profile.py --profile $(if $(QUICK),--quick)

perf-real: setup
	$(BIN)/python bench/real_throughput.py $(if $(QUICK),--quick)
	$(BIN)/python bench/memcached_throughput.py $(if $(QUICK),--quick)

.PHONY: fidelity
fidelity: setup
	$(BIN)/cachelab fidelity $(if $(QUICK),--quick)

.PHONY: capacity-grid
capacity-grid: setup
	$(BIN)/python bench/capacity_grid.py $(if $(QUICK),--quick)

.PHONY: perf-sweep
perf-sweep: setup
	$(BIN)/python bench/sweep_speed.py $(if $(QUICK),--skip-bench --rounds 1)

.PHONY: perf-trace
perf-trace: setup
	$(BIN)/python bench/trace_read.py $(if $(QUICK),--quick)

lint: setup
	$(BIN)/ruff check lab tests bench
	$(BIN)/ruff format --check lab tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) results build *.egg-info .mypy_cache .ruff_cache
