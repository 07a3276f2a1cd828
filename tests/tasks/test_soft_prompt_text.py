"""Soft-prompt text task on a sentence encoder taking input embeddings.

The embedding table, its sigma_e and the exact agreement of the embedding-input and
token-id paths are the real all-MiniLM-L6-v2's; the call count of a candidate set (one
call) is the same for every encoder, and is checked on the tiny test encoder
``tiny_bert`` (MiniLM's vocabulary and tokenizer; ``tests/helpers/tiny_models.py``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fedbbpt_jax.blackbox.text_zoo import (make_embedding_encoder, make_text_encoder,
                                           make_text_tokenizer, padding_mask)
from fedbbpt_jax.prompts import make_soft_prompt, random_projection
from fedbbpt_jax.tasks import SoftPromptTextClassification, TextClassification, review_pieces
from tests.helpers import tiny_models

MODEL, LENGTH, P, DIM = "all_minilm_l6_v2", 16, 3, 16
REVIEWS = ["This pill cleared my skin in two weeks.", "I could finally sleep through the night.",
           "My anxiety attacks are much rarer now.", "Lost ten pounds but felt nauseous.",
           "Birth control with no side effects at all."]
CLASSES = ["a review of a drug for acne", "a review of a drug for insomnia",
           "a review of a drug for anxiety"]


class CallCounter:
  """The real embedding black box, counting its calls (at trace time) and rows."""

  def __init__(self, blackbox):
    self.inner, self.calls, self.rows = blackbox, 0, 0
    self.input_shape = blackbox.input_shape

  def embed(self, ids):
    return self.inner.embed(ids)

  def __call__(self, inputs):
    self.calls += 1
    self.rows += inputs.shape[0]
    return self.inner(inputs)


def build_parts(model):
  """The tokenizers, both black boxes of ``model`` and the soft-prompt task on them."""
  tok = make_text_tokenizer(model, LENGTH)
  review_len = LENGTH - P - 2
  reviews = review_pieces(make_text_tokenizer(model, review_len + 2), REVIEWS, review_len,
                          tok.pad_id, tok.cls_id, tok.sep_id)
  ids_bb = make_text_encoder(model, LENGTH)
  emb_bb = make_embedding_encoder(model, LENGTH)
  classes = jax.jit(ids_bb)(jnp.asarray(tok(CLASSES)[0]))
  base_ids = jnp.asarray(tok.pieces("drug review .")[:P], jnp.int32)
  a = random_projection(0, DIM, P, emb_bb.input_shape[1], emb_bb.embedding_std)
  prompt = make_soft_prompt(a, emb_bb.embed(base_ids))
  common = dict(prompt_length=P, class_embeddings=classes, cls_id=tok.cls_id, sep_id=tok.sep_id,
                pad_id=tok.pad_id)
  soft = SoftPromptTextClassification(blackbox=emb_bb, prompt=prompt, **common)
  return dict(tok=tok, reviews=jnp.asarray(reviews), ids_bb=ids_bb, emb_bb=emb_bb, soft=soft,
              base_ids=base_ids, common=common, labels=jnp.asarray([0, 1, 2, 0, 1], jnp.int32))


@pytest.fixture(scope="module")
def parts():
  """On the real all-MiniLM-L6-v2."""
  return build_parts(MODEL)


@pytest.fixture(scope="module")
def tiny_parts():
  """On the tiny test encoder (same vocabulary and tokenizer)."""
  tiny_models.register()
  return build_parts(tiny_models.TEXT)


def test_embedding_black_box_inputs_mask_and_sigma_e(parts):
  tok, emb_bb = parts["tok"], parts["emb_bb"]
  table = np.asarray(emb_bb.embed(jnp.arange(emb_bb.vocab_size)), np.float64)
  assert table.shape == (30522, 384)
  assert emb_bb.embedding_std == pytest.approx(float(table.std()), rel=1e-4)
  ids = jnp.asarray(tok(REVIEWS)[0])
  rows = parts["soft"].embed_rows(ids)
  np.testing.assert_array_equal(np.asarray(rows[0, 0]), table[tok.cls_id].astype(np.float32))
  np.testing.assert_array_equal(np.asarray(padding_mask(rows)), np.asarray(ids != tok.pad_id))


def test_zero_z_gives_the_base_prompt_path(parts):
  soft, reviews = parts["soft"], parts["reviews"]
  discrete = TextClassification(blackbox=parts["ids_bb"], prompt=None, **parts["common"])
  z0 = soft.prompt.init(None)
  rows = soft.rows(soft.prompt_embeddings(z0), reviews)
  # Inputs: the word embeddings of [CLS] base review [SEP], zeros on padding.
  ids = discrete.assemble(parts["base_ids"], reviews)
  np.testing.assert_array_equal(np.asarray(rows), np.asarray(soft.embed_rows(ids)))
  # Outputs: those of the id black box on the base prompt's token ids, and both
  # zero-shots (no prompt) agree; one compiled call per black box. The two are different
  # programs (an embedding lookup inside one, not the other), so they agree to float32
  # rounding (measured max difference 3e-8 on unit-norm embeddings), not bit for bit.
  both_soft = jax.jit(parts["emb_bb"])(jnp.concatenate([rows, soft.rows(None, reviews)]))
  both_ids = jax.jit(parts["ids_bb"])(jnp.concatenate([ids, discrete.assemble(None, reviews)]))
  np.testing.assert_allclose(np.asarray(both_soft), np.asarray(both_ids), rtol=0, atol=1e-6)


def test_candidate_losses_are_one_call_equal_to_separate_evaluations(tiny_parts):
  parts = tiny_parts
  counter = CallCounter(parts["emb_bb"])
  soft = SoftPromptTextClassification(blackbox=counter, prompt=parts["soft"].prompt,
                                      **parts["common"])
  num = 4
  cands = {"z": 2.0 * jax.random.normal(jax.random.key(0), (num, DIM))}
  batch = {"x": parts["reviews"], "y": parts["labels"]}
  losses = np.asarray(jax.jit(soft.candidate_losses)(cands, batch))
  assert (counter.calls, counter.rows) == (1, num * len(REVIEWS))  # ONE call of I x B rows
  one = jax.jit(lambda z: soft.loss(soft.logits({"z": z}, batch["x"]), batch["y"]).mean())
  single = [float(one(cands["z"][i])) for i in range(num)]
  np.testing.assert_allclose(losses, single, rtol=1e-5)
  assert np.ptp(losses) > 1e-3  # the candidates really differ
