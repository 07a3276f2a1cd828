"""CLIP at the real ViT-B/16 shapes equals Hugging Face ``transformers`` 4.57's ``CLIPModel``.

The weights are not stored: ``tests/helpers/seeded_weights.py`` regenerates every tensor
from its name (as ``scripts/golden/make_clip_golden.py`` did before loading them into
``transformers``), and the Hugging Face loader's own rules convert them; only the
configuration and the outputs are stored (``tests/data/clip_b16_seeded``). Kept apart from
``test_clip.py`` so that the tiny checks stay in the quick tier.
"""

import dataclasses
import json
import os

import jax
import numpy as np
import pytest

from fedbbpt_jax.models import clip, clip_loading
from fedbbpt_jax.models.checkpoint_tensors import expected_shapes
from tests.helpers.seeded_weights import seeded_state_dict
from tests.helpers.golden_compare import ATOL, DATA, max_error, run, seeded_pixels

B16 = os.path.join(DATA, "clip_b16_seeded")
_image_embeds = jax.jit(clip.image_embeds, static_argnums=1)
_text_embeds = jax.jit(clip.text_embeds, static_argnums=1)


@pytest.mark.slow
def test_clip_vit_b16_shapes_equal_transformers_on_seeded_weights():
  """The real CLIP ViT-B/16 configuration (OpenAI's eos_token_id == 2), converted by the
  Hugging Face loader's own rules from regenerated weights."""
  with open(os.path.join(B16, "config.json")) as f:
    config = clip_loading.clip_config_from_hf(json.load(f))
  assert (config.vision.hidden_size, config.vision.num_layers, config.vision.patch_size,
          config.text.vocab_size, config.text.pool, config.projection_dim) == \
      (768, 12, 16, 49408, "argmax", 512)
  tensors = seeded_state_dict(expected_shapes(clip_loading.hf_clip_rules(config)))
  params = clip_loading.clip_params_from_hf(tensors, config, "seeded ViT-B/16")
  del tensors
  golden = np.load(os.path.join(B16, "golden.npz"))
  pixels = seeded_pixels(int(golden["pixels_seed"]), 2, 224)
  ids, mask = golden["input_ids"], golden["attention_mask"]
  image = run(_image_embeds, params, config, pixels)
  assert max_error(image, golden["image_embeds"]) < ATOL
  text = run(_text_embeds, params, config, ids, mask)
  assert max_error(text, golden["text_embeds"]) < ATOL
  eos_config = dataclasses.replace(config, text=dataclasses.replace(
      config.text, eos_token_id=49407, pool="first_eos"))
  assert max_error(run(_text_embeds, params, eos_config, ids, mask),
                   golden["raw_text_embeds_first_eos"]) < ATOL
  logits = clip.logits_from_embeds(image, text, params["logit_scale"])
  assert max_error(np.asarray(logits), golden["logits_per_image"]) < ATOL
