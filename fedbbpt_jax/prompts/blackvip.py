"""BlackVIP's coordinator (Oh et al., CVPR 2023) as BlackVIP builds it for CLIP ViT-B/16.

``prompt.kind='blackvip'``. The prompt depends on the input and covers the whole 224 x 224
image:

1. **Encoder** (frozen, run by the client, no gradient): ``z = f(x)``, ``[B, D]``. BlackVIP
   uses the last-layer [CLS] token of the MAE ViT-B/16 (``D = 768``), here
   ``prompt.encoder='vit'`` with ``prompt.encoder_weights`` = the local model folder (see
   ``encoders.vit_cls_encoder``). Any registered encoder serves: its feature map is
   mean-pooled to a vector (the ``'random'`` convolutions are asked for a 4 x 4 map, as
   in ``frame_mixture``, since at 1 x 1 they would see a 4 x 4 resize of the image).
2. **Trigger**: a learned vector of ``SRC_DIM - D`` floats (800 for ``D = 768``), drawn
   ``U(0, 0.1)``, appended to ``z``. The ``SRC_DIM = 1568`` floats form torch's
   channels-first map ``[32, 7, 7]``; here it is transposed to NHWC ``[7, 7, 32]``, so
   ``map[i, j, c] = concat(z, trigger)[49 c + 7 i + j]``: channels 0-14 hold features,
   channel 15 the last 33 features then 16 trigger floats, channels 16-31 the trigger.
3. **Decoder**: four blocks, each a grouped transposed convolution (kernel 2, stride 2,
   ``groups`` = its input channels, with bias), a pointwise transposed convolution
   (no bias), a normalisation with trainable scale and shift (BlackVIP: ``BatchNorm2d``)
   and exact (erf) GELU: ``[7,7,32] -> [14,14,64] -> [28,28,32] -> [56,56,32] ->
   [112,112,16]``; then a transposed convolution 16 -> 3 (kernel 2, stride 2, no bias) to
   ``[224, 224, 3]``, with no output activation. Weights are drawn as torch draws them
   and kept in torch's layout (``transposed_conv``).
4. **Application**: BlackVIP feeds CLIP ``clamp_c(normalise(x) + P_EPS * prompt)``; here
   ``apply`` returns the same prompt as a pixel delta, ``P_EPS * std_c * prompt``
   (``prompt.epsilon`` is ``P_EPS``, BlackVIP's per-dataset values are 0.2-1.0), and the
   image task clips pixels to [0, 1]: the same input (``clip_space``), whatever
   normalisation the black box then applies.

Trainable floats for ``D = 768``: 9,920 = trigger 800 + block 1 (320 + 4,096 + 128) +
block 2 (320 + 2,048 + 64) + block 3 (160 + 1,024 + 64) + block 4 (160 + 512 + 32) + output
192 (per block: grouped kernel and bias, pointwise kernel, scale and shift). A torch
checkpoint maps one to one: ``p_trigger[0]`` -> ``trigger``; ``body.{4k-4}`` ->
``block{k}.upsample`` (``weight`` -> ``kernel``, ``bias``), ``body.{4k-3}.weight`` ->
``block{k}.mix.kernel``, ``body.{4k-2}`` -> ``block{k}.norm`` (``weight`` -> ``scale``,
``bias``), ``body.16.weight`` -> ``output.kernel``. (The flat vector a zero-order
estimator perturbs lists the same floats in another order; SPSA's perturbation is i.i.d.
per float, so the order does not matter.)

**BatchNorm** (``prompt.bn``). BlackVIP keeps only the decoder in train mode: every
forward normalises each channel with the statistics of the whole minibatch (biased
variance, eps 1e-5), so an image's prompt depends on its batch-mates, and updates running
means and variances (EMA, momentum 0.1) on each perturbed forward; evaluation uses those
running statistics. Two modes here:

* ``'example'`` (default): each channel is normalised with the statistics of the example's
  own spatial positions: BatchNorm applied to each image as a batch of one (instance
  normalisation), with the same trainable scale and shift. A prompt never depends on its
  batch-mates, training and evaluation compute the same function, activations keep the
  unit scale BatchNorm gives them (BatchNorm with fixed statistics, its eval mode at
  torch's initial running mean 0 and variance 1, would leave their scale to the weight
  init), and there is no state outside the trained parameters.
* ``'batch'``: BlackVIP's train-mode BatchNorm, statistics over the minibatch's examples
  and positions. Each zero-order candidate normalises with its own statistics over the
  same minibatch, as each of BlackVIP's perturbed forwards does. No running statistics
  are kept: evaluation normalises with the statistics of each evaluation chunk
  (``train.eval_batch_size`` test images; the last chunk the remainder), so a test
  prediction depends on the images evaluated with it, and the accuracy reported depends on
  ``train.eval_batch_size``. On one image this mode equals ``'example'``.

**What happens to BatchNorm statistics in federated averaging.** In BlackVIP the running
statistics are buffers, not parameters: the SPSA parameter vector
(``parameters_to_vector(dec.parameters())``) does not contain them, so they are never
perturbed nor stepped, only overwritten by every perturbed forward's EMA. A federated
BlackVIP would have one set per client, tracking that client's (non-IID) images under
perturbed weights, and no rule for the server: averaging the parameter vector leaves
them out, and averaging means and variances would drop the spread between clients'
means. Neither mode here has such state: every float a client holds is in the parameter
vector the server averages (scale and shift included), ``'example'`` computes its
statistics from the image itself, and ``'batch'`` from the images it is applied to, at
training and evaluation alike.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from fedbbpt_jax.prompts.base import PromptGenerator
from fedbbpt_jax.prompts.clip_space import pixel_delta
from fedbbpt_jax.prompts.encoders import ENCODERS, EncoderOptions
from fedbbpt_jax.prompts.transposed_conv import TorchConvTranspose

SRC_DIM = 1568                 # floats of the decoder's input map (BlackVIP's SRC_DIM)
MAP_SIDE = 7
MAP_CHANNELS = SRC_DIM // MAP_SIDE ** 2   # 32
OUTPUT_SIZE = MAP_SIDE * 2 ** 5           # 224: five 2x upsamplings
# (channels after the grouped transposed convolution, after the pointwise one) per block.
BLOCK_CHANNELS = ((64, 64), (64, 32), (32, 32), (32, 16))
BN_EPSILON = 1e-5              # torch's BatchNorm2d default
BN_MODES = ("example", "batch")


class Normalization(nn.Module):
  """BatchNorm2d's normalisation and affine map; statistics by ``mode`` (``BN_MODES``)."""

  mode: str

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    channels = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (channels,))
    shift = self.param("bias", nn.initializers.zeros, (channels,))
    axes = (0, 1, 2) if self.mode == "batch" else (1, 2)
    mean = jnp.mean(x, axis=axes, keepdims=True)
    variance = jnp.mean(jnp.square(x - mean), axis=axes, keepdims=True)  # biased, as torch
    return (x - mean) * lax.rsqrt(variance + BN_EPSILON) * scale + shift


