"""Writes the CLIP / ViT / ViT-MAE golden files under tests/data/ from Hugging Face transformers.

Rerun (from the repository root; a separate environment, never the project's; the CPU
build of torch, e.g. from https://download.pytorch.org/whl/cpu):

    python3 -m venv /tmp/golden-venv
    /tmp/golden-venv/bin/pip install torch==2.13.0 transformers==4.57.6 safetensors numpy
    /tmp/golden-venv/bin/python scripts/golden/make_clip_golden.py

It rewrites the folders below (about 1 MB in all) in under a minute on two cores; a rerun
with the same versions writes the same bytes.

Versions that wrote the committed files: torch 2.13.0+cpu, transformers 4.57.6,
tokenizers 0.22.2, safetensors 0.8.0, numpy 2.4.6, Python 3.11 (CPU, float32). The
project and its tests never import torch or transformers: they compare their own loaders
and Flax ports with what this script stored.

What it writes:

* ``tests/data/clip_tiny/``: a tiny random ``CLIPModel`` (vision 32 wide, 2 layers,
  4 heads, patch 8, image 32; text 32 wide, 2 layers, 4 heads, 77 positions; projection
  16) saved with ``save_pretrained`` (``config.json``, ``model.safetensors``), its
  tokenizer (a CLIP-style byte-level BPE built here: ``CLIPTokenizerFast`` converted from
  a vocabulary and merges learned on a few sentences; ``tokenizer.json``,
  ``tokenizer_config.json``, ``special_tokens_map.json``), and ``golden.npz``: inputs
  (NHWC pixels, the texts, the tokenizer's ids / masks, hand-made id rows), image and text
  features, logits, and text features of both pooling rules (``eos_token_id`` the real end
  id, and the legacy ``eos_token_id == 2``).
* ``tests/data/clip_tiny_open_clip/``: the same weights under open_clip's names
  (``open_clip_model.safetensors``, by the mapping of transformers'
  ``convert_clip_original_pytorch_to_hf.py`` run backwards) and ``open_clip_config.json``.
* ``tests/data/vit_mae_tiny/``: a tiny ``ViTMAEForPreTraining`` (encoder 32 wide, 2 layers,
  4 heads, patch 8, image 32, ``mask_ratio=0``; ``mae/``, safetensors) and a tiny
  ``ViTModel`` with pooler and no query/key/value biases (``vit/``, saved as a zip-format
  ``pytorch_model.bin``), and ``golden.npz``: ``last_hidden_state`` with every patch kept
  in order (``noise=arange``), the MAE [CLS] under random noise, and the ViT's.
* ``tests/data/torch_zip/``: ``views.pt``, a zip-format ``torch.save`` of tensor views
  (transposed, offset, sharing one storage) in float32 / float16 / float64 / int64, and
  ``expected.npz``, their values.
* ``tests/data/clip_b16_seeded/``, ``tests/data/vit_mae_b16_seeded/``: the real ViT-B/16
  shapes (CLIP: vision 768 / 12 layers / 12 heads / patch 16 / 224, text 512 / 12 / 8,
  vocabulary 49408, 77 positions, projection 512, ``eos_token_id`` 2 as OpenAI's config;
  MAE: 768 / 12 / 12, patch 16, 224): ``config.json`` and ``golden.npz`` only. Their
  weights are not stored: ``tests/helpers/seeded_weights.py`` regenerates every tensor
  from its name, here and in the tests.

The tiny models' weights also come from ``seeded_weights`` (larger than transformers'
initialisation, so every part of the computation shows in the outputs).
"""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import safetensors.torch
import torch
import transformers
from transformers import (CLIPConfig, CLIPModel, CLIPTokenizerFast, ViTConfig, ViTMAEConfig,
                          ViTMAEForPreTraining, ViTMAEModel, ViTModel)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data")


