"""ViT-MAE at the real ViT-B/16 shapes equals Hugging Face ``transformers`` 4.57's ``ViTMAEModel``.

The weights are not stored: ``tests/helpers/seeded_weights.py`` regenerates every tensor
from its name (as ``scripts/golden/make_clip_golden.py`` did), the loader's own rules
convert them; only ``config.json`` and outputs are stored (``tests/data/vit_mae_b16_seeded``).
Kept apart from ``test_vit.py`` so that the tiny checks stay in the quick tier.
"""

import json
import os

import jax
import numpy as np
import pytest

from fedbbpt_jax.models import vit, vit_loading
from fedbbpt_jax.models.checkpoint_tensors import expected_shapes
from tests.helpers.golden_compare import ATOL, DATA, max_error, run, seeded_pixels
from tests.helpers.seeded_weights import seeded_state_dict

B16 = os.path.join(DATA, "vit_mae_b16_seeded")


@pytest.mark.slow
def test_vit_mae_b16_shapes_equal_transformers_on_seeded_weights():
  with open(os.path.join(B16, "config.json")) as f:
    config = vit_loading.vit_config_from_hf(json.load(f))
  assert (config.hidden_size, config.num_layers, config.num_heads, config.patch_size,
          config.image_size, config.activation) == (768, 12, 12, 16, 224, "gelu")
  tensors = seeded_state_dict(expected_shapes(vit_loading.hf_vit_rules(config)))
  params = vit_loading.vit_params_from_hf(tensors, config, "seeded MAE ViT-B/16")
  del tensors
  golden = np.load(os.path.join(B16, "golden.npz"))
  pixels = seeded_pixels(int(golden["pixels_seed"]), 2, 224)
  hidden = run(jax.jit(vit.vit_features, static_argnums=1), params, config, pixels)
  assert max_error(hidden[:, :6], golden["hidden_first_tokens"]) < ATOL
  assert max_error(hidden.mean(1), golden["hidden_mean"]) < ATOL
