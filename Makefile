# SparseBook: make book | make test | make lab | make bench
# Every target installs what is missing into .venv (idempotent: reinstalls only when
# pyproject.toml or constraints.txt change).  constraints.txt pins the exact versions
# that produced the stored notebook outputs, torch==2.13.0 (CPU build) included.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.sparsebook-installed
PYTEST := $(PY) -m pytest
# Optional neural-tangents env (make crosscheck-nt only; never used by book/test/bench).
NT_VENV  := .venv-nt
NT_PY    := $(NT_VENV)/bin/python
NT_STAMP := $(NT_VENV)/.nt-installed
NT_PINS  := neural-tangents==0.6.5 jax==0.4.30 jaxlib==0.4.30 tf2jax==0.3.6 tensorflow==2.17.1 \
            numpy==1.26.4 scipy==1.13.1 ml-dtypes==0.4.1
# Optional SAELens env (make crosscheck-saelens only; never used by book/test/bench): the project with its
# saelens extra, under constraints.txt (the same NumPy, SciPy and CPU torch==2.13.0 as .venv).
SAE_VENV  := .venv-saelens
SAE_PY    := $(SAE_VENV)/bin/python
SAE_STAMP := $(SAE_VENV)/.saelens-installed
# The notebook regression runs two chapters at once (pytest-xdist, one notebook per worker, each
# kernel on one thread): worker pools inside a chapter stay at one process.
NBVAL      := $(PYTEST) -n 2 --dist loadfile --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg
# Chapters re-executed under perturbed arithmetic by the portability test and compared with the
# outputs stored on an ordinary run.  Every chapter shows its stochastic results with their
# uncertainty and has passed it (`make portability PORTABLE="book/*.ipynb"`, about 15 minutes on
# 2 cores); `make test` runs the cheaper half, to stay near 15 minutes on 2 cores.
PORTABLE   ?= book/dendrites.ipynb book/inductive_bias.ipynb book/rg_flow.ipynb book/information_compression.ipynb \
              book/mixture_of_experts.ipynb book/sparse_kernels.ipynb
# What another machine changes: the instruction set of the vector kernels and of the BLAS (on an
# AVX-512 CPU, pinned down to AVX2; on an AVX2 CPU, PyTorch without vectorised kernels and MKL on its
# AVX path) and the number of intra-op threads (2 instead of 1): the order of the same sums changes.
# (Unvectorised PyTorch with MKL in its COMPATIBLE mode perturbs as well but runs the chapters
# 5-9 times slower: too slow for every test run.)
HAS_AVX512 := $(shell grep -qm1 avx512f /proc/cpuinfo 2>/dev/null && echo yes)
PERTURBED  := SPARSEBOOK_TORCH_THREADS=2 \
              $(if $(HAS_AVX512),ATEN_CPU_CAPABILITY=avx2 MKL_CBWR=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 XLA_FLAGS=--xla_cpu_max_isa=AVX2,\
                                 ATEN_CPU_CAPABILITY=default MKL_CBWR=AVX ONEDNN_MAX_CPU_ISA=AVX XLA_FLAGS=--xla_cpu_max_isa=AVX)
# Quiet the debugger warning ipykernel prints when notebooks run.
export PYDEVD_DISABLE_FILE_VALIDATION := 1

.PHONY: book test unit nbval portability site bench crosscheck-nt crosscheck-saelens lab install clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=/path/to/python3.11)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,site]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (sparsebook)" >/dev/null
	touch $(STAMP)

## book: execute every chapter afresh (stored outputs are replaced), then build the site into _build/html
book: install
	$(PY) -m sparsebook execute --all
	$(VENV)/bin/jupyter-book build . -W -n --keep-going

## test: unit tests, nbval on every chapter (re-executed, compared with stored outputs), portability, site test
test: unit nbval portability site

unit: install
	$(PYTEST) -n 2 tests -m "not site"

nbval: install
	SPARSEBOOK_WORKERS=1 $(NBVAL) book

## portability: the model chapters re-executed under perturbed arithmetic (a stand-in for another machine)
portability: install
	$(PERTURBED) SPARSEBOOK_WORKERS=1 $(PYTEST) -p no:xdist --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg $(PORTABLE)

site: install
	$(PYTEST) tests -m site

## bench: side-by-side benchmarks against peer implementations -> benchmarks/results.md
bench: install
	$(PY) -m benchmarks

## crosscheck-nt: OPTIONAL, needs network once: our kernels vs neural-tangents' analytic NNGP/NTK in its own .venv-nt -> benchmarks/crosscheck_neural_tangents.md
crosscheck-nt: install $(NT_STAMP)
	$(PY) -m benchmarks.crosscheck_neural_tangents --main-python $(PY) --nt-python $(NT_PY)

# neural-tangents needs an old JAX and TensorFlow: a separate env that nothing else uses.
$(NT_STAMP): Makefile
	test -x $(NT_PY) || $(PYTHON) -m venv $(NT_VENV)
	$(NT_PY) -m pip install --quiet --upgrade "pip>=24"
	$(NT_PY) -m pip install --quiet $(NT_PINS)
	touch $(NT_STAMP)

## crosscheck-saelens: OPTIONAL, needs network once: our synthetic data and ground-truth metrics vs SAELens's sae_lens.synthetic in its own .venv-saelens -> benchmarks/crosscheck_saelens.md
crosscheck-saelens: $(SAE_STAMP)
	$(SAE_PY) -m benchmarks.crosscheck_saelens
	$(SAE_PY) -m pytest tests/test_sparse_autoencoders.py -k saelens -q -p no:cacheprovider

$(SAE_STAMP): pyproject.toml constraints.txt
	test -x $(SAE_PY) || $(PYTHON) -m venv $(SAE_VENV)
	$(SAE_PY) -m pip install --quiet --upgrade "pip>=24"
	$(SAE_PY) -m pip install --quiet -c constraints.txt -e ".[saelens]" pytest pytest-timeout hypothesis nbval
	touch $(SAE_STAMP)

## lab: JupyterLab on the notebooks (as a user or as root, as in most containers); prints the address to open
LAB_PORT ?= 8888
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: install
	@echo "JupyterLab: open the http://127.0.0.1:$(LAB_PORT)/lab?token=... address printed below (Ctrl-C stops it)"
	$(VENV)/bin/jupyter lab book --no-browser --ip=127.0.0.1 --port=$(LAB_PORT) $(LAB_ROOT)

clean:
	rm -rf _build
