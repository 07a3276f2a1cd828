"""BDPL's variance-reduced policy gradient over categorical prompts (Diao et al., TMLR 2023).

Parameters are probability matrices ``theta [..., N]`` (rows on the simplex).
Per step::

    ask:  j^(k) ~ Cat(theta) row-wise, k = 1..I   (candidates = one-hot samples [I, ..., N])
          L_k = loss of prompt j^(k) on the minibatch (one batched black-box call)
    tell: Lbar = mean_k L_k
          g = 2/(I-1) * sum_k (L_k - Lbar) * onehot(j^(k)) / max(theta, floor)
          g <- g * min(1, clip_norm / ||g||)     (global L2 norm over all leaves)

``2 * g_zero`` equals BDPL's "negative" rule exactly: the ``-1/theta`` entries do
not depend on ``k`` and cancel against the mean baseline (``sum_k (L_k - L_mean) = 0``), so no
unsampled entry is ever inverted and a zero probability cannot produce NaN
(as it does in BDPL's code). The estimate is unbiased for ``2 (grad E[L] - E[L] 1)``; the
row shift ``-E[L] 1`` is removed by the simplex projection.

The caller applies the client optimizer (AdamW with weight decay in BDPL) and then
projects every row back to the simplex (``prompts.discrete.project_tree``, the
``project`` hook of ``federated.make_local_update``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from fedbbpt_jax.zo import base
from fedbbpt_jax.zo.hparams import HParams

DEFAULT_CLIP_NORM = 3.0
DEFAULT_PROB_FLOOR = 1e-8


@struct.dataclass
class BDPLState:
  step: jnp.ndarray  # global step t (int32, 1-based) of the next tell


def sample_one_hot(key: jax.Array, probs: jnp.ndarray, num_samples: int) -> jnp.ndarray:
  """Draws ``num_samples`` one-hot samples ``[I, ..., N]`` of the rows of ``probs``.

  Rows are renormalised (as torch's ``Categorical``); zero entries are never drawn.
  """
  logits = jnp.where(probs > 0, jnp.log(jnp.maximum(probs, 1e-38)), -jnp.inf)
  idx = jax.random.categorical(key, logits, axis=-1, shape=(num_samples,) + probs.shape[:-1])
  return jax.nn.one_hot(idx, probs.shape[-1], dtype=jnp.float32)


def clip_by_global_norm(tree, max_norm: float):
  """Scales ``tree`` so that its global L2 norm is at most ``max_norm`` (None: no clip)."""
  norm = jnp.sqrt(sum(jnp.sum(x ** 2) for x in jax.tree.leaves(tree)))
  if max_norm is None:
    return tree, norm
  scale = jnp.minimum(1.0, max_norm / jnp.maximum(norm, 1e-12))
  return jax.tree.map(lambda x: x * scale, tree), norm


def make_bdpl(num_samples: int, *, clip_norm: float | None = DEFAULT_CLIP_NORM,
              prob_floor: float = DEFAULT_PROB_FLOOR) -> base.Estimator:
  """Builds BDPL's estimator with ``num_samples`` (I >= 2) sampled prompts per step.

  Args:
    num_samples: prompts sampled and scored per step.
    clip_norm: global L2 norm the estimate is clipped to (BDPL: 3); None = no clip.
    prob_floor: positive floor inside ``1/theta``.
  """
  i = int(num_samples)
  if i < 2:
    raise ValueError(f"BDPL needs num_samples >= 2 for its mean baseline, got {num_samples}")

  def init(params, step):
    del params
    return BDPLState(step=jnp.asarray(step, jnp.int32))

  def ask(key, params, state, hp: HParams):
    del hp
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    samples = [sample_one_hot(k, p, i) for k, p in zip(keys, leaves)]
    return jax.tree.unflatten(treedef, samples), state

  def tell(params, candidates, losses, state, hp: HParams):
    del hp
    losses = losses.astype(jnp.float32)
    centred = losses - jnp.mean(losses)

    def leaf_grad(theta, one_hot):
      weighted = jnp.tensordot(centred, one_hot, axes=1)           # sum_k (L_k - Lbar) onehot_k
      return 2.0 / (i - 1) * weighted / jnp.maximum(theta, prob_floor)

    grad = jax.tree.map(leaf_grad, params, candidates)
    grad, norm = clip_by_global_norm(grad, clip_norm)
    stats = base.loss_stats(losses)
    stats["grad_norm"] = norm
    return grad, state.replace(step=state.step + 1), stats

  return base.Estimator(name="bdpl", num_candidates=i, init=init, ask=ask, tell=tell)