def _load_seeded_weights():
  path = os.path.join(ROOT, "tests", "helpers", "seeded_weights.py")
  spec = importlib.util.spec_from_file_location("seeded_weights", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


seeded = _load_seeded_weights()

TEXTS = [
    "a photo of a cat",
    "A PHOTO of a Dog!!",
    "an   image\twith  odd   spacing, café & naïve — ÜNÏCÖDÉ",
    "it's what we'd've done; they'll see 42 dogs",
    "",
    " ".join(["a very long caption about a small grey cat sitting on a red mat"] * 8),
]
CORPUS = TEXTS[:4] + [
    "a photo of a small dog", "a blurry photo of the cat", "a photo of many cats and dogs",
    "an image of a red car", "the grey mat", "what is this a photo of",
]
NUM_MERGES = 120
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
  """GPT-2 / CLIP's reversible byte -> printable character table."""
  bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
      list(range(ord("®"), ord("ÿ") + 1))
  cs = bs[:]
  n = 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return dict(zip(bs, map(chr, cs)))


def learn_merges(corpus: list[str], count: int) -> list[tuple[str, str]]:
  """Plain BPE on CLIP's word split (lower-cased), ties broken by the pair itself."""
  byte_char = bytes_to_unicode()
  split = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+""")
  words = collections.Counter()
  for text in corpus:
    for word in split.findall(text.lower()):
      chars = [byte_char[b] for b in word.encode()]
      words[tuple(chars[:-1] + [chars[-1] + "</w>"])] += 1
  merges = []
  for _ in range(count):
    pairs = collections.Counter()
    for word, n in words.items():
      for pair in zip(word, word[1:]):
        pairs[pair] += n
    if not pairs:
      break
    best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
    merges.append(best)
    merged = collections.Counter()
    for word, n in words.items():
      out, i = [], 0
      while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == best:
          out.append(word[i] + word[i + 1])
          i += 2
        else:
          out.append(word[i])
          i += 1
      merged[tuple(out)] += n
    words = merged
  return merges


def build_tokenizer(folder: str) -> CLIPTokenizerFast:
  chars = list(bytes_to_unicode().values())
  merges = learn_merges(CORPUS, NUM_MERGES)
  vocab = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [BOS, EOS]
  with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "vocab.json"), "w") as f:
      json.dump({token: i for i, token in enumerate(vocab)}, f)
    with open(os.path.join(tmp, "merges.txt"), "w") as f:
      f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = CLIPTokenizerFast(vocab_file=os.path.join(tmp, "vocab.json"),
                                  merges_file=os.path.join(tmp, "merges.txt"),
                                  model_max_length=77)
  tokenizer.save_pretrained(folder)
  for name in ("vocab.json", "merges.txt"):  # tokenizer.json holds both
    if os.path.exists(os.path.join(folder, name)):
      os.remove(os.path.join(folder, name))
  return tokenizer


def seed_model(model: torch.nn.Module, skip: tuple[str, ...] = ()) -> None:
  """Replaces every tensor of ``model``'s state dict (but ``skip`` prefixes) by its seeded value."""
  state = model.state_dict()
  new = {name: torch.from_numpy(seeded.seeded_tensor(name, tuple(t.shape)))
         if not name.startswith(skip) else t for name, t in state.items()}
  model.load_state_dict(new, strict=True)


def nchw(pixels: np.ndarray) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))


def f32(t: torch.Tensor) -> np.ndarray:
  return t.detach().numpy().astype(np.float32)


def clip_outputs(model: CLIPModel, pixels: np.ndarray, ids: np.ndarray, mask: np.ndarray,
                 raw_ids: np.ndarray, raw_mask: np.ndarray, eos_token_id: int) -> dict:
  with torch.no_grad():
    out = model(input_ids=torch.from_numpy(ids).long(), pixel_values=nchw(pixels),
                attention_mask=torch.from_numpy(mask).long())
    result = {
        "image_embeds": f32(model.get_image_features(pixel_values=nchw(pixels))),
        "text_embeds": f32(model.get_text_features(input_ids=torch.from_numpy(ids).long(),
                                                   attention_mask=torch.from_numpy(mask).long())),
        "logits_per_image": f32(out.logits_per_image),
    }
    for label, eos in (("first_eos", eos_token_id), ("argmax", 2)):
      model.text_model.eos_token_id = eos  # what CLIPTextTransformer.forward reads
      result[f"raw_text_embeds_{label}"] = f32(model.get_text_features(
          input_ids=torch.from_numpy(raw_ids).long(),
          attention_mask=torch.from_numpy(raw_mask).long()))
    model.text_model.eos_token_id = eos_token_id
  return result


