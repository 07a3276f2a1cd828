"""Prompt generators: where they act, their size, batch independence, clipping.

The generators' networks are called through ``jax.jit`` (``compiled``), as training does:
run op by op, initialising a coordinator or running the EfficientNet trunk compiles every
layer's operations one at a time, several times slower.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.prompts import apply_prompt, make_prompt, num_params, place_on_canvas


def compiled(gen):
  """``gen``'s ``init``, ``features`` and ``apply``, each under ``jax.jit``."""
  return gen._replace(init=jax.jit(gen.init), features=jax.jit(gen.features),
                      apply=jax.jit(gen.apply))


def test_canvas_centres_the_resized_image():
  img = np.full((2, 8, 8), 255, np.uint8)
  canvas = place_on_canvas(jnp.asarray(img), 32, 16)
  assert canvas.shape == (2, 32, 32, 3)
  np.testing.assert_allclose(canvas[:, 8:24, 8:24], 1.0)
  assert float(canvas.sum()) == 2 * 16 * 16 * 3


def test_frame_prompt_never_touches_the_image_window():
  gen = make_prompt("frame", 32, 16, resolution=4)
  params = {"pattern": jnp.ones((4, 4, 3))}
  delta = gen.apply(params, gen.features(None))
  assert num_params(params) == 48
  np.testing.assert_allclose(delta[0, 8:24, 8:24], 0.0)
  assert float(delta[0, :8].min()) > 0.99


def test_coordinator_is_input_dependent_and_batch_independent():
  gen = compiled(make_prompt("coordinator", 64, 48))
  params = gen.init(jax.random.key(0))
  assert 8000 < num_params(params) < 12000
  x = jax.random.uniform(jax.random.key(1), (4, 64, 64, 3))
  full = gen.apply(params, gen.features(x))
  alone = gen.apply(params, gen.features(x[:1]))
  np.testing.assert_allclose(full[:1], alone, atol=1e-6)
  assert float(jnp.abs(full[0] - full[1]).max()) > 0


def test_prompted_pixels_stay_in_range():
  x = jnp.full((1, 4, 4, 3), 0.9)
  out = apply_prompt(x, jnp.full((1, 4, 4, 3), 0.5))
  np.testing.assert_allclose(out, 1.0)


def test_pretrained_coordinator_encoder_gives_normalised_batch_independent_features():
  gen = compiled(make_prompt("coordinator", 64, 48, encoder="efficientnet_lite0",
                             region="frame"))
  x = jax.random.uniform(jax.random.key(1), (3, 64, 64, 3))
  z = gen.features(x)
  assert z.shape == (3, 4, 4, 80)  # 8 blocks: stride 16, 80 channels
  np.testing.assert_allclose(z.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(z.std(-1), 1.0, atol=1e-3)
  np.testing.assert_allclose(gen.features(x[1:2]), z[1:2], atol=1e-5)
  params = gen.init(jax.random.key(0))
  assert num_params(params) == 17808  # the decoder's first layer reads 80 + 8 channels
  delta = gen.apply(params, z)
  np.testing.assert_allclose(delta[:, 8:56, 8:56], 0.0)  # region 'frame': image untouched
  assert float(jnp.abs(delta[0] - delta[1]).max()) > 0


def test_pretrained_encoder_refuses_a_trunk_too_deep_for_the_canvas():
  with pytest.raises(ValueError, match="prompt.encoder_blocks=12"):
    make_prompt("coordinator", 64, 48, encoder="efficientnet_lite0", encoder_blocks=12)


def test_frame_mixture_mixes_its_patterns_by_the_softmax_gate():
  gen = compiled(make_prompt("frame_mixture", 32, 16, resolution=2, num_patterns=2,
                             encoder="random", encoder_channels=2, region="full"))
  params = gen.init(jax.random.key(0))
  assert num_params(params) == 2 * 12 + 2 * 2
  np.testing.assert_allclose(gen.apply(params, jnp.ones((1, 2))), 0.0)  # starts at zero-shot
  params = {"patterns": jnp.stack([jnp.full((2, 2, 3), 1.0), jnp.full((2, 2, 3), -1.0)]),
            "gate": jnp.asarray([[1.0, 0.0], [0.0, 0.0]])}
  z = jnp.asarray([[2.0, 5.0], [0.0, 1.0]])   # gate logits (2, 0) and (0, 0)
  w = np.exp(2.0) / (np.exp(2.0) + 1.0)
  delta = gen.apply(params, z)
  np.testing.assert_allclose(delta[0], w - (1 - w), rtol=1e-6)
  np.testing.assert_allclose(delta[1], 0.0, atol=1e-7)


def test_frame_mixture_features_are_centred_and_batch_independent():
  x = jax.random.uniform(jax.random.key(1), (6, 64, 64, 3))
  raw = compiled(make_prompt("frame_mixture", 64, 48))  # pretrained trunk, pooled: 80 features
  center = np.asarray(raw.features(x)).mean(0)
  gen = compiled(make_prompt("frame_mixture", 64, 48, feature_center=center))
  z = gen.features(x)
  assert z.shape == (6, 80)
  np.testing.assert_allclose(z.mean(-1), 0.0, atol=1e-5)
  np.testing.assert_allclose(z.std(-1), 1.0, atol=1e-3)
  np.testing.assert_allclose(gen.features(x[2:3]), z[2:3], atol=1e-5)
  params = gen.init(jax.random.key(0))
  assert num_params(params) == 4 * 3 * 64 + 80 * 4
  # The gate's initial logits have std gate_init = 2 on unit-variance features.
  assert 1.2 < float(jnp.std(z @ params["gate"])) < 2.8
