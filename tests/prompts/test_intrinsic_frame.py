"""The intrinsic-dimension frame (ZIP's low-rank reparameterisation of the frame): its
pattern is the documented formula, computed here in numpy; it starts at the zero-shot
canvas; it trains 3 rank + rank + k rank + k parameters; the projection is fixed by its
seed; nothing is drawn inside the image window."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.prompts.canvas import region_mask


def build(**options):
  return PROMPTS.get("intrinsic_frame")(32, 24, **options)


def test_the_pattern_is_the_documented_formula():
  r, dim, rank = 6, 12, 2
  prompt = build(resolution=r, intrinsic_dim=dim, rank=rank, epsilon=0.5)
  k = dim // 3
  rng = np.random.default_rng(7)
  params = {"U": rng.standard_normal((3, rank)), "s": rng.standard_normal(rank),
            "V": rng.standard_normal((k, rank)), "shared": rng.standard_normal(k)}
  projection = np.random.default_rng(0).standard_normal((3, k, r * r)) / np.sqrt(k)
  rows = params["U"] @ np.diag(params["s"]) @ params["V"].T + params["shared"][None]
  pattern = np.stack([rows[c] @ projection[c] for c in range(3)]).reshape(3, r, r)
  want = jax.image.resize(jnp.asarray(pattern.transpose(1, 2, 0), jnp.float32), (32, 32, 3),
                          method="linear")
  want = 0.5 * np.asarray(want) * np.asarray(region_mask(32, 24, "frame"))
  got = prompt.apply(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params), ())[0]
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)
  inner = np.asarray(got)[4:28, 4:28]  # the image window is left alone
  assert not inner.any() and np.abs(np.asarray(got)).max() > 0


def test_it_starts_at_the_zero_shot_canvas_with_the_stated_parameter_count():
  prompt = build(resolution=16, intrinsic_dim=48, rank=2)
  params = prompt.init(jax.random.key(3))
  assert ravel_pytree(params)[0].shape == (3 * 2 + 2 + 16 * 2 + 16,)  # 56
  assert not np.asarray(prompt.apply(params, ())).any()
  np.testing.assert_array_equal(np.asarray(params["s"]), [1.0, 1.0])
  assert np.asarray(params["V"]).std() > 0.5  # a standard normal draw, from the key
  moved = dict(params, U=params["U"] + 0.1)  # first-order in U (V is not zero)
  assert np.abs(np.asarray(prompt.apply(moved, ()))).max() > 0.01


def test_the_projection_is_fixed_by_its_seed():
  params = build(resolution=6, intrinsic_dim=12).init(jax.random.key(0))
  params = dict(params, shared=jnp.ones(4))
  same = [np.asarray(build(resolution=6, intrinsic_dim=12).apply(params, ())) for _ in range(2)]
  other = np.asarray(build(resolution=6, intrinsic_dim=12, projection_seed=1).apply(params, ()))
  np.testing.assert_array_equal(same[0], same[1])
  assert np.abs(same[0] - other).max() > 0.01


@pytest.mark.parametrize("options", [dict(intrinsic_dim=10), dict(rank=0), dict(resolution=0)])
def test_bad_sizes_are_refused(options):
  with pytest.raises(ValueError, match="intrinsic frame"):
    build(**options)