def hf_to_open_clip(state: dict[str, torch.Tensor], vision_layers: int,
                    text_layers: int) -> dict[str, torch.Tensor]:
  """open_clip names of a ``CLIPModel`` state dict (convert_clip_original_pytorch_to_hf.py
  backwards: fused in_proj = [q; k; v], projections as ``x @ proj`` matrices)."""
  out = {
      "visual.conv1.weight": state["vision_model.embeddings.patch_embedding.weight"],
      "visual.class_embedding": state["vision_model.embeddings.class_embedding"],
      "visual.positional_embedding": state["vision_model.embeddings.position_embedding.weight"],
      "visual.proj": state["visual_projection.weight"].T,
      "token_embedding.weight": state["text_model.embeddings.token_embedding.weight"],
      "positional_embedding": state["text_model.embeddings.position_embedding.weight"],
      "text_projection": state["text_projection.weight"].T,
      "logit_scale": state["logit_scale"],
  }
  norms = {"visual.ln_pre": "vision_model.pre_layrnorm",
           "visual.ln_post": "vision_model.post_layernorm",
           "ln_final": "text_model.final_layer_norm"}
  for prefix, hf_prefix, layers in (("visual.", "vision_model", vision_layers),
                                    ("", "text_model", text_layers)):
    for i in range(layers):
      oc, hf = f"{prefix}transformer.resblocks.{i}", f"{hf_prefix}.encoder.layers.{i}"
      norms[f"{oc}.ln_1"] = f"{hf}.layer_norm1"
      norms[f"{oc}.ln_2"] = f"{hf}.layer_norm2"
      for kind in ("weight", "bias"):
        out[f"{oc}.attn.in_proj_{kind}"] = torch.cat(
            [state[f"{hf}.self_attn.{n}_proj.{kind}"] for n in "qkv"], 0)
        for oc_part, hf_part in (("attn.out_proj", "self_attn.out_proj"), ("mlp.c_fc", "mlp.fc1"),
                                 ("mlp.c_proj", "mlp.fc2")):
          out[f"{oc}.{oc_part}.{kind}"] = state[f"{hf}.{hf_part}.{kind}"]
  for oc, hf in norms.items():
    out[f"{oc}.weight"], out[f"{oc}.bias"] = state[f"{hf}.weight"], state[f"{hf}.bias"]
  return {k: v.contiguous() for k, v in out.items()}


def fresh(folder: str) -> str:
  shutil.rmtree(folder, ignore_errors=True)
  os.makedirs(folder)
  return folder


def make_clip_tiny(rng: np.random.Generator) -> None:
  folder = fresh(os.path.join(DATA, "clip_tiny"))
  tokenizer = build_tokenizer(folder)
  eos, bos = tokenizer.eos_token_id, tokenizer.bos_token_id
  config = CLIPConfig(
      text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=48,
                       num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                       bos_token_id=bos, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id),
      vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, image_size=32, patch_size=8),
      projection_dim=16)
  model = CLIPModel(config).eval()
  seed_model(model)
  model.save_pretrained(folder, safe_serialization=True)

  encoded = tokenizer(TEXTS, padding="max_length", max_length=77, truncation=True)
  ids = np.asarray(encoded["input_ids"], np.int32)
  mask = np.asarray(encoded["attention_mask"], np.int32)
  pixels = rng.standard_normal((3, 32, 32, 3), dtype=np.float32)
  # Rows the tokenizer never makes: neither start nor end token (legacy pooling takes the
  # largest id, the new rule position 0); padding with 0 (open_clip) and with the end token.
  raw_ids = np.zeros((3, 12), np.int32)
  raw_ids[0, :4] = [300, 17, 401, 9]
  raw_ids[1, :4] = [bos, 12, 40, eos]
  raw_ids[2, :] = eos
  raw_ids[2, :3] = [bos, 7, 8]
  raw_mask = np.asarray([[1] * 4 + [0] * 8] * 3, np.int32)
  golden = clip_outputs(model, pixels, ids, mask, raw_ids, raw_mask, eos)
  np.savez(os.path.join(folder, "golden.npz"), pixels=pixels, texts=np.asarray(TEXTS),
           input_ids=ids, attention_mask=mask, raw_ids=raw_ids, raw_mask=raw_mask, **golden)

  oc_folder = fresh(os.path.join(DATA, "clip_tiny_open_clip"))
  oc_state = hf_to_open_clip(model.state_dict(), 2, 2)
  safetensors.torch.save_file(oc_state, os.path.join(oc_folder, "open_clip_model.safetensors"))
  model_cfg = {"embed_dim": 16, "quick_gelu": True,
               "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8,
                              "head_width": 8, "mlp_ratio": 2.0},
               "text_cfg": {"context_length": 77, "vocab_size": len(tokenizer), "width": 32,
                            "heads": 4, "layers": 2, "mlp_ratio": 1.5}}
  with open(os.path.join(oc_folder, "open_clip_config.json"), "w") as f:
    json.dump({"model_cfg": model_cfg}, f, indent=2)


