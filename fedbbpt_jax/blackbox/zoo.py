"""Black boxes the project can build offline from real pre-trained weights."""

from __future__ import annotations

from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
from fedbbpt_jax.models import imagenet_normalize, load_efficientnet_lite0

IMAGE_MODELS = ("efficientnet_lite0",)


def make_image_classifier(model: str, input_size: int,
                          weights_path: str | None = None) -> SurrogateBlackBox:
  """Returns a frozen ImageNet classifier taking ``[N, S, S, 3]`` pixels in [0, 1].

  The black box normalises pixels itself (ImageNet mean/std), as an image API would,
  and returns the 1000 ImageNet logits.

  Args:
    model: one of ``IMAGE_MODELS``.
    input_size: side ``S`` of the square input (any size; 64-224 are sensible).
    weights_path: weights file; default: the one shipped by the model's package.
  """
  if model != "efficientnet_lite0":
    raise ValueError(f"unknown black-box model {model!r}; choose one of {list(IMAGE_MODELS)}")
  net, variables = load_efficientnet_lite0(weights_path)
  return SurrogateBlackBox(
      name=model, apply_fn=lambda v, x: net.apply(v, imagenet_normalize(x)),
      variables=variables, input_shape=(input_size, input_size, 3), output_size=1000)
