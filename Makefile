# Two commands do all the set-up on a fresh clone: `make test` and `make bench`.
# The virtual environment is (re)installed only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is pinned here, not in pyproject.toml, so users can bring their own build.
TORCH ?= torch==2.14.1 torchvision==0.29.1
OUT ?= runs/latest
THREADS ?= 2

.PHONY: test bench bench-smoke report benchmark clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --benchmark-skip

# The report is written even when a cell failed (its row says why); the exit status is the run's.
bench: $(STAMP)
	$(PY) -m bench run --preset quick --out $(OUT) --device auto --threads $(THREADS) --resume; \
	status=$$?; if [ -f $(OUT)/metrics.parquet ]; then $(PY) -m bench report $(OUT) || exit 1; fi; exit $$status

bench-smoke: $(STAMP)
	$(PY) -m bench run --preset smoke --out runs/smoke --device cpu --threads $(THREADS) --resume; \
	status=$$?; if [ -f runs/smoke/metrics.parquet ]; then $(PY) -m bench report runs/smoke || exit 1; fi; exit $$status

report: $(STAMP)
	$(PY) -m bench report $(OUT)

benchmark: $(STAMP)
	$(PY) -m pytest --benchmark-only --benchmark-autosave --benchmark-save-data

clean:
	rm -rf $(VENV) runs .pytest_cache
