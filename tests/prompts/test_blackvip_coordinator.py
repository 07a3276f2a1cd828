"""BlackVIP's coordinator (``prompt.kind='blackvip'``): its size, its layers against torch's
definitions, CLIP's pixel range, its BatchNorm modes, P_EPS, and one SPSA-GC step.

The encoder is ``prompt.encoder='vit'`` on the real tiny ViT-MAE checkpoint
(``tests/data/vit_mae_tiny/mae``: 32 px, 8 px patches, 32 features, so the canvas is
resized to it and the trigger holds 1,568 - 32 floats); BlackVIP's 9,920 floats are
counted on the decoder at ViT-B/16's 768 features. Generators and decoders are compiled
once per module (fixtures) and shared.
"""

import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from jax.flatten_util import ravel_pytree

from fedbbpt_jax.data import ClientData
from fedbbpt_jax.federated import make_client_optimizer, make_local_update
from fedbbpt_jax.prompts import apply_prompt, make_prompt, num_params
from fedbbpt_jax.prompts.blackvip import BlackVIPDecoder, Normalization
from fedbbpt_jax.prompts.clip_space import clip_bounds, clip_clamp, clip_normalize
from fedbbpt_jax.models import vit, vit_loading
from fedbbpt_jax.prompts.encoders import ENCODERS, EncoderOptions, vit_cls_encoder
from fedbbpt_jax.prompts.transposed_conv import conv_transpose_patches
from fedbbpt_jax.tasks.image.visual_reprogramming import VisualReprogramming
from fedbbpt_jax.zo import HParams, make_estimator
from tests.helpers.golden_compare import DATA
from tests.helpers.tiny_models import tiny_cnn

MAE = os.path.join(DATA, "vit_mae_tiny", "mae")
ROOT = os.path.dirname(os.path.dirname(DATA))

# BlackVIP's trainers/utils.py clip_clipping: the normalised images of pixels 0 and 1.
BLACKVIP_LOW = [-1.79226253, -1.75209713, -1.48021977]
BLACKVIP_HIGH = [1.93033625, 2.07488384, 2.14589699]
MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
STD = np.array([0.26862954, 0.26130258, 0.27577711])


def blackvip(epsilon=1.0, bn="example"):
  """The ``blackvip`` generator on the tiny MAE, its functions compiled."""
  gen = make_prompt("blackvip", 224, 224, epsilon=epsilon, bn=bn, encoder="vit",
                    encoder_weights=MAE)
  return gen._replace(init=jax.jit(gen.init), features=jax.jit(gen.features),
                      apply=jax.jit(gen.apply))


@pytest.fixture(scope="module")
def setup():
  """The default generator, its initial parameters, images and their features."""
  gen = blackvip()
  params = gen.init(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (3, 224, 224, 3))
  return {"gen": gen, "params": params, "x": x, "z": gen.features(x)}


@pytest.fixture(scope="module")
def decode():
  """``{bn mode: jit(decoder.apply)}``: the prompt in CLIP-normalised units."""
  return {mode: jax.jit(BlackVIPDecoder(bn=mode).apply) for mode in ("example", "batch")}


def loud(params):
  """``params`` with the output layer x 50: prompts large enough to be clipped."""
  return {**params, "output": {"kernel": params["output"]["kernel"] * 50.0}}


def test_parameter_counts_are_blackvips(setup):
  # BlackVIP's decoder at ViT-B/16's 768 features; the tiny MAE's 32 leave 1,536 to the trigger
  params = jax.jit(BlackVIPDecoder().init)(jax.random.key(0), jnp.zeros((1, 768)))["params"]
  assert num_params(params) == 9920
  assert num_params(setup["params"]) == 9920 - 800 + 1536
  per_block = {name: {part: num_params(leaf) for part, leaf in params[name].items()}
               for name in ("block1", "block2", "block3", "block4")}
  assert per_block == {
      "block1": {"upsample": 320, "mix": 4096, "norm": 128},
      "block2": {"upsample": 320, "mix": 2048, "norm": 64},
      "block3": {"upsample": 160, "mix": 1024, "norm": 64},
      "block4": {"upsample": 160, "mix": 512, "norm": 32}}
  assert num_params(params["trigger"]) == 800 and num_params(params["output"]) == 192
  # torch layouts [in, out / groups, k, k]; the trigger drawn U(0, 0.1)
  assert params["block1"]["upsample"]["kernel"].shape == (32, 2, 2, 2)
  assert params["block2"]["mix"]["kernel"].shape == (64, 32, 1, 1)
  assert params["output"]["kernel"].shape == (16, 3, 2, 2)
  assert 0.0 <= float(params["trigger"].min()) and float(params["trigger"].max()) < 0.1
  assert setup["params"]["trigger"].shape == (1536,)


