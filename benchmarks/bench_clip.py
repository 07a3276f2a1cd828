"""CLIP ViT-B/16 as the black box and BlackVIP's coordinator: forward throughput, one ZO step.

Seeded random weights at the real shapes (no download): OpenAI CLIP ViT-B/16 (the
``openai/clip-vit-base-patch16`` configuration) and the MAE ViT-B/16 encoder
(``facebook/vit-mae-base``), every tensor drawn from a generator seeded by its name
(``seeded_tensor``: layer-norm weights near 1, biases near 0, matrices scaled by
``1 / sqrt(fan_in)``) and converted by the Hugging Face loaders' own rules. The cost does
not depend on the values.

* **Forward**: the CLIP black box (CLIP normalisation, vision tower, projection, cosine with
  a zero-shot head of 37 classes) on ``[B, 224, 224, 3]`` pixels, images per second.
* **Step**: one Fed-BBPT local step with BlackVIP's coordinator, as a client runs it: the
  MAE ViT-B/16 [CLS] of the minibatch (once), the decoder for every SPSA-GC candidate
  (``SP_AVG = 5`` directions: 10 candidates), one CLIP call of ``10 x B`` prompted images,
  the estimate and the update. ``step / forward`` divides the step's time by a bare CLIP
  forward of the same ``10 x B`` images: the overhead of encoder, decoder and estimator
  (also given against ``10 x B`` images at the batch-``B`` forward rate: on CPUs a
  40-image call can run slower per image than a batch of 8).

Usage::

    python benchmarks/bench_clip.py [--batch 8] [--step-batch 4] [--min-seconds 3]
"""

from __future__ import annotations

import argparse
import functools
import math
import time
import zlib

import fedbbpt_jax  # noqa: F401  (before jax: the package's JAX settings, frozen weights as arguments)
import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.clip_zoo import ZeroShotCLIP
from fedbbpt_jax.blackbox.zero_shot import ZeroShotHead
from fedbbpt_jax.data import ClientData
from fedbbpt_jax.federated import make_client_optimizer, make_local_update
from fedbbpt_jax.models.checkpoint_tensors import expected_shapes
from fedbbpt_jax.models.clip_loading import clip_config_from_hf, clip_params_from_hf, hf_clip_rules
from fedbbpt_jax.models.vit_loading import hf_vit_rules, vit_config_from_hf, vit_params_from_hf
from fedbbpt_jax.prompts import make_prompt
from fedbbpt_jax.prompts.encoders import ENCODERS, vit_cls_encoder
from fedbbpt_jax.tasks import VisualReprogramming
from fedbbpt_jax.zo import HParams, make_estimator

CLIP_B16 = {  # openai/clip-vit-base-patch16's config.json (the fields that differ from defaults)
    "model_type": "clip", "projection_dim": 512,
    "text_config": {"hidden_size": 512, "intermediate_size": 2048, "num_attention_heads": 8,
                    "num_hidden_layers": 12, "max_position_embeddings": 77, "vocab_size": 49408,
                    "eos_token_id": 2, "hidden_act": "quick_gelu"},
    "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_attention_heads": 12,
                      "num_hidden_layers": 12, "image_size": 224, "patch_size": 16,
                      "hidden_act": "quick_gelu"}}
MAE_B16 = {"model_type": "vit_mae"}   # facebook/vit-mae-base: transformers' ViT-B/16 defaults
CLASSES = 37                          # Oxford Pets
SP_AVG = 5


def seeded_tensor(name: str, shape: tuple[int, ...]) -> np.ndarray:
  """A float32 tensor drawn from a generator seeded by ``name`` (module docstring)."""
  n = np.random.default_rng(zlib.crc32(name.encode())).standard_normal(shape, dtype=np.float32)
  if name == "logit_scale":
    return np.asarray(np.log(1 / 0.07), np.float32)
  if "norm" in name:
    return (1.0 + 0.1 * n) if name.endswith(".weight") else 0.1 * n
  if name.endswith(".bias"):
    return 0.1 * n
  if len(shape) == 4 or (len(shape) == 2 and "embed" not in name and name.endswith(".weight")):
    return n / np.float32(math.sqrt(math.prod(shape[1:])))   # convolution / linear: fan-in
  return 0.5 * n                                               # embeddings, class token


def seeded(rules) -> dict[str, np.ndarray]:
  return {name: seeded_tensor(name, shape) for name, shape in expected_shapes(rules).items()}


