"""CLIP: the Flax port and its loaders equal Hugging Face ``transformers`` 4.57's ``CLIPModel``.

Golden outputs come from ``scripts/golden/make_clip_golden.py`` (torch and transformers in
their own environment; this project never imports them): a tiny random ``CLIPModel``
folder as ``save_pretrained`` wrote it (weights, config, a CLIP-style BPE tokenizer), the
same weights under open_clip's names (the real ViT-B/16 shapes: ``test_clip_b16.py``).
Every comparison holds to 1e-5 absolute in float32 (matrix products at full precision,
also on accelerators).
"""

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.models import clip, clip_loading
from fedbbpt_jax.models.checkpoint_files import read_weights_file
from fedbbpt_jax.models.checkpoint_tensors import CheckpointMismatch
from fedbbpt_jax.models.clip_tokenizer import CLIPTokenizer
from fedbbpt_jax.models.vit import ViTConfig
from tests.helpers.glue_roberta import write_safetensors
from tests.helpers.golden_compare import ATOL, DATA, max_error, run

TINY = os.path.join(DATA, "clip_tiny")
OPEN_CLIP = os.path.join(DATA, "clip_tiny_open_clip")

_image_embeds = jax.jit(clip.image_embeds, static_argnums=1)
_text_embeds = jax.jit(clip.text_embeds, static_argnums=1)
_logits = jax.jit(clip.logits_per_image, static_argnums=1)


@pytest.fixture(scope="module")
def tiny():
  config, params, tokenizer = clip_loading.load_clip(TINY)
  return config, params, tokenizer, dict(np.load(os.path.join(TINY, "golden.npz")))


def with_pool(config, pool):
  return dataclasses.replace(config, text=dataclasses.replace(config.text, pool=pool))


def test_clip_tiny_config_is_read_from_config_json(tiny):
  config = tiny[0]
  assert config.vision == ViTConfig(
      hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, patch_size=8,
      image_size=32, layer_norm_eps=1e-5, activation="quick_gelu", pre_norm=True,
      patch_bias=False)
  assert config.text == clip.CLIPTextConfig(
      vocab_size=599, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48,
      max_positions=77, layer_norm_eps=1e-5, activation="quick_gelu", eos_token_id=598,
      pool="first_eos")
  assert config.projection_dim == 16


def test_clip_tiny_loaded_params_have_the_module_tree(tiny):
  config, params = tiny[0], tiny[1]
  init = jax.eval_shape(lambda: clip.CLIP(config).init(
      jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 77), jnp.int32),
      jnp.ones((1, 77), jnp.int32))["params"])
  assert jax.tree.structure(init) == jax.tree.structure(params)
  assert jax.tree.map(lambda a: a.shape, init) == jax.tree.map(lambda a: a.shape, params)


def test_clip_tiny_tokenizer_ids_equal_the_hf_tokenizer(tiny):
  tokenizer, golden = tiny[2], tiny[3]
  ids, mask = tokenizer(list(golden["texts"]))
  np.testing.assert_array_equal(ids, golden["input_ids"])
  np.testing.assert_array_equal(mask, golden["attention_mask"])
  assert ids.shape == (6, 77) and ids.dtype == np.int32
  bos, eos = tokenizer.token_to_id("<|startoftext|>"), tokenizer.token_to_id("<|endoftext|>")
  assert tokenizer.pad_id == eos and list(ids[4, :3]) == [bos, eos, eos]   # "" -> start, end
  assert list(mask[4, :3]) == [1, 1, 0]
  assert mask[5].all() and ids[5, 0] == bos and ids[5, -1] == eos          # truncated to 77


def test_clip_tiny_image_embeds_equal_transformers(tiny):
  config, params, _, golden = tiny
  err = max_error(run(_image_embeds, params, config, golden["pixels"]), golden["image_embeds"])
  assert err < ATOL, err


def test_clip_tiny_text_embeds_equal_transformers(tiny):
  config, params, tokenizer, golden = tiny
  ids, mask = tokenizer(list(golden["texts"]))
  err = max_error(run(_text_embeds, params, config, ids, mask), golden["text_embeds"])
  assert err < ATOL, err


