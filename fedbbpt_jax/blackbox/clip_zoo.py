"""CLIP as a black box: a zero-shot image classifier over a head's classes (``'clip'``).

``blackbox.model='clip'`` (``BLACK_BOXES``, tags ``'image'`` and ``'zero_shot'``): the
provider holds CLIP and a zero-shot head (``zero_shot.ZeroShotHead``: the dataset's class
names and the templates); a query is a batch of pixels in [0, 1], NHWC, at the vision
tower's input size (224 for ViT-B/16), and the answer is, for every image and class::

    exp(logit_scale) * cos(image_features(normalise_CLIP(pixels)), text_features[class])

as BlackVIP's ``CustomCLIP`` and CoOp's zero-shot CLIP compute it. The black box
normalises the pixels with CLIP's mean and std itself, as an image API would. The text
features are computed once, when the black box is built (``head_text_features``): per
template, the class prompts' features L2-normalised; averaged over the templates and
normalised again. Only the vision tower, its projection, ``logit_scale`` and the head's
``[classes, E]`` features are kept.

Weights (``blackbox.weights_path``, the service's ``--weights_path``): a local Hugging Face
CLIP folder (``openai/clip-vit-base-patch16``: ``config.json``, ``model.safetensors`` or
``pytorch_model.bin``, ``tokenizer.json``; ``models.clip_loading.load_clip``), or open_clip
weights (a file, or a folder without ``config.json``; ``load_open_clip``) with CLIP's
``tokenizer.json`` beside them.

Example:
    >>> head = ZeroShotHead(("cat", "dog"), templates_from_spec("blackvip:oxford_pets"))
    >>> bb = make_image_classifier("clip", 224, "/models/clip-vit-base-patch16", head=head)
    >>> logits = bb(pixels)          # [N, 2]
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox.registry import BLACK_BOXES
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
from fedbbpt_jax.blackbox.zero_shot import ZERO_SHOT, ZeroShotHead
from fedbbpt_jax.models import clip
from fedbbpt_jax.models.clip_loading import load_clip, load_open_clip
from fedbbpt_jax.models.clip_tokenizer import CLIPTokenizer

NAME = "clip"
TEXT_CHUNK = 256            # class prompts embedded per compiled call (the last one padded)
VISION_KEYS = ("vision", "visual_projection", "logit_scale")
_TEXT_EMBEDS = jax.jit(clip.text_embeds, static_argnums=1)


def load_clip_weights(path: str) -> tuple[clip.CLIPConfig, dict, CLIPTokenizer]:
  """``(config, params, tokenizer)`` of a Hugging Face CLIP folder or open_clip weights.

  Raises:
    FileNotFoundError: no such path, or open_clip weights without ``tokenizer.json``.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: no such file or folder (CLIP's weights: a Hugging Face "
                            "CLIP folder such as openai/clip-vit-base-patch16, or open_clip "
                            "weights with tokenizer.json beside them)")
  if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
    return load_clip(path)
  config, params = load_open_clip(path)
  folder = path if os.path.isdir(path) else os.path.dirname(path)
  if not os.path.isfile(os.path.join(folder, "tokenizer.json")):
    raise FileNotFoundError(f"{folder}: open_clip weights carry no tokenizer; put CLIP's "
                            "tokenizer.json (e.g. from openai/clip-vit-base-patch16) beside them")
  return config, params, CLIPTokenizer.from_folder(folder, config.text.max_positions)


def head_text_features(params: dict, config: clip.CLIPConfig, tokenizer: CLIPTokenizer,
                       head: ZeroShotHead) -> np.ndarray:
  """The head's ``[classes, E]`` unit text features (module docstring), float32.

  Prompts are embedded ``TEXT_CHUNK`` at a time, the last chunk padded with copies of its
  first row, so any number of classes compiles one program.
  """
  per_template = []
  for texts in head.prompts():
    ids, mask = tokenizer(texts)
    rows = []
    for start in range(0, len(texts), TEXT_CHUNK):
      chunk_ids, chunk_mask = ids[start:start + TEXT_CHUNK], mask[start:start + TEXT_CHUNK]
      n = len(chunk_ids)
      if n < TEXT_CHUNK and len(texts) > TEXT_CHUNK:
        pad = TEXT_CHUNK - n
        chunk_ids = np.concatenate([chunk_ids, np.repeat(chunk_ids[:1], pad, 0)])
        chunk_mask = np.concatenate([chunk_mask, np.repeat(chunk_mask[:1], pad, 0)])
      rows.append(np.asarray(_TEXT_EMBEDS(params, config, chunk_ids, chunk_mask))[:n])
    features = np.concatenate(rows).astype(np.float64)
    per_template.append(features / np.linalg.norm(features, axis=-1, keepdims=True))
  mean = np.mean(per_template, axis=0)
  return (mean / np.linalg.norm(mean, axis=-1, keepdims=True)).astype(np.float32)


class ZeroShotCLIP(SurrogateBlackBox):
  """CLIP answering logits over ``head``'s classes (module docstring).

  Attributes:
    head: the zero-shot head (class names, templates).
    config: the CLIP architecture.
  """

  def __init__(self, config: clip.CLIPConfig, params: dict, text_features: np.ndarray,
               head: ZeroShotHead, name: str = NAME):
    side = config.vision.image_size

    def apply_fn(variables: Any, pixels: jnp.ndarray) -> jnp.ndarray:
      image = clip.image_embeds(variables["params"], config,
                                (pixels - jnp.asarray(clip.CLIP_MEAN)) / jnp.asarray(clip.CLIP_STD))
      return clip.logits_from_embeds(image, variables["text"], variables["params"]["logit_scale"])

    vision = {key: params[key] for key in VISION_KEYS}
    super().__init__(name, apply_fn, {"params": vision, "text": text_features},
                     (side, side, 3), head.num_classes)
    self.head = head
    self.config = config


def zero_shot_clip(input_size: int, weights_path: str | None = None,
                   head: ZeroShotHead | None = None) -> ZeroShotCLIP:
  """The ``'clip'`` entry: CLIP at ``weights_path`` with ``head``'s text features.

  Raises:
    ValueError: no weights, no head, or ``input_size`` other than the vision tower's.
    FileNotFoundError: ``weights_path`` does not hold CLIP weights.
  """
  if not weights_path:
    raise ValueError(f"black box {NAME!r} needs its weights: set config.blackbox.weights_path "
                     "(the service: --weights_path) to a local Hugging Face CLIP folder such as "
                     "openai/clip-vit-base-patch16, or to open_clip weights")
  if head is None:
    raise ValueError(f"black box {NAME!r} answers over a zero-shot head: it needs the class "
                     "names and templates (a dataset with class_names and "
                     "config.blackbox.templates; the service: --class_names and --templates)")
  config, params, tokenizer = load_clip_weights(weights_path)
  side = config.vision.image_size
  if int(input_size) != side:
    raise ValueError(f"config.blackbox.input_size={input_size}: the CLIP in {weights_path} "
                     f"takes {side}x{side} pixels (its vision tower's image_size); set "
                     f"config.blackbox.input_size={side} (the service: --input_size={side})")
  return ZeroShotCLIP(config, params, head_text_features(params, config, tokenizer, head), head)


BLACK_BOXES.register(NAME, zero_shot_clip, tags=("image", ZERO_SHOT),
                     reads={"blackbox.templates": ""})