def test_the_prompt_covers_the_224_canvas_and_reads_the_clip_normalised_cls(setup):
  gen, x = setup["gen"], setup["x"]
  delta = gen.apply(setup["params"], setup["z"])
  assert delta.shape == (3, 224, 224, 3)
  assert bool(jnp.all(jnp.isfinite(delta)))
  assert float(jnp.abs(delta[0] - delta[1]).max()) > 1e-3  # it depends on the image
  # BlackVIP's z: the CLIP-normalised image (here resized to the tiny MAE's 32 px) through
  # the ViT, the last block's [CLS] before the final LayerNorm
  config, params = vit_loading.load_vit(MAE)
  normalised = jnp.asarray((np.asarray(x) - MEAN) / STD, jnp.float32)
  resized = jax.image.resize(normalised, (3, 32, 32, 3), method="linear", antialias=True)
  expected = jax.jit(vit.vit_cls_before_norm, static_argnums=1)(params, config, resized)
  assert setup["z"].shape == (3, 32)
  np.testing.assert_allclose(setup["z"], expected, atol=1e-5)
  normalised_cls = jax.jit(vit.vit_cls, static_argnums=1)(params, config, resized)
  assert float(jnp.abs(setup["z"] - normalised_cls).max()) > 0.1


# The lowered program of a jitted encoder call, in a process that imports fedbbpt_jax before
# jax (as the command lines do, so that the package's JAX settings take effect at jax's import).
LOWERED_SIGNATURE = """
import re, sys
import fedbbpt_jax
import jax, jax.numpy as jnp
from fedbbpt_jax.prompts.encoders import EncoderOptions, vit_cls_encoder
features, dim = vit_cls_encoder(224, 1, EncoderOptions(weights_path=sys.argv[1]))
text = jax.jit(features).lower(jnp.zeros((2, 224, 224, 3))).as_text()
print(dim, bool(re.search(r"stablehlo.constant dense<[^\\n]*tensor<(17x32|8x8x3x32)xf32>", text)))
print(re.search(r"func.func public @main\\(([^)]*)\\)", text).group(1))
"""


def test_the_vit_weights_are_arguments_of_the_compiled_encoder_not_constants():
  out = subprocess.run([sys.executable, "-c", LOWERED_SIGNATURE, MAE], capture_output=True,
                       text=True, check=True, cwd=ROOT).stdout.splitlines()
  assert out[0] == "32 False"   # no weight tensor compiled in as a constant
  signature = out[1]
  # the position embedding [17, 32] and the patch kernel [8, 8, 3, 32] come in as arguments
  assert "tensor<17x32xf32> {jax.const = true}" in signature
  assert "tensor<8x8x3x32xf32> {jax.const = true}" in signature
  _, params = vit_loading.load_vit(MAE)
  assert len(jax.tree.leaves(params)) == 38
  assert signature.count("{jax.const = true}") == 36   # every tensor but the final LayerNorm's


def torch_conv_transpose(x, weight, bias, groups):
  """``torch.nn.functional.conv_transpose2d(x, weight, bias, stride=k, groups=groups)`` from
  its definition, NCHW: out[n, oc, k i + a, k j + b] = sum over the input channels ic of
  oc's group of x[n, ic, i, j] * weight[ic, oc - first output of the group, a, b] + bias[oc]
  (written for all (i, j) at once: ``out[..., a::k, b::k]``)."""
  n, c_in, h, w = x.shape
  per_group_out, k = weight.shape[1], weight.shape[2]
  per_group_in = c_in // groups
  out = np.zeros((n, per_group_out * groups, k * h, k * w))
  for oc in range(per_group_out * groups):
    group, o = divmod(oc, per_group_out)
    for ic in range(group * per_group_in, (group + 1) * per_group_in):
      for a in range(k):
        for b in range(k):
          out[:, oc, a::k, b::k] += x[:, ic] * weight[ic, o, a, b]
    if bias is not None:
      out[:, oc] += bias[oc]
  return out


