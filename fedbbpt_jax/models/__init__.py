"""Pretrained black-box models ported to JAX / Flax."""

from fedbbpt_jax.models.bert import (
    BertConfig,
    BertModel,
    TransformerEmbeddings,
    TransformerEncoder,
    TransformerLayer,
    mean_pool,
    normalized_mean_pool,
)
from fedbbpt_jax.models.efficientnet_lite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EfficientNetLite0,
    EfficientNetLite0Trunk,
    depthwise_conv_grouped,
    depthwise_conv_shifted,
    efficientnet_lite0_variables_from_state_dict,
    imagenet_normalize,
    load_efficientnet_lite0,
    trunk_channels,
    trunk_stride,
    trunk_variables,
)
from fedbbpt_jax.models.minilm import TextTokenizer, load_minilm, read_safetensors
from fedbbpt_jax.models.torch_legacy import (
    default_efficientnet_lite0_path,
    load_legacy_torch_state_dict,
)

__all__ = [
    "BertConfig",
    "BertModel",
    "TextTokenizer",
    "TransformerEmbeddings",
    "TransformerEncoder",
    "TransformerLayer",
    "load_minilm",
    "mean_pool",
    "normalized_mean_pool",
    "read_safetensors",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EfficientNetLite0",
    "EfficientNetLite0Trunk",
    "default_efficientnet_lite0_path",
    "depthwise_conv_grouped",
    "depthwise_conv_shifted",
    "efficientnet_lite0_variables_from_state_dict",
    "imagenet_normalize",
    "load_efficientnet_lite0",
    "load_legacy_torch_state_dict",
    "trunk_channels",
    "trunk_stride",
    "trunk_variables",
]
