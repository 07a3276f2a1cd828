"""Pretrained black-box models ported to JAX / Flax."""

from fedbbpt_jax.models.efficientnet_lite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EfficientNetLite0,
    depthwise_conv_grouped,
    depthwise_conv_shifted,
    efficientnet_lite0_variables_from_state_dict,
    imagenet_normalize,
    load_efficientnet_lite0,
)
from fedbbpt_jax.models.torch_legacy import (
    default_efficientnet_lite0_path,
    load_legacy_torch_state_dict,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EfficientNetLite0",
    "default_efficientnet_lite0_path",
    "depthwise_conv_grouped",
    "depthwise_conv_shifted",
    "efficientnet_lite0_variables_from_state_dict",
    "imagenet_normalize",
    "load_efficientnet_lite0",
    "load_legacy_torch_state_dict",
]