class DecoderBlock(nn.Module):
  """Grouped 2x2/2 transposed conv (+bias), pointwise transposed conv, normalisation, GELU."""

  upsampled: int
  mixed: int
  bn: str

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = TorchConvTranspose(self.upsampled, 2, groups=x.shape[-1], name="upsample")(x)
    x = TorchConvTranspose(self.mixed, 1, use_bias=False, name="mix")(x)
    x = Normalization(self.bn, name="norm")(x)
    return nn.gelu(x, approximate=False)  # torch.nn.GELU() is the exact one


class BlackVIPDecoder(nn.Module):
  """``z [B, D] -> prompt [B, 224, 224, 3]`` in CLIP-normalised units (module docstring)."""

  bn: str = "example"

  @nn.compact
  def __call__(self, z: jnp.ndarray) -> jnp.ndarray:
    batch, dim = z.shape
    trigger = self.param("trigger", nn.initializers.uniform(0.1), (SRC_DIM - dim,))
    cube = jnp.concatenate([z, jnp.broadcast_to(trigger, (batch, SRC_DIM - dim))], axis=-1)
    x = cube.reshape(batch, MAP_CHANNELS, MAP_SIDE, MAP_SIDE).transpose(0, 2, 3, 1)
    for index, (upsampled, mixed) in enumerate(BLOCK_CHANNELS, start=1):
      x = DecoderBlock(upsampled, mixed, self.bn, name=f"block{index}")(x)
    return TorchConvTranspose(3, 2, use_bias=False, name="output")(x)


