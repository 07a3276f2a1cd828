"""Image black boxes the project can build offline from real pre-trained weights.

Each is registered in ``BLACK_BOXES`` with the tag ``'image'``: ``blackbox.model`` names
``build(input_size, weights_path=None)``; users register their own frozen classifier the same
way. An entry also tagged ``'zero_shot'`` (``zero_shot.ZERO_SHOT``; CLIP, ``clip_zoo``)
answers over the classes of a head it is built for:
``build(input_size, weights_path=None, head=ZeroShotHead(...))``.
"""

from __future__ import annotations

from typing import Callable

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.blackbox.registry import BLACK_BOXES
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
from fedbbpt_jax.blackbox.zero_shot import ZERO_SHOT, ZeroShotHead
from fedbbpt_jax.models import imagenet_normalize, load_efficientnet_lite0


def efficientnet_lite0(input_size: int, weights_path: str | None = None) -> SurrogateBlackBox:
  """Frozen ImageNet EfficientNet-Lite0 on ``[N, S, S, 3]`` pixels in [0, 1].

  The black box normalises pixels itself (ImageNet mean/std), as an image API would,
  and returns the 1000 ImageNet logits.
  """
  net, variables = load_efficientnet_lite0(weights_path)
  return SurrogateBlackBox(
      name="efficientnet_lite0", apply_fn=lambda v, x: net.apply(v, imagenet_normalize(x)),
      variables=variables, input_shape=(input_size, input_size, 3), output_size=1000)


BLACK_BOXES.register("efficientnet_lite0", efficientnet_lite0, tags=("image",))


def is_zero_shot(model: str) -> bool:
  """Whether image model ``model`` answers over a zero-shot head's classes."""
  return model in BLACK_BOXES.names(ZERO_SHOT)


def make_image_classifier(model: str, input_size: int, weights_path: str | None = None,
                          head: ZeroShotHead | None = None) -> BlackBox:
  """Returns the frozen image classifier registered as ``model``.

  Args:
    model: a name registered in ``BLACK_BOXES`` with the tag ``'image'``.
    input_size: side ``S`` of the square input (any size; 64-224 are sensible).
    weights_path: weights file; default: the one shipped by the model's package.
    head: the classes and templates of a zero-shot model (``is_zero_shot``); None for
      the others.

  Raises:
    ValueError: a head for a model that has a fixed class list.
  """
  build: Callable[..., BlackBox] = BLACK_BOXES.get(model, "blackbox.model", tag="image")
  if is_zero_shot(model):
    return build(input_size, weights_path, head=head)
  if head is not None:
    raise ValueError(f"image model {model!r} has its own classes; a zero-shot head (class "
                     "names, templates) is for the zero-shot models "
                     f"{list(BLACK_BOXES.names(ZERO_SHOT))}")
  return build(input_size, weights_path)