def blackvip_decoder_reference(params, z, bn):
  """BlackVIP's ``DecoderManual`` forward in numpy, NCHW, with the decoder's ``bn`` mode:
  cat(z, trigger).reshape(N, 32, 7, 7), then per block ConvTranspose2d(groups=in) ->
  ConvTranspose2d(1x1, no bias) -> BatchNorm2d (train mode over the batch, or over each
  example) -> GELU (erf), then ConvTranspose2d(16, 3, 2, 2, no bias); returned NHWC."""
  p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
  z = np.asarray(z, np.float64)
  x = np.concatenate([z, np.repeat(p["trigger"][None], len(z), 0)], 1).reshape(-1, 32, 7, 7)
  for name in ("block1", "block2", "block3", "block4"):
    block = p[name]
    x = torch_conv_transpose(x, block["upsample"]["kernel"], block["upsample"]["bias"],
                             groups=x.shape[1])
    x = torch_conv_transpose(x, block["mix"]["kernel"], None, groups=1)
    axes = (0, 2, 3) if bn == "batch" else (2, 3)
    mean, var = x.mean(axes, keepdims=True), x.var(axes, keepdims=True)
    x = ((x - mean) / np.sqrt(var + 1e-5) * block["norm"]["scale"][:, None, None]
         + block["norm"]["bias"][:, None, None])
    x = 0.5 * x * (1.0 + scipy.special.erf(x / np.sqrt(2.0)))
  x = torch_conv_transpose(x, p["output"]["kernel"], None, groups=1)
  return x.transpose(0, 2, 3, 1)


@pytest.mark.parametrize("bn", ["example", "batch"])
def test_the_decoder_is_blackvips_decoder_manual(setup, decode, bn):
  z = setup["z"][:2]
  np.testing.assert_allclose(decode[bn]({"params": setup["params"]}, z),
                             blackvip_decoder_reference(setup["params"], z, bn), atol=5e-5)


@pytest.mark.parametrize("c_in, c_out, groups, k, with_bias", [
    (4, 8, 4, 2, True),    # groups = in_channels, as in BlackVIP's blocks
    (4, 6, 2, 2, True),    # two input channels per group
    (4, 3, 1, 2, False),   # the output layer: ordinary, no bias
    (4, 5, 1, 1, False),   # the pointwise 1x1 layers
])
def test_grouped_transposed_conv_is_torchs(c_in, c_out, groups, k, with_bias):
  rng = np.random.default_rng(c_out)
  x = rng.normal(size=(2, c_in, 3, 3))
  weight = rng.normal(size=(c_in, c_out // groups, k, k))
  bias = rng.normal(size=(c_out,)) if with_bias else None
  ours = conv_transpose_patches(jnp.asarray(x.transpose(0, 2, 3, 1), jnp.float32),
                                jnp.asarray(weight, jnp.float32),
                                None if bias is None else jnp.asarray(bias, jnp.float32), groups)
  np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2),
                             torch_conv_transpose(x, weight, bias, groups), atol=1e-5)


def test_prompted_images_stay_within_clips_normalised_range(setup, decode):
  low, high = clip_bounds()
  np.testing.assert_allclose(low, BLACKVIP_LOW, atol=1e-6)
  np.testing.assert_allclose(high, BLACKVIP_HIGH, atol=1e-6)
  params, x, z = loud(setup["params"]), setup["x"], setup["z"]
  prompted = clip_normalize(apply_prompt(x, setup["gen"].apply(params, z)))
  for c in range(3):
    assert float(prompted[..., c].min()) >= float(low[c]) - 1e-5
    assert float(prompted[..., c].max()) <= float(high[c]) + 1e-5
  clipped = jnp.mean((jnp.abs(prompted - low) < 1e-4) | (jnp.abs(prompted - high) < 1e-4))
  assert float(clipped) > 0.2  # the bounds are reached: clipping is active
  # BlackVIP's clip_clipping(normalise(x) + P_EPS * prompt), in normalised units
  blackvip_input = clip_clamp(clip_normalize(x) + decode["example"]({"params": params}, z))
  np.testing.assert_allclose(prompted, blackvip_input, atol=5e-5)


def test_batch_norm_mode_depends_on_batch_mates_and_the_default_does_not(setup, decode):
  params, z = {"params": setup["params"]}, setup["z"]
  other_mates = z.at[1:].set(jax.random.normal(jax.random.key(2), (2, z.shape[1])))
  alone = jnp.repeat(z[:1], 3, axis=0)  # a batch of one image's copies: its own statistics
  by_example, by_batch = decode["example"], decode["batch"]
  np.testing.assert_allclose(by_example(params, other_mates)[0], by_example(params, z)[0],
                             atol=1e-6)
  assert float(jnp.abs(by_batch(params, other_mates)[0] - by_batch(params, z)[0]).max()) > 0.05
  np.testing.assert_allclose(by_batch(params, alone)[0], by_example(params, z)[0], atol=1e-5)
  # train-mode BatchNorm2d: statistics over batch and positions, biased variance, eps 1e-5
  rng = np.random.default_rng(0)
  h, scale, shift = rng.normal(size=(3, 4, 4, 5)), rng.normal(size=5), rng.normal(size=5)
  ref = (h - h.mean((0, 1, 2))) / np.sqrt(h.var((0, 1, 2)) + 1e-5) * scale + shift
  got = Normalization("batch").apply({"params": {"scale": scale, "bias": shift}}, h)
  np.testing.assert_allclose(got, ref, atol=1e-5)


