"""Frozen weights travel as program arguments only if JAX's constants setting is on when jax
is imported: ``fedbbpt_jax`` switches it on when imported first, and warns when it is not."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARNING = "jax was imported before fedbbpt_jax"


def _import(code):
  env = {k: v for k, v in os.environ.items() if k != "JAX_USE_SIMPLIFIED_JAXPR_CONSTANTS"}
  probe = ("from jax._src.interpreters import mlir; "
           "print(mlir.LoweringParameters().hoist_constants_as_args)")
  out = subprocess.run([sys.executable, "-W", "always", "-c", f"{code}; {probe}"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120, check=True)
  return out.stdout.strip(), out.stderr


@pytest.mark.parametrize("code, hoisted, warned", [
    ("import fedbbpt_jax, jax", "True", False),
    ("import jax, fedbbpt_jax", "False", True),
])
def test_importing_fedbbpt_jax_first_hoists_constants_and_otherwise_warns(code, hoisted, warned):
  stdout, stderr = _import(code)
  assert stdout == hoisted
  assert (WARNING in stderr) is warned, stderr
