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
from fedbbpt_jax.models.checkpoint_tensors import CheckpointMismatch
from fedbbpt_jax.models.clip import CLIPConfig, CLIPTextConfig
from fedbbpt_jax.models.clip_loading import load_clip, load_open_clip
from fedbbpt_jax.models.clip_tokenizer import CLIPTokenizer
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
from fedbbpt_jax.models.torch_zip import load_torch_state_dict
from fedbbpt_jax.models.vit import ViTConfig
from fedbbpt_jax.models.vit_loading import load_vit

__all__ = [
    "BertConfig",
    "CLIPConfig",
    "CLIPTextConfig",
    "CLIPTokenizer",
    "CheckpointMismatch",
    "ViTConfig",
    "load_clip",
    "load_open_clip",
    "load_torch_state_dict",
    "load_vit",
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