def test_clip_tiny_logits_per_image_equal_transformers(tiny):
  config, params, _, golden = tiny
  logits = run(_logits, params, config, golden["pixels"], golden["input_ids"],
               golden["attention_mask"])
  assert max_error(logits, golden["logits_per_image"]) < ATOL
  from_embeds = clip.logits_from_embeds(golden["image_embeds"], golden["text_embeds"],
                                        params["logit_scale"])
  assert max_error(np.asarray(from_embeds), golden["logits_per_image"]) < ATOL


def test_clip_text_pooling_follows_both_eos_token_id_rules_of_transformers(tiny):
  """eos_token_id == 2 in config.json: the largest id; otherwise the first end token."""
  config, params, _, golden = tiny
  with open(os.path.join(TINY, "config.json")) as f:
    hf = json.load(f)
  hf["text_config"]["eos_token_id"] = 2
  legacy = clip_loading.clip_config_from_hf(hf)
  assert legacy == with_pool(dataclasses.replace(
      config, text=dataclasses.replace(config.text, eos_token_id=2)), "argmax")
  raw_ids, raw_mask = golden["raw_ids"], golden["raw_mask"]
  np.testing.assert_array_equal(clip.pooled_positions(raw_ids, legacy.text), [2, 3, 3])
  np.testing.assert_array_equal(clip.pooled_positions(raw_ids, config.text), [0, 3, 3])
  for pooled_config, label in ((config, "first_eos"), (legacy, "argmax")):
    err = max_error(run(_text_embeds, params, pooled_config, raw_ids, raw_mask),
                    golden[f"raw_text_embeds_{label}"])
    assert err < ATOL, (label, err)


def test_open_clip_tiny_gives_the_hf_params_and_outputs(tiny):
  config, params, _, golden = tiny
  oc_config, oc_params = clip_loading.load_open_clip(OPEN_CLIP)
  assert oc_config == dataclasses.replace(config, text=dataclasses.replace(
      config.text, pool="argmax"))
  assert jax.tree.structure(oc_params) == jax.tree.structure(params)
  jax.tree.map(np.testing.assert_array_equal, oc_params, params)
  err = max_error(run(_text_embeds, oc_params, oc_config, golden["raw_ids"], golden["raw_mask"]),
                  golden["raw_text_embeds_argmax"])
  assert err < ATOL, err
  logits = run(_logits, oc_params, oc_config, golden["pixels"], golden["input_ids"],
               golden["attention_mask"])
  assert max_error(logits, golden["logits_per_image"]) < ATOL


def test_open_clip_without_its_config_needs_head_counts_and_the_activation(tmp_path):
  weights = str(tmp_path / "open_clip_model.safetensors")
  shutil.copy(os.path.join(OPEN_CLIP, "open_clip_model.safetensors"), weights)
  with pytest.raises(ValueError, match="say quick_gelu=True"):
    clip_loading.load_open_clip(weights)
  with pytest.raises(ValueError, match=r"cannot split vision width 32 into heads of 64.*"
                                       r"open_clip_config.json"):
    clip_loading.load_open_clip(str(tmp_path), quick_gelu=True)


def copy_tiny(tmp_path, tensors):
  folder = tmp_path / "clip"
  shutil.copytree(TINY, folder, ignore=shutil.ignore_patterns("*.npz", "model.safetensors"))
  write_safetensors(str(folder / "model.safetensors"), tensors)
  return str(folder)


def test_clip_loader_names_the_file_and_tensor_and_shape_of_each_mismatch(tmp_path):
  tensors = read_weights_file(os.path.join(TINY, "model.safetensors"))
  q = "text_model.encoder.layers.1.self_attn.q_proj.weight"

  missing = {k: v for k, v in tensors.items() if k != q}
  with pytest.raises(CheckpointMismatch) as err:
    clip_loading.load_clip(copy_tiny(tmp_path / "a", missing))
  assert str(err.value) == (f"{tmp_path}/a/clip/model.safetensors: tensor {q!r} is missing "
                            "(expected shape [32, 32])")

  wrong = dict(tensors, **{q: tensors[q][:, :16]})
  with pytest.raises(CheckpointMismatch) as err:
    clip_loading.load_clip(copy_tiny(tmp_path / "b", wrong))
  assert str(err.value) == (f"{tmp_path}/b/clip/model.safetensors: tensor {q!r} has shape "
                            "[32, 16], expected [32, 32]")

  extra = dict(tensors, **{"text_model.pooler.weight": np.zeros((3, 2), np.float32),
                           "text_model.embeddings.position_ids": np.arange(77)})
  with pytest.raises(CheckpointMismatch) as err:
    clip_loading.load_clip(copy_tiny(tmp_path / "c", extra))
  assert str(err.value) == (f"{tmp_path}/c/clip/model.safetensors: unexpected tensor "
                            "'text_model.pooler.weight' (shape [3, 2])")  # position_ids: fine