def make_vit_tiny(rng: np.random.Generator) -> None:
  folder = fresh(os.path.join(DATA, "vit_mae_tiny"))
  pixels = rng.standard_normal((2, 32, 32, 3), dtype=np.float32)
  in_order = torch.arange(16, dtype=torch.float32).expand(2, 16)
  shuffled = torch.from_numpy(rng.random((2, 16), dtype=np.float32))

  mae_config = ViTMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                            intermediate_size=64, image_size=32, patch_size=8, mask_ratio=0.0,
                            decoder_hidden_size=16, decoder_num_hidden_layers=1,
                            decoder_num_attention_heads=2, decoder_intermediate_size=32)
  torch.manual_seed(0)
  mae = ViTMAEForPreTraining(mae_config).eval()
  seed_model(mae, skip=("decoder.",))
  mae.save_pretrained(os.path.join(folder, "mae"), safe_serialization=True)

  vit_config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=48, image_size=32, patch_size=8, qkv_bias=False)
  vit = ViTModel(vit_config, add_pooling_layer=True).eval()
  seed_model(vit)
  vit.save_pretrained(os.path.join(folder, "vit"), safe_serialization=False)  # torch zip file

  with torch.no_grad():
    encoder: ViTMAEModel = mae.vit
    golden = {
        "mae_hidden": f32(encoder(nchw(pixels), noise=in_order).last_hidden_state),
        "mae_cls_shuffled": f32(encoder(nchw(pixels), noise=shuffled).last_hidden_state[:, 0]),
        "vit_hidden": f32(vit(nchw(pixels)).last_hidden_state),
    }
  np.savez(os.path.join(folder, "golden.npz"), pixels=pixels, **golden)


B16_PIXELS_SEED = 224  # the 224 x 224 inputs are regenerated, not stored (1.2 MB)


def b16_pixels() -> np.ndarray:
  return np.random.default_rng(B16_PIXELS_SEED).standard_normal((2, 224, 224, 3),
                                                                 dtype=np.float32)


def make_seeded_b16(rng: np.random.Generator) -> None:
  """The real ViT-B/16 shapes with seeded weights: config.json and outputs only."""
  folder = fresh(os.path.join(DATA, "clip_b16_seeded"))
  config = CLIPConfig(
      text_config=dict(vocab_size=49408, hidden_size=512, intermediate_size=2048,
                       num_hidden_layers=12, num_attention_heads=8, max_position_embeddings=77,
                       bos_token_id=0, eos_token_id=2, pad_token_id=1, hidden_act="quick_gelu"),
      vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                         num_attention_heads=12, image_size=224, patch_size=16,
                         hidden_act="quick_gelu"),
      projection_dim=512)
  config.save_pretrained(folder)
  model = CLIPModel(config).eval()
  seed_model(model)
  pixels = b16_pixels()
  ids = np.full((3, 77), 49407, np.int32)
  mask = np.zeros((3, 77), np.int32)
  for row, length in enumerate((9, 20, 77)):
    ids[row, 0] = 49406
    ids[row, 1:length - 1] = rng.integers(0, 49406, length - 2)
    ids[row, length - 1] = 49407
    mask[row, :length] = 1
  golden = clip_outputs(model, pixels, ids, mask, ids, mask, 49407)
  np.savez(os.path.join(folder, "golden.npz"), pixels_seed=np.int64(B16_PIXELS_SEED),
           input_ids=ids, attention_mask=mask, **golden)

  folder = fresh(os.path.join(DATA, "vit_mae_b16_seeded"))
  mae_config = ViTMAEConfig(mask_ratio=0.0)  # ViT-B/16 at 224 (the defaults)
  mae_config.save_pretrained(folder)
  mae = ViTMAEModel(mae_config).eval()
  seed_model(mae)
  with torch.no_grad():
    hidden = mae(nchw(pixels), noise=torch.arange(196, dtype=torch.float32).expand(2, 196))
  np.savez(os.path.join(folder, "golden.npz"), pixels_seed=np.int64(B16_PIXELS_SEED),
           hidden_first_tokens=f32(hidden.last_hidden_state[:, :6]),
           hidden_mean=f32(hidden.last_hidden_state.mean(1)))


def make_torch_zip_cases() -> None:
  """A zip-format torch file whose tensors are views (transposed, offset, shared storage)
  in several dtypes, and the arrays they hold."""
  folder = fresh(os.path.join(DATA, "torch_zip"))
  base = torch.arange(12, dtype=torch.float32) * 0.5
  state = collections.OrderedDict(
      transposed=base.reshape(3, 4).T, offset=base[3:7], shared=base.reshape(2, 6),
      half=torch.linspace(-2, 2, 5).half(), long=torch.arange(4) - 2,
      double=torch.tensor([[1.25, -3.5]], dtype=torch.float64))
  torch.save(state, os.path.join(folder, "views.pt"))
  np.savez(os.path.join(folder, "expected.npz"), **{k: v.numpy() for k, v in state.items()})


def main() -> None:
  torch.set_num_threads(2)
  print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"numpy {np.__version__}", file=sys.stderr)
  make_clip_tiny(np.random.default_rng(0))
  make_vit_tiny(np.random.default_rng(1))
  make_seeded_b16(np.random.default_rng(2))
  make_torch_zip_cases()


if __name__ == "__main__":
  main()