def test_epsilon_scales_the_prompt_linearly_before_clipping(setup, decode):
  params, x, z = loud(setup["params"]), setup["x"], setup["z"]
  prompt = decode["example"]({"params": params}, z)  # CLIP-normalised units
  full, quarter = setup["gen"].apply(params, z), blackvip(epsilon=0.25).apply(params, z)
  np.testing.assert_allclose(full, prompt * STD, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(quarter, 0.25 * full, rtol=1e-5, atol=1e-7)
  clipped_quarter = apply_prompt(x, quarter)
  np.testing.assert_allclose(clipped_quarter, jnp.clip(x + 0.25 * prompt * STD, 0, 1), atol=1e-6)
  # Not a quarter of the clipped full prompt: scaling comes first.
  scaled_after = x + 0.25 * (apply_prompt(x, full) - x)
  assert float(jnp.abs(clipped_quarter - scaled_after).max()) > 0.1


def test_one_spsa_gc_step_moves_every_parameter_through_the_black_box(setup):
  task = VisualReprogramming(tiny_cnn(224), setup["gen"], image_size=224,
                             label_map=jax.random.normal(jax.random.key(3), (1000, 4)))
  local = jax.jit(make_local_update(task.candidate_losses, make_estimator("spsa_gc", 1),
                                    make_client_optimizer("sgd"), num_steps=1, batch_size=4))
  images = jax.random.randint(jax.random.key(4), (6, 8, 8), 0, 256).astype(jnp.uint8)
  data = ClientData(x=images, y=jnp.arange(6, dtype=jnp.int32) % 4,
                    num_examples=jnp.asarray(6, jnp.int32))
  out = local(setup["params"], data, jax.random.key(5),
              HParams.create(lr=0.01, sigma=0.01, momentum=0.9), 0)
  step, _ = ravel_pytree(out.delta)
  assert step.shape == (9920 - 800 + 1536,)
  assert np.isfinite(float(out.metrics["train_loss"]))
  # SPSA-GC's first step is -a (1 + beta) (L+ - L-) / (2 c Delta_j), |Delta_j| in [0.5, 1):
  # every float moves, and the largest move is less than twice the smallest.
  magnitude = jnp.abs(step)
  assert float(magnitude.min()) > 0.0
  assert float(magnitude.max()) < 2.0 * float(magnitude.min())


def test_building_refuses_what_the_decoder_cannot_take():
  with pytest.raises(ValueError, match=r"config.blackbox.input_size=64: prompt.kind='blackvip'"):
    make_prompt("blackvip", 64, 48)
  with pytest.raises(ValueError, match=r"config.prompt.bn='frozen' is not one of"):
    make_prompt("blackvip", 224, 224, bn="frozen")
  with pytest.raises(ValueError, match=r"gives 1568 features; prompt.kind='blackvip' needs "
                                       r"fewer than 1568"):
    make_prompt("blackvip", 224, 224, encoder_channels=1568)


def test_vit_encoder_names_what_it_misses(tmp_path):
  options = EncoderOptions(weights_path=MAE)
  with pytest.raises(ValueError, match=r"prompt.encoder='vit' needs config.prompt.encoder_weights"):
    vit_cls_encoder(224, 1, EncoderOptions())
  with pytest.raises(ValueError, match=r"gives one \[CLS\] vector per image.*a 4x4 feature map"):
    vit_cls_encoder(224, 4, options)
  with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path}")):
    vit_cls_encoder(224, 1, EncoderOptions(weights_path=str(tmp_path)))


def test_another_vit_loader_makes_another_encoder():
  loaded = []

  def load(folder):
    loaded.append(folder)
    return vit_loading.load_vit(MAE)

  features, dim = vit_cls_encoder(224, 1, EncoderOptions(weights_path="/models/mine"), load=load)
  x = jax.random.uniform(jax.random.key(6), (2, 224, 224, 3))
  reference, _ = vit_cls_encoder(224, 1, EncoderOptions(weights_path=MAE))
  assert loaded == ["/models/mine"] and dim == 32
  np.testing.assert_array_equal(features(x), reference(x))
  assert "vit" in ENCODERS.names()
