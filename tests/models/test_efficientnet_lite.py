"""Tests for the torch-free EfficientNet-Lite0 port (reader, model, depthwise)."""

from __future__ import annotations

import collections
import os
import pickle
import sys
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from skimage.transform import resize

from fedbbpt_jax.models import (
    EfficientNetLite0,
    EfficientNetLite0Trunk,
    default_efficientnet_lite0_path,
    depthwise_conv_grouped,
    depthwise_conv_shifted,
    efficientnet_lite0_variables_from_state_dict,
    imagenet_normalize,
    load_legacy_torch_state_dict,
    trunk_channels,
    trunk_stride,
    trunk_variables,
)

# Reference top-1 class and softmax probability from the PyTorch model
# (torch 2.13, eval mode, float32) on skimage.transform.resize(img, (224, 224)).
REFERENCE_PREDICTIONS = {
    "chelsea": (285, 0.7766),
    "coffee": (967, 0.8239),
    "rocket": (657, 0.2767),
}


@pytest.fixture(scope="module")
def checkpoint_path() -> str:
    return default_efficientnet_lite0_path()


@pytest.fixture(scope="module")
def state_dict(checkpoint_path: str) -> dict[str, np.ndarray]:
    return load_legacy_torch_state_dict(checkpoint_path)


@pytest.fixture(scope="module")
def variables(state_dict: dict[str, np.ndarray]) -> dict[str, Any]:
    return efficientnet_lite0_variables_from_state_dict(state_dict)


def test_reader_returns_all_tensors(state_dict: dict[str, np.ndarray]) -> None:
    assert len(state_dict) == 296
    assert sum(v.size for v in state_dict.values()) == 4_694_073
    dtypes = [v.dtype for v in state_dict.values()]
    assert dtypes.count(np.dtype(np.float32)) == 247
    assert dtypes.count(np.dtype(np.int64)) == 49
    assert state_dict["_fc.weight"].shape == (1000, 1280)
    assert state_dict["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert all(v.flags.c_contiguous for v in state_dict.values())


def _write_legacy_file(
    path: Any, storages: dict[str, np.ndarray], tensors: dict[str, tuple[str, int, tuple, tuple]]
) -> None:
    """Writes a tiny legacy-format torch file (stand-in torch modules in sys.modules)."""
    torch_mod = types.ModuleType("torch")
    utils_mod = types.ModuleType("torch._utils")
    storage_types = {
        np.dtype(np.float32): type("FloatStorage", (), {"__module__": "torch"}),
        np.dtype(np.int64): type("LongStorage", (), {"__module__": "torch"}),
    }
    for cls in storage_types.values():
        setattr(torch_mod, cls.__name__, cls)

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("only used for pickling")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_mod._rebuild_tensor_v2 = _rebuild_tensor_v2

    class StorageId:
        def __init__(self, key: str) -> None:
            self.key = key

    class Tensor:
        def __init__(self, key: str, offset: int, size: tuple, stride: tuple) -> None:
            self.args = (StorageId(key), offset, size, stride, False, collections.OrderedDict())

        def __reduce__(self) -> tuple:
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            if isinstance(obj, StorageId):
                data = storages[obj.key]
                return ("storage", storage_types[data.dtype], obj.key, "cpu", data.size)
            return None

    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch_mod, utils_mod
    try:
        with open(path, "wb") as f:
            pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
            pickle.dump(1001, f, protocol=2)
            pickle.dump({"protocol_version": 1001, "little_endian": True}, f, protocol=2)
            state = collections.OrderedDict((n, Tensor(*spec)) for n, spec in tensors.items())
            Pickler(f, protocol=2).dump(state)
            pickle.dump(list(storages), f, protocol=2)
            for data in storages.values():
                f.write(np.int64(data.size).tobytes())
                f.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def test_reader_honours_offset_and_strides(tmp_path: Any) -> None:
    base = np.arange(30, dtype=np.float32)
    path = tmp_path / "synthetic.pth"
    _write_legacy_file(
        path,
        {"0": base, "1": np.array([7], np.int64)},
        {
            "transposed": ("0", 2, (3, 4), (1, 3)),  # [4, 3] block at offset 2, transposed
            "contiguous": ("0", 0, (2, 5), (5, 1)),
            "count": ("1", 0, (), ()),
        },
    )
    got = load_legacy_torch_state_dict(path)
    np.testing.assert_array_equal(got["transposed"], base[2:14].reshape(4, 3).T)
    assert got["transposed"].flags.c_contiguous
    np.testing.assert_array_equal(got["contiguous"], base[:10].reshape(2, 5))
    assert got["count"].dtype == np.int64 and int(got["count"]) == 7


@pytest.mark.parametrize("name", sorted(REFERENCE_PREDICTIONS))
def test_imagenet_predictions_match_torch(name: str, variables: dict[str, Any]) -> None:
    image = resize(getattr(skimage.data, name)(), (224, 224))
    x = imagenet_normalize(image[None])
    logits = _forward(variables, x)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1))[0]
    want_class, want_prob = REFERENCE_PREDICTIONS[name]
    assert int(np.argmax(probs)) == want_class
    assert abs(float(probs[want_class]) - want_prob) < 0.01


