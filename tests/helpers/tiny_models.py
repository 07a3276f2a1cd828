"""Tiny frozen black boxes registered from test code, for the mechanics tests.

Counts, resume, equality and failure handling do not depend on which frozen network
answers: these tests register a tiny one the way a user registers their own model
(``BLACK_BOXES``, tags ``'image'`` and ``'text'``) and select it by config, so their programs
compile in a fraction of the real models' time. The real EfficientNet-Lite0 / MiniLM stay where
the model itself matters (ports, learning, the demo).

* ``tiny_cnn``: a strided 3x3 convolution, pooling to 4 x 4 and a dense head to the
  1,000 ImageNet logits the image family maps labels from (random weights, seed 0).
* ``tiny_bert``: a one-layer, 16-wide BERT on MiniLM's vocabulary and tokenizer (random
  weights, seed 0), so the text family's vocabularies and prompts are unchanged.

Example:
    >>> register()
    >>> config = tiny(fmnist_effnet.get_config("smoke"))   # blackbox.model='tiny_cnn'
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from fedbbpt_jax.blackbox import BLACK_BOXES
from fedbbpt_jax.blackbox.surrogate import SurrogateBlackBox
from fedbbpt_jax.blackbox.text_zoo import SentenceEncoderEntry
from fedbbpt_jax.models.bert import BertConfig, BertModel
from fedbbpt_jax.models.minilm import TextTokenizer

IMAGE = "tiny_cnn"
TEXT = "tiny_bert"


class TinyCNN(nn.Module):
  """``[N, S, S, 3]`` pixels -> ``[N, 1000]`` logits that depend strongly on the input:
  a strided 3x3 convolution, average pooling to a 4 x 4 grid, and a dense head with
  unit-variance weights (logits of std ~5, like a trained classifier's), so that prompts
  move losses and a label mapping finds differences to count."""

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    x = nn.relu(nn.Conv(8, (3, 3), strides=2)(x))
    window = max(x.shape[1] // 4, 1)
    x = nn.avg_pool(x, (window, window), strides=(window, window))
    head = nn.Dense(1000, kernel_init=nn.initializers.normal(stddev=1.0))
    return head(x.reshape(len(x), -1))


BERT_CONFIG = BertConfig(vocab_size=30522, hidden_size=16, num_layers=1, num_heads=2,
                         intermediate_size=32, max_position_embeddings=512)


# The weights are drawn by one compiled program (the same bits as an op-by-op ``init``:
# one compile-cache entry instead of one per operation) once per process.
@functools.cache
def _cnn_variables(input_size: int) -> Any:
  return jax.jit(TinyCNN().init)(jax.random.key(0), jnp.zeros((1, input_size, input_size, 3)))


@functools.cache
def _bert_variables() -> Any:
  ids = jnp.zeros((1, 8), jnp.int32)
  return jax.jit(BertModel(BERT_CONFIG).init)(jax.random.key(0), ids, jnp.ones_like(ids))


def tiny_cnn(input_size: int, weights_path: str | None = None) -> SurrogateBlackBox:
  del weights_path
  return SurrogateBlackBox(IMAGE, TinyCNN().apply, _cnn_variables(input_size),
                           (input_size, input_size, 3), 1000)


def load_tiny_bert():
  return BertModel(BERT_CONFIG), _bert_variables()


def register() -> None:
  """Registers ``tiny_cnn`` and ``tiny_bert`` (once per process)."""
  if IMAGE not in BLACK_BOXES:
    BLACK_BOXES.register(IMAGE, tiny_cnn, tags=("image",))
  if TEXT not in BLACK_BOXES:
    BLACK_BOXES.register(TEXT, SentenceEncoderEntry(load_tiny_bert, TextTokenizer.minilm),
                         tags=("text",))


def tiny(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` with its black box replaced by the tiny model of its family."""
  register()
  config.blackbox.model = TEXT if config.task.family == "text" else IMAGE
  return config
