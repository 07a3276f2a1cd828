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
import scipy.special

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


def numpy_vit_before_norm(tensors, pixels, heads, eps):
  """Hugging Face ``ViTModel``'s ``hidden_states[-1]`` from its definition, in float64 numpy,
  on the checkpoint's own tensors (``vit.`` prefix removed): patch convolution, [CLS] and
  position embeddings, then per layer ``x + attention(LN(x))`` and ``x + MLP(LN(x))`` with
  exact GELU; no final LayerNorm."""
  t = {k.removeprefix("vit."): np.asarray(v, np.float64) for k, v in tensors.items()}
  x = np.asarray(pixels, np.float64)
  kernel = t["embeddings.patch_embeddings.projection.weight"]           # [D, C, P, P]
  d, c, p = kernel.shape[0], kernel.shape[1], kernel.shape[2]
  b, n = x.shape[0], x.shape[1] // kernel.shape[2]
  patches = x.reshape(b, n, p, n, p, c).transpose(0, 1, 3, 5, 2, 4).reshape(b, n * n, c * p * p)
  h = patches @ kernel.reshape(d, -1).T + t["embeddings.patch_embeddings.projection.bias"]
  cls = np.broadcast_to(t["embeddings.cls_token"].reshape(1, 1, d), (b, 1, d))
  h = np.concatenate([cls, h], axis=1) + t["embeddings.position_embeddings"][0]

  def norm(v, name):
    mean, var = v.mean(-1, keepdims=True), v.var(-1, keepdims=True)
    return (v - mean) / np.sqrt(var + eps) * t[name + ".weight"] + t[name + ".bias"]

  def dense(v, name):
    return v @ t[name + ".weight"].T + t[name + ".bias"]

  layer = 0
  while f"encoder.layer.{layer}.layernorm_before.weight" in t:
    pre = f"encoder.layer.{layer}."
    a = norm(h, pre + "layernorm_before")
    q, k, v = (dense(a, pre + f"attention.attention.{w}").reshape(b, -1, heads, d // heads)
               for w in ("query", "key", "value"))
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(d // heads)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    attended = np.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, -1, d)
    h = h + dense(attended, pre + "attention.output.dense")
    m = dense(norm(h, pre + "layernorm_after"), pre + "intermediate.dense")
    m = 0.5 * m * (1.0 + scipy.special.erf(m / np.sqrt(2.0)))
    h = h + dense(m, pre + "output.dense")
    layer += 1
  return h


def test_vit_mae_states_before_the_final_norm_are_hidden_states_minus_one(golden):
  """BlackVIP reads ``hidden_states[-1][:, 0]``: the last block's [CLS], before the final
  LayerNorm. Checked against an independent float64 forward of the checkpoint's tensors, and
  the final LayerNorm of those states against transformers' ``last_hidden_state``."""
  config, params = vit_loading.load_vit(os.path.join(TINY, "mae"))
  tensors = read_weights_file(os.path.join(TINY, "mae", "model.safetensors"))
  before = run(jax.jit(vit.vit_hidden_before_norm, static_argnums=1), params, config,
               golden["pixels"])
  reference = numpy_vit_before_norm(tensors, golden["pixels"], config.num_heads,
                                    config.layer_norm_eps)
  assert before.shape == (2, 17, 32)
  assert max_error(before, reference) < ATOL
  cls = run(jax.jit(vit.vit_cls_before_norm, static_argnums=1), params, config, golden["pixels"])
  assert max_error(cls, reference[:, 0]) < ATOL
  norm = params["final_norm"]
  mean, var = before.mean(-1, keepdims=True), before.var(-1, keepdims=True)
  normalised = (before - mean) / np.sqrt(var + config.layer_norm_eps) * norm["scale"] + norm["bias"]
  assert max_error(normalised, golden["mae_hidden"]) < ATOL
  assert max_error(cls, golden["mae_hidden"][:, 0]) > 0.1  # not the normalised [CLS]