def test_other_resolutions_run(variables: dict[str, Any]) -> None:
    for size in (64, 33):
        logits = _forward(variables, jnp.zeros((2, size, size, 3), jnp.float32))
        assert logits.shape == (2, 1000)
        assert bool(jnp.isfinite(logits).all())


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [14, 15])
def test_shifted_depthwise_matches_grouped_conv(kernel: int, stride: int, size: int) -> None:
    rng = np.random.default_rng(kernel * 100 + stride * 10 + size)
    x = jnp.asarray(rng.normal(size=(2, size, size + 3, 24)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(kernel, kernel, 24)), jnp.float32)
    got = jax.jit(depthwise_conv_shifted, static_argnums=2)(x, w, stride)
    want = jax.jit(depthwise_conv_grouped, static_argnums=2)(x, w, stride)
    assert got.shape == want.shape == (2, -(-size // stride), -(-(size + 3) // stride), 24)
    assert float(jnp.max(jnp.abs(got - want))) < 1e-5


def test_missing_key_and_bad_shape_are_reported(state_dict: dict[str, np.ndarray]) -> None:
    missing = dict(state_dict)
    del missing["_blocks.3._depthwise_conv.weight"]
    with pytest.raises(KeyError, match=r"_blocks\.3\._depthwise_conv\.weight"):
        efficientnet_lite0_variables_from_state_dict(missing)
    bad = dict(state_dict)
    bad["_fc.bias"] = np.zeros((10,), np.float32)
    with pytest.raises(ValueError, match=r"_fc\.bias.*\(10,\).*\(1000,\)"):
        efficientnet_lite0_variables_from_state_dict(bad)


def test_truncated_file_raises(checkpoint_path: str, tmp_path: Any) -> None:
    data = open(checkpoint_path, "rb").read()
    for cut in (10, len(data) // 2, len(data) - 1):
        path = tmp_path / f"cut{cut}.pth"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=os.path.basename(path)):
            load_legacy_torch_state_dict(path)


def test_wrong_magic_raises(checkpoint_path: str, tmp_path: Any) -> None:
    data = bytearray(open(checkpoint_path, "rb").read(4096))
    data[4] ^= 0xFF  # inside the pickled magic number
    path = tmp_path / "bad_magic.pth"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad_magic\.pth.*magic number"):
        load_legacy_torch_state_dict(path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"PK\x03\x04 not a pickle at all")
    with pytest.raises(ValueError, match=r"garbage\.pth"):
        load_legacy_torch_state_dict(garbage)


_forward = jax.jit(EfficientNetLite0().apply)


def test_trunk_equals_the_full_models_intermediate_output(variables: dict[str, Any]) -> None:
    x = imagenet_normalize(resize(skimage.data.chelsea(), (64, 64))[None])
    _, state = EfficientNetLite0().apply(variables, x, capture_intermediates=True)
    for num_blocks, (stride, channels) in {3: (4, 24), 8: (16, 80)}.items():
        want = state["intermediates"][f"block{num_blocks - 1}"]["__call__"][0]
        trunk = EfficientNetLite0Trunk(num_blocks=num_blocks)
        got = trunk.apply(trunk_variables(variables, num_blocks), x)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert (trunk_stride(num_blocks), trunk_channels(num_blocks)) == (stride, channels)
        assert got.shape == (1, 64 // stride, 64 // stride, channels)
