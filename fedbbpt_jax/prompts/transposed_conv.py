"""PyTorch's ``ConvTranspose2d`` with ``kernel_size == stride`` and grouped channels, in Flax.

``flax.linen.ConvTranspose`` has no ``feature_group_count``, and BlackVIP's decoder uses
grouped transposed convolutions (``groups = in_channels``). With kernel ``k`` equal to
the stride and no padding the output patches do not overlap: input pixel ``(i, j)``
writes the ``k x k`` patch at ``(k i, k j)`` of every output channel of its group, so

    out[n, k i + a, k j + b, g m + o] = sum_{c < C/G} x[n, i, j, g C/G + c] W[g C/G + c, o, a, b]
                                        + bias[g m + o]

with ``G`` groups, ``m = out_channels / G`` outputs per group and ``W`` in torch's layout
``[in_channels, out_channels / groups, k, k]`` (kept as it is, so a torch checkpoint maps
one to one). This is one einsum and a reshape: no convolution op at all (XLA's grouped
convolutions are slow on CPU). ``k = 1`` is torch's pointwise ``ConvTranspose2d(kernel_size=1)``.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp


def conv_transpose_patches(x: jnp.ndarray, kernel: jnp.ndarray, bias: jnp.ndarray | None = None,
                           groups: int = 1) -> jnp.ndarray:
  """Torch ``ConvTranspose2d(stride=k, kernel_size=k, padding=0, groups)`` on NHWC input.

  Args:
    x: ``[N, H, W, C_in]``.
    kernel: ``[C_in, C_out / groups, k, k]`` (torch's layout).
    bias: ``[C_out]`` or None.
    groups: channel groups; ``C_in`` and ``C_out`` are multiples of it.

  Returns:
    ``[N, k H, k W, C_out]``.
  """
  n, h, w, c_in = x.shape
  kernel_in, per_group, k, k2 = kernel.shape
  if kernel_in != c_in or k != k2 or c_in % groups:
    raise ValueError(f"kernel {kernel.shape} does not fit input channels {c_in} in "
                     f"{groups} groups (torch layout [in, out/groups, k, k])")
  x = x.reshape(n, h, w, groups, c_in // groups)
  kernel = kernel.reshape(groups, c_in // groups, per_group, k, k)
  out = jnp.einsum("nhwgc,gcoab->nhawbgo", x, kernel)
  out = out.reshape(n, h * k, w * k, groups * per_group)
  return out if bias is None else out + bias


def torch_default_uniform(fan_in: int) -> nn.initializers.Initializer:
  """Torch's default init of a convolution's weight and bias: ``U(-1/sqrt(fan_in), ...)``.

  (``kaiming_uniform_(a=sqrt(5))`` gives exactly this bound; for ``ConvTranspose2d`` torch
  takes ``fan_in`` from the weight's dimension 1, ``out_channels / groups``, times ``k^2``.)
  """
  bound = 1.0 / math.sqrt(fan_in)

  def init(key: jax.Array, shape, dtype=jnp.float32) -> jnp.ndarray:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class TorchConvTranspose(nn.Module):
  """``torch.nn.ConvTranspose2d(in, features, k, stride=k, groups=groups, bias=use_bias)``.

  Parameters: ``kernel [in, features / groups, k, k]`` and ``bias [features]``, drawn as
  torch draws them (``torch_default_uniform``).
  """

  features: int
  kernel_size: int
  groups: int = 1
  use_bias: bool = True

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    c_in = x.shape[-1]
    if c_in % self.groups or self.features % self.groups:
      raise ValueError(f"groups={self.groups} must divide the input channels {c_in} and "
                       f"the output channels {self.features}")
    per_group = self.features // self.groups
    init = torch_default_uniform(per_group * self.kernel_size ** 2)
    kernel = self.param("kernel", init, (c_in, per_group, self.kernel_size, self.kernel_size))
    bias = self.param("bias", init, (self.features,)) if self.use_bias else None
    return conv_transpose_patches(x, kernel, bias, self.groups)