def clip_black_box(classes: int = CLASSES) -> ZeroShotCLIP:
  """CLIP ViT-B/16 on seeded weights, a zero-shot head of random unit text features."""
  config = clip_config_from_hf(CLIP_B16)
  params = clip_params_from_hf(seeded(hf_clip_rules(config)), config, "seeded ViT-B/16")
  text = np.random.default_rng(0).standard_normal((classes, config.projection_dim))
  text = (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32)
  head = ZeroShotHead(tuple(f"class_{i}" for i in range(classes)), ("a photo of a {}.",))
  return ZeroShotCLIP(config, params, text, head)


def mae_encoder_name() -> str:
  """Registers the seeded MAE ViT-B/16 as BlackVIP's encoder ``'bench_mae'``."""
  config = vit_config_from_hf(MAE_B16)
  params = vit_params_from_hf(seeded(hf_vit_rules(config)), config, "seeded MAE ViT-B/16")
  ENCODERS.register("bench_mae", functools.partial(vit_cls_encoder,
                                                   load=lambda folder: (config, params)),
                    overwrite=True)
  return "bench_mae"


def best_seconds(fn, repeats: int, min_seconds: float) -> float:
  """Smallest wall time of ``fn()`` over at least ``repeats`` calls and ``min_seconds``
  (after one warm-up call, which compiles)."""
  jax.block_until_ready(fn())
  best, calls, start = float("inf"), 0, time.perf_counter()
  while calls < repeats or time.perf_counter() - start < min_seconds:
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    best = min(best, time.perf_counter() - t0)
    calls += 1
  return best


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=8, help="images per forward")
  parser.add_argument("--step-batch", type=int, default=4, help="minibatch of the local step")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--min-seconds", type=float, default=3.0)
  args = parser.parse_args()

  blackbox = clip_black_box()
  forward = jax.jit(blackbox)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(size=(args.batch, 224, 224, 3)), jnp.float32)
  t0 = time.perf_counter()
  jax.block_until_ready(forward(x))
  first = time.perf_counter() - t0
  fwd = best_seconds(lambda: forward(x), args.repeats, args.min_seconds)
  print(f"device: {jax.devices()[0]} x{jax.device_count()}  dtype: float32  weights: seeded")
  print(f"CLIP ViT-B/16 forward, batch {args.batch}: {fwd * 1e3:.0f} ms  "
        f"{args.batch / fwd:.1f} img/s  (first call, compile included: {first:.1f} s)")

  prompt = make_prompt("blackvip", 224, 224, epsilon=1.0, bn="example",
                       encoder=mae_encoder_name(), encoder_weights="seeded")
  task = VisualReprogramming(blackbox, prompt, 224, jnp.eye(CLASSES), 0.0, 0.0)
  estimator = make_estimator("spsa_gc", SP_AVG)
  b = args.step_batch
  local = jax.jit(make_local_update(task.candidate_losses, estimator,
                                    make_client_optimizer("sgd"), num_steps=1, batch_size=b))
  data = ClientData(x=jnp.asarray(rng.integers(0, 256, (2 * b, 224, 224, 3), np.uint8)),
                    y=jnp.asarray(rng.integers(0, CLASSES, (2 * b,)), jnp.int32),
                    num_examples=jnp.asarray(2 * b, jnp.int32))
  hp = HParams.create(lr=0.01, sigma=0.01, lr_offset=1.0, lr_decay=0.4, sigma_decay=0.1,
                      momentum=0.9)
  params = prompt.init(jax.random.key(0))
  step_fn = lambda: local(params, data, jax.random.key(1), hp, 0).delta
  t0 = time.perf_counter()
  jax.block_until_ready(step_fn())
  step_first = time.perf_counter() - t0
  step = best_seconds(step_fn, args.repeats, args.min_seconds)
  images = estimator.num_candidates * b
  xs = jnp.asarray(rng.uniform(size=(images, 224, 224, 3)), jnp.float32)
  bare = best_seconds(lambda: forward(xs), args.repeats, args.min_seconds)
  print(f"Fed-BBPT local step, BlackVIP coordinator (MAE ViT-B/16 encoder, 9,920-float decoder), "
        f"SPSA-GC {SP_AVG} directions, minibatch {b}: {estimator.num_candidates} candidates x "
        f"{b} = {images} CLIP images per step")
  at_batch = images * fwd / args.batch
  print(f"  step {step:.2f} s  bare CLIP forward of {images} images {bare:.2f} s  "
        f"step / forward {step / bare:.2f}  (first step, compile included: {step_first:.1f} s)")
  print(f"  step / ({images} images at the batch-{args.batch} forward rate, {at_batch:.2f} s) "
        f"{step / at_batch:.2f}")


if __name__ == "__main__":
  main()
