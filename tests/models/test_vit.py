"""ViT and ViT-MAE: the Flax encoder and its loader equal Hugging Face ``transformers`` 4.57.

Golden outputs come from ``scripts/golden/make_clip_golden.py`` (torch and transformers in
their own environment): a tiny ``ViTMAEForPreTraining`` folder (``vit.`` prefix, decoder,
safetensors) and a tiny ``ViTModel`` with a pooler and no query/key/value biases, saved as
a zip-format ``pytorch_model.bin`` (the real ViT-B/16 shapes: ``test_vit_b16.py``). Every
comparison holds to 1e-5 absolute in float32.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.models import vit, vit_loading
from fedbbpt_jax.models.checkpoint_files import read_weights_file
from fedbbpt_jax.models.checkpoint_tensors import CheckpointMismatch
from tests.helpers.glue_roberta import write_safetensors
from tests.helpers.golden_compare import ATOL, DATA, max_error, run

TINY = os.path.join(DATA, "vit_mae_tiny")
_features = jax.jit(vit.vit_features, static_argnums=1)


@pytest.fixture(scope="module")
def golden():
  return dict(np.load(os.path.join(TINY, "golden.npz")))


def test_vit_mae_tiny_hidden_states_equal_transformers(golden):
  config, params = vit_loading.load_vit(os.path.join(TINY, "mae"))
  assert config == vit.ViTConfig(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                                 patch_size=8, image_size=32, layer_norm_eps=1e-12,
                                 activation="gelu")
  hidden = run(_features, params, config, golden["pixels"])
  assert max_error(hidden, golden["mae_hidden"]) < ATOL            # every patch, in order
  assert max_error(hidden[:, 0], golden["mae_cls_shuffled"]) < ATOL  # [CLS]: order-free
  assert max_error(run(vit.vit_cls, params, config, golden["pixels"]),
                   golden["mae_hidden"][:, 0]) < ATOL


def test_vit_tiny_from_a_torch_zip_file_equals_transformers(golden):
  """No query/key/value biases; the pooler is skipped."""
  config, params = vit_loading.load_vit(os.path.join(TINY, "vit"))
  assert (config.qkv_bias, config.intermediate_size) == (False, 48)
  assert "bias" not in params["encoder"]["layer_0"]["query"]
  assert max_error(run(_features, params, config, golden["pixels"]), golden["vit_hidden"]) < ATOL


def test_vit_loaded_params_have_the_module_tree():
  for name in ("mae", "vit"):
    config, params = vit_loading.load_vit(os.path.join(TINY, name))
    init = jax.eval_shape(lambda c=config: vit.ViT(c).init(
        jax.random.key(0), jnp.zeros((1, 32, 32, 3)))["params"])
    assert jax.tree.structure(init) == jax.tree.structure(params), name
    assert jax.tree.map(lambda a: a.shape, init) == jax.tree.map(lambda a: a.shape, params)


def copy_mae(tmp_path, tensors):
  folder = tmp_path / "mae"
  shutil.copytree(os.path.join(TINY, "mae"), folder,
                  ignore=shutil.ignore_patterns("model.safetensors"))
  write_safetensors(str(folder / "model.safetensors"), tensors)
  return str(folder)


def test_vit_loader_names_the_file_and_tensor_and_shape_of_each_mismatch(tmp_path):
  tensors = read_weights_file(os.path.join(TINY, "mae", "model.safetensors"))
  name = "vit.encoder.layer.1.intermediate.dense.weight"
  where = "model.safetensors (names after the 'vit.' prefix)"
  with pytest.raises(CheckpointMismatch) as err:
    vit_loading.load_vit(copy_mae(tmp_path / "a", {k: v for k, v in tensors.items() if k != name}))
  assert str(err.value) == (f"{tmp_path}/a/mae/{where}: tensor "
                            "'encoder.layer.1.intermediate.dense.weight' is missing (expected "
                            "shape [64, 32])")
  with pytest.raises(CheckpointMismatch) as err:
    vit_loading.load_vit(copy_mae(tmp_path / "b", dict(tensors, **{name: tensors[name].T})))
  assert str(err.value) == (f"{tmp_path}/b/mae/{where}: tensor "
                            "'encoder.layer.1.intermediate.dense.weight' has shape [32, 64], "
                            "expected [64, 32]")
  extra = dict(tensors, **{"vit.encoder.layer.2.output.dense.bias": np.zeros(32, np.float32)})
  with pytest.raises(CheckpointMismatch) as err:
    vit_loading.load_vit(copy_mae(tmp_path / "c", extra))
  assert str(err.value) == (f"{tmp_path}/c/mae/{where}: unexpected tensor "
                            "'encoder.layer.2.output.dense.bias' (shape [32])")


def test_vit_config_errors_name_the_file_and_field(tmp_path):
  with open(os.path.join(TINY, "mae", "config.json")) as f:
    hf = json.load(f)
  with pytest.raises(ValueError, match=r"c.json: model_type='clip' is not one of \['vit', "
                                       r"'vit_mae'\] \(a CLIP folder loads with"):
    vit_loading.vit_config_from_hf(dict(hf, model_type="clip"), "c.json")
  with pytest.raises(ValueError, match=r"patch_size=\[8, 4\]; only square sizes"):
    vit_loading.vit_config_from_hf(dict(hf, patch_size=[8, 4]))
  with pytest.raises(ValueError, match="image_size=36 is not a multiple of patch_size=8"):
    vit_loading.vit_config_from_hf(dict(hf, image_size=36))
  (tmp_path / "config.json").write_text(json.dumps(hf))
  with pytest.raises(FileNotFoundError, match=r"no weights file; a folder holds one of "
                                              r"\['model.safetensors', 'pytorch_model.bin'\]"):
    vit_loading.load_vit(str(tmp_path))


def test_vit_refuses_pixels_of_another_shape(golden):
  config, params = vit_loading.load_vit(os.path.join(TINY, "mae"))
  with pytest.raises(ValueError, match=r"pixels have shape \(2, 3, 32, 32\); the model takes "
                                       r"\[batch, 32, 32, 3\] \(NHWC\)"):
    vit.vit_features(params, config, golden["pixels"].transpose(0, 3, 1, 2))