def test_open_clip_loader_names_the_file_and_tensor_of_a_mismatch(tmp_path):
  tensors = read_weights_file(os.path.join(OPEN_CLIP, "open_clip_model.safetensors"))
  name = "visual.transformer.resblocks.1.attn.in_proj_weight"
  shutil.copy(os.path.join(OPEN_CLIP, "open_clip_config.json"), tmp_path)
  write_safetensors(str(tmp_path / "open_clip_model.safetensors"),
                    dict(tensors, **{name: tensors[name][:64]}))
  with pytest.raises(CheckpointMismatch) as err:
    clip_loading.load_open_clip(str(tmp_path))
  assert str(err.value) == (f"{tmp_path}/open_clip_model.safetensors: tensor {name!r} has "
                            "shape [64, 32], expected [96, 32]")


def test_clip_config_errors_name_the_file_and_field(tmp_path):
  with open(os.path.join(TINY, "config.json")) as f:
    hf = json.load(f)
  with pytest.raises(ValueError, match=r"x/config.json: model_type='vit_mae', expected 'clip'"):
    clip_loading.clip_config_from_hf(dict(hf, model_type="vit_mae"), "x/config.json")
  hf["vision_config"]["hidden_act"] = "relu"
  with pytest.raises(ValueError, match=r"config.json: vision_config.hidden_act='relu' is not "
                                       r"one of \['gelu', 'quick_gelu'\]"):
    clip_loading.clip_config_from_hf(hf)
  with pytest.raises(FileNotFoundError, match="no config.json"):
    clip_loading.load_clip(str(tmp_path))


def test_clip_config_json_gaps_take_the_transformers_defaults():
  """As transformers' CLIPConfig: a *_config_dict, when present, replaces *_config."""
  config = clip_loading.clip_config_from_hf(
      {"model_type": "clip", "text_config": {"hidden_size": 9},
       "text_config_dict": {"eos_token_id": 2}, "vision_config": {"patch_size": 16}})
  assert (config.vision.hidden_size, config.vision.patch_size, config.vision.image_size) == \
      (768, 16, 224)
  assert (config.text.hidden_size, config.text.vocab_size, config.text.pool) == \
      (512, 49408, "argmax")
  assert config.projection_dim == 512
  config = clip_loading.clip_config_from_hf(
      {"model_type": "clip", "text_config": {"hidden_size": 16, "eos_token_id": 2},
       "vision_config": {"patch_size": 16}, "vision_config_dict": {"hidden_act": "gelu"}})
  assert (config.text.hidden_size, config.text.pool) == (16, "argmax")
  assert (config.vision.patch_size, config.vision.activation) == (32, "gelu")


def test_clip_tokenizer_reads_pad_token_from_the_folder(tmp_path):
  shutil.copy(os.path.join(TINY, "tokenizer.json"), tmp_path)
  with open(tmp_path / "special_tokens_map.json", "w") as f:
    json.dump({"pad_token": {"content": "!", "lstrip": False}}, f)
  tokenizer = CLIPTokenizer.from_folder(str(tmp_path), max_length=8)
  ids, mask = tokenizer(["a cat"])
  assert tokenizer.pad_id == tokenizer.token_to_id("!") == 0
  assert list(mask[0]) == [1, 1, 1, 1, 0, 0, 0, 0] and list(ids[0, 4:]) == [0, 0, 0, 0]
  with pytest.raises(ValueError, match="pad token '<pad>' is not in the vocabulary"):
    CLIPTokenizer(str(tmp_path / "tokenizer.json"), pad_token="<pad>")
