"""Checkpoint tensors -> a Flax parameter tree, every tensor's name and shape checked.

A loader states, once, one ``TensorRule`` per checkpoint tensor: its name, its shape in
the checkpoint, where it goes in the parameter tree and how its layout changes (PyTorch
``Linear`` weights ``[out, in]`` become Flax ``kernel [in, out]``, convolution weights
``[O, I, H, W]`` become ``[H, W, I, O]``). ``params_from_rules`` then refuses a
checkpoint with a missing, an unexpected or a mis-shaped tensor, in one
``CheckpointMismatch`` that names the file, each tensor and its expected shape, and
otherwise builds the tree (float32 leaves). The same rules give a loader's expected
names and shapes (``expected_shapes``), e.g. to generate test weights.

Example:
    >>> rules = linear_rules("fc", ("mlp_in",), 32, 64) + norm_rules("ln", ("norm",), 32)
    >>> params = params_from_rules(state_dict, rules, "/models/x/model.safetensors")
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.models.pre_ln_transformer import BlockSpec

__all__ = [
    "BLOCK_PARTS",
    "CheckpointMismatch",
    "TensorRule",
    "check_tensors",
    "encoder_rules",
    "expected_shapes",
    "linear_rules",
    "norm_rules",
    "params_from_rules",
]

LAYOUTS = ("same", "linear", "conv", "squeeze")
_LISTED = 8  # problems of one kind named in a message before "... and N more"


class CheckpointMismatch(ValueError):
  """A checkpoint's tensors are not the ones the model's configuration needs."""


@dataclass(frozen=True)
class TensorRule:
  """One checkpoint tensor and where it goes.

  Attributes:
    name: The tensor's name in the checkpoint.
    shape: Its shape in the checkpoint.
    path: Its path in the parameter tree.
    layout: ``'same'``; ``'linear'`` (transpose ``[out, in]`` to ``[in, out]``);
      ``'conv'`` (``[O, I, H, W]`` to ``[H, W, I, O]``); ``'squeeze'`` (drop the
      leading size-1 axes, e.g. a ``[1, 1, D]`` class token to ``[D]``).
  """

  name: str
  shape: tuple[int, ...]
  path: tuple[str, ...]
  layout: str = "same"

  def __post_init__(self):
    if self.layout not in LAYOUTS:
      raise ValueError(f"layout={self.layout!r} is not one of {list(LAYOUTS)}")


def linear_rules(name: str, path: tuple[str, ...], d_in: int, d_out: int,
                 bias: bool = True) -> list[TensorRule]:
  """A PyTorch ``Linear`` (``name.weight [out, in]``, ``name.bias``) -> Flax ``path/kernel``
  ``[in, out]`` and ``path/bias``."""
  rules = [TensorRule(f"{name}.weight", (d_out, d_in), path + ("kernel",), "linear")]
  if bias:
    rules.append(TensorRule(f"{name}.bias", (d_out,), path + ("bias",)))
  return rules


def norm_rules(name: str, path: tuple[str, ...], width: int) -> list[TensorRule]:
  """A PyTorch ``LayerNorm`` -> Flax ``path/scale``, ``path/bias``."""
  return [TensorRule(f"{name}.weight", (width,), path + ("scale",)),
          TensorRule(f"{name}.bias", (width,), path + ("bias",))]


# The parts of a pre-LayerNorm block (``pre_ln_transformer.PreLNBlock``), in order.
BLOCK_PARTS = ("norm1", "query", "key", "value", "attention_out", "norm2", "mlp_in", "mlp_out")


def encoder_rules(layer_name: Callable[[int], str], path: tuple[str, ...], spec: BlockSpec,
                  num_layers: int, part_names: Mapping[str, str]) -> list[TensorRule]:
  """Rules of ``num_layers`` pre-LayerNorm blocks.

  Args:
    layer_name: Checkpoint prefix of layer ``i`` (e.g. ``'encoder.layers.3'``).
    path: Path of the ``PreLNEncoder`` in the parameter tree.
    spec: The blocks' shape.
    num_layers: How many blocks.
    part_names: Checkpoint suffix of each of ``BLOCK_PARTS``.
  """
  d, m = spec.hidden_size, spec.intermediate_size
  widths = {"query": (d, d), "key": (d, d), "value": (d, d), "attention_out": (d, d),
            "mlp_in": (d, m), "mlp_out": (m, d)}
  rules = []
  for i in range(num_layers):
    layer_path = path + (f"layer_{i}",)
    for part in BLOCK_PARTS:
      name = f"{layer_name(i)}.{part_names[part]}"
      if part in widths:
        bias = spec.qkv_bias or part not in ("query", "key", "value")
        rules += linear_rules(name, layer_path + (part,), *widths[part], bias=bias)
      else:
        rules += norm_rules(name, layer_path + (part,), d)
  return rules


def expected_shapes(rules: Sequence[TensorRule]) -> dict[str, tuple[int, ...]]:
  """Checkpoint name -> shape of every tensor the rules need."""
  return {r.name: r.shape for r in rules}


def _named(items: list[str]) -> list[str]:
  if len(items) <= _LISTED:
    return items
  return items[:_LISTED] + [f"... and {len(items) - _LISTED} more"]


def check_tensors(tensors: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]],
                  source: str, ignore: Callable[[str], bool] = lambda name: False) -> None:
  """Raises ``CheckpointMismatch`` naming ``source`` and every missing, unexpected (not
  ``expected`` and not ``ignore``-d) or mis-shaped tensor, with its expected shape."""
  missing = [f"tensor {n!r} is missing (expected shape {list(s)})"
             for n, s in expected.items() if n not in tensors]
  wrong = [f"tensor {n!r} has shape {list(np.shape(tensors[n]))}, expected {list(s)}"
           for n, s in expected.items()
           if n in tensors and tuple(np.shape(tensors[n])) != s]
  extra = [f"unexpected tensor {n!r} (shape {list(np.shape(t))})"
           for n, t in tensors.items() if n not in expected and not ignore(n)]
  problems = _named(missing) + _named(wrong) + _named(extra)
  if problems:
    raise CheckpointMismatch(f"{source}: " + "; ".join(problems))


def _convert(array: np.ndarray, layout: str) -> np.ndarray:
  array = np.asarray(array, np.float32)
  if layout == "linear":
    return np.ascontiguousarray(array.T)
  if layout == "conv":
    return np.ascontiguousarray(array.transpose(2, 3, 1, 0))
  if layout == "squeeze":
    while array.ndim > 1 and array.shape[0] == 1:
      array = array[0]
  return array


def params_from_rules(tensors: Mapping[str, np.ndarray], rules: Sequence[TensorRule],
                      source: str, ignore: Callable[[str], bool] = lambda name: False,
                      ) -> dict:
  """The parameter tree (float32 ``jax.Array`` leaves) the rules build from ``tensors``.

  Args:
    tensors: Checkpoint name -> array.
    rules: One rule per tensor the model needs.
    source: What the tensors came from (a file path), named in errors.
    ignore: Names of tensors the model does not use that may be present (buffers,
      heads of other tasks); any other unexpected tensor is an error.

  Raises:
    CheckpointMismatch: Naming ``source`` and every missing, unexpected or mis-shaped
      tensor with its expected shape.
  """
  check_tensors(tensors, expected_shapes(rules), source, ignore)
  tree: dict = {}
  for rule in rules:
    node = tree
    for key in rule.path[:-1]:
      node = node.setdefault(key, {})
    node[rule.path[-1]] = jnp.asarray(_convert(tensors[rule.name], rule.layout))
  return tree
