"""Image black boxes the project can build offline from real pre-trained weights.

Each is registered in ``BLACK_BOXES`` with the tag ``'image'``: ``blackbox.model`` names
``build(input_size, weights_path=None)``; users register their own frozen classifier the same
way.
"""

from __future__ import annotations

from typing import Callable

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.blackbox.registry import BLACK_BOXES
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
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


def make_image_classifier(model: str, input_size: int,
                          weights_path: str | None = None) -> BlackBox:
  """Returns the frozen image classifier registered as ``model``.

  Args:
    model: a name registered in ``BLACK_BOXES`` with the tag ``'image'``.
    input_size: side ``S`` of the square input (any size; 64-224 are sensible).
    weights_path: weights file; default: the one shipped by the model's package.
  """
  build: Callable[..., BlackBox] = BLACK_BOXES.get(model, "blackbox.model", tag="image")
  return build(input_size, weights_path)
