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

bench: $(STAMP)
	$(PY) -m bench run --preset quick --out $(OUT) --device auto --threads $(THREADS) --resume
	$(PY) -m bench report $(OUT)

bench-smoke: $(STAMP)
	$(PY) -m bench run --preset smoke --out runs/smoke --device cpu --resume
	$(PY) -m bench report runs/smoke

report: $(STAMP)
	$(PY) -m bench report $(OUT)

benchmark: $(STAMP)
	$(PY) -m pytest --benchmark-only

clean:
	rm -rf $(VENV) runs .pytest_cache
