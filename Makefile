# Two commands do all the set-up on a fresh clone: `make test` and `make bench`.
# The virtual environment is (re)installed only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# torch is pinned here, not in pyproject.toml, so users can bring their own build.
TORCH ?= torch==2.14.1 torchvision==0.29.1
OUT ?= runs/latest
PEERS_OUT ?= runs/peers
THREADS ?= 2

.PHONY: test test-oldest-pandas bench bench-smoke bench-peers report benchmark gpu-wheels gpu-check clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider --benchmark-skip -n auto --dist loadfile --no-loadscope-reorder --durations=15 --pace-probe

# The report's tests again under the oldest pandas pyproject.toml allows (installed beside the venv's, into
# .oldest-pandas/): every run folder the tool can write must render under both. CI runs it after `make test`.
OLDEST_PANDAS ?= pandas==2.2.2
test-oldest-pandas: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --upgrade --target .oldest-pandas $(OLDEST_PANDAS) pytz
	PYTHONPATH=.oldest-pandas $(PY) -c "import pandas; print('pandas', pandas.__version__)"
	PYTHONPATH=.oldest-pandas $(PY) -m pytest -q -p no:cacheprovider tests/report/test_report_degenerate.py

# Run a sweep into folder $(1) with options $(2), resuming what it holds; then write its report, even when
# a cell failed (its row says why). The exit status is the run's.
define sweep_and_report
	$(PY) -m bench run --out $(1) --threads $(THREADS) --resume $(2); \
	status=$$?; if [ -f $(1)/metrics.parquet ]; then $(PY) -m bench report $(1) || exit 1; fi; exit $$status
endef

bench: $(STAMP)
	$(call sweep_and_report,$(OUT),--preset quick --device auto)

bench-smoke: $(STAMP)
	$(call sweep_and_report,runs/smoke,--preset smoke --device cpu)

bench-peers: $(STAMP)
	$(call sweep_and_report,$(PEERS_OUT),--preset peers)

report: $(STAMP)
	$(PY) -m bench report $(OUT)

benchmark: $(STAMP)
	$(PY) -m pytest --benchmark-only --benchmark-autosave --benchmark-save-data

# An offline GPU machine (docs/gpu.md): `make gpu-wheels` here, with the package registries, puts the wheels it lacks
# into .whl/ (GPU_HAVE: a file of what it has; GPU_EXTRA: e.g. torchvision==0.26.0 for torch 2.11); then, there,
# `make gpu-check` installs them beside its torch and runs the CUDA tests, benchmarks, the gpu preset and its report
# into gpu-check/ within GPU_CHECK_SECONDS. It uses that machine's python3, not a virtual environment.
GPU_PYTHON_VERSION ?= 3.12
GPU_HAVE ?=
GPU_EXTRA ?=
GPU_CHECK_SECONDS ?= 570
GPU_CHECK_OUT ?= gpu-check

gpu-wheels: $(STAMP)
	$(PY) scripts/gpu_wheels.py --out .whl --python-version $(GPU_PYTHON_VERSION) \
		$(if $(GPU_HAVE),--have $(GPU_HAVE)) $(foreach x,$(GPU_EXTRA),--extra $(x))

gpu-check:
	python3 scripts/gpu_check.py --out $(GPU_CHECK_OUT) --time-limit $(GPU_CHECK_SECONDS) --wheels .whl

clean:
	rm -rf $(VENV) runs .pytest_cache .oldest-pandas