def make_blackvip_prompt(canvas_size: int, image_size: int, *, epsilon: float = 1.0,
                         bn: str = "example", encoder: str = "random",
                         encoder_channels: int = 8, encoder_blocks: int = 8,
                         encoder_seed: int = 0,
                         encoder_weights: str | None = None) -> PromptGenerator:
  """Builds BlackVIP's coordinator (see the module docstring).

  Args:
    canvas_size: side of the black box's input; must be 224.
    image_size: side of the image inside the canvas (the prompt covers the whole canvas).
    epsilon: BlackVIP's ``P_EPS``, the prompt's scale in CLIP-normalised units.
    bn: ``'example'`` or ``'batch'`` (``BN_MODES``, module docstring).
    encoder: a name registered in ``ENCODERS`` (``'vit'``: BlackVIP's [CLS] encoder).
    encoder_channels: feature width ``D`` of the ``'random'`` encoder.
    encoder_blocks: trunk blocks of the ``'efficientnet_lite0'`` encoder.
    encoder_seed: seed of the ``'random'`` encoder's weights.
    encoder_weights: the encoder's weights (``'vit'``: a local Hugging Face folder).

  Raises:
    ValueError: a canvas other than 224, an unknown ``bn``, or an encoder width ``D``
      that leaves no room for the trigger (``D >= 1568``), each naming its config field.
  """
  del image_size
  if canvas_size != OUTPUT_SIZE:
    raise ValueError(f"config.blackbox.input_size={canvas_size}: prompt.kind='blackvip' "
                     f"decodes a {MAP_SIDE}x{MAP_SIDE} map to {OUTPUT_SIZE}x{OUTPUT_SIZE} "
                     f"(BlackVIP's CLIP input); set config.blackbox.input_size={OUTPUT_SIZE} "
                     "or use prompt.kind='coordinator'")
  if bn not in BN_MODES:
    raise ValueError(f"config.prompt.bn={bn!r} is not one of {list(BN_MODES)}")
  fmap, dim = ENCODERS.get(encoder, "prompt.encoder")(
      canvas_size, 4 if encoder == "random" else 1,
      EncoderOptions(channels=encoder_channels, seed=encoder_seed, blocks=encoder_blocks,
                     weights_path=encoder_weights))
  if not 0 < dim < SRC_DIM:
    raise ValueError(f"config.prompt.encoder={encoder!r} gives {dim} features; "
                     f"prompt.kind='blackvip' needs fewer than {SRC_DIM} (its input map has "
                     f"{SRC_DIM} floats: features, then the trigger)")
  decoder = BlackVIPDecoder(bn=bn)

  # Compiled: op by op, the init compiled each layer's draws separately (about 40 small
  # programs); the weights are the same bits.
  @jax.jit
  def init(key):
    return decoder.init(key, jnp.zeros((1, dim), jnp.float32))["params"]

  def features(canvas_images):
    return jnp.mean(fmap(canvas_images), axis=(1, 2))

  def apply(params, z):
    return epsilon * pixel_delta(decoder.apply({"params": params}, z))

  return PromptGenerator(name="blackvip", init=init, features=features, apply=apply)
