"""GLUE end to end (configs/glue_roberta.py:smoke) on tiny local GLUE data and a tiny RoBERTa.

Both are built here in temporary folders (tests/helpers/glue_roberta.py): an
sst2-like and an mrpc-like array_record GLUE folder, and a 2-layer random
RoBERTa masked LM in Hugging Face naming with a word-level tokenizer.json.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from configs.glue_roberta import get_config
from fedbbpt_jax.blackbox.text_zoo import make_masked_lm_blackbox, make_masked_lm_tokenizer
from fedbbpt_jax.data.glue import load_glue
from fedbbpt_jax.train import ConfigError, run, validate_config
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.zo.bdpl import sample_one_hot
from tests.helpers.glue_roberta import TEMPLATE_WORDS, prepare_glue, write_tiny_roberta

POSITIVE = ["good", "fun", "warm", "bright"]
NEGATIVE = ["bad", "dull", "cold", "slow"]
NOUNS = ["movie", "story", "plot", "actor"]
WORDS = TEMPLATE_WORDS + ["It", "the", "is", "and"] + POSITIVE + NEGATIVE + NOUNS


def _sentence(rng, adjectives):
  a, b = rng.choice(adjectives, 2, replace=False)
  return f"the {rng.choice(NOUNS)} is {a} and {b}"


def _sst2(rng, n):
  return [(_sentence(rng, POSITIVE if i % 2 else NEGATIVE), i % 2) for i in range(n)]


def _mrpc(rng, n):
  rows = []
  for i in range(n):
    s1 = _sentence(rng, POSITIVE + NEGATIVE)
    rows.append(((s1, s1 if i % 2 else _sentence(rng, POSITIVE + NEGATIVE)), i % 2))
  return rows


def _data():
  rng = np.random.default_rng(0)
  return {"sst2": {"train": _sst2(rng, 32), "validation": _sst2(rng, 12)},
          "mrpc": {"train": _mrpc(rng, 32), "validation": _mrpc(rng, 12)}}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
  tfds_dir = prepare_glue(tmp_path_factory.mktemp("tfds"), _data())
  model_dir, _ = write_tiny_roberta(str(tmp_path_factory.mktemp("roberta")), WORDS)
  return tfds_dir, model_dir


def smoke(assets, task="sst2"):
  c = get_config("smoke")
  c.data.tfds_dir, c.blackbox.model_dir = assets
  c.data.task = task
  return c


@pytest.fixture(scope="module", params=["sst2", "mrpc"])
def glue_run(request, assets, tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp(f"run_{request.param}"))
  config = smoke(assets, request.param)
  summary = run(config, workdir, log=lambda s: None)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  return config, summary, rows


def test_query_counters_follow_the_formula(glue_run):
  c, summary, rows = glue_run
  # No black-box call before training (verbalizers are token ids); then every round:
  # clients x local steps x I prompts calls of one minibatch each; test forwards apart.
  calls = c.data.num_clients * c.client.local_steps * c.zo.num_directions
  assert [r["bb_calls"] for r in rows] == [calls * k for k in range(1, c.train.rounds + 1)]
  assert [r["bb_examples"] for r in rows] == [calls * c.client.batch_size * k
                                              for k in range(1, c.train.rounds + 1)]
  evals = [i + 1 for i in range(c.train.rounds)
           if (i + 1) % c.train.eval_every == 0 or i + 1 == c.train.rounds]
  q = summary["query_counters"]
  assert q["bb_calls"] == calls * c.train.rounds
  assert q["candidates"] == calls * c.train.rounds
  assert q["client_activations"] == c.data.num_clients * c.train.rounds
  assert q["eval_bb_examples"] == len(evals) * c.data.test_examples
  assert summary["black_box_queries"] == calls * c.client.batch_size * c.train.rounds
  # k-shot x clients per class, from the halved train split; dev the same size.
  assert summary["train_examples"] == summary["dev_examples"] == 2 * c.data.k_shot * 2
  assert summary["test_examples"] == c.data.test_examples


def test_rows_and_summary_report_the_task_metric(glue_run):
  c, summary, rows = glue_run
  name = {"sst2": "accuracy", "mrpc": "f1"}[c.data.task]
  evaluated = [r for r in rows if "test_accuracy" in r]
  assert [r["round"] for r in evaluated] == [2, 3]
  assert all(r["task_metric_name"] == name and 0 <= r["test_task_metric"] <= 1
             for r in evaluated)
  assert summary["task_metric_name"] == name
  assert summary["final_task_metric"] == evaluated[-1]["test_task_metric"]
  assert summary["zero_shot_task_metric"] is not None
  if name == "accuracy":
    assert summary["final_task_metric"] == summary["final_accuracy"]
  assert len(summary["learned_prompt_ids"]) == c.prompt.length
  assert 0 <= summary["dev_task_metric"] <= 1


def test_task_metric_matches_recomputation_from_the_saved_prompt(glue_run, assets):
  c, summary, _ = glue_run
  tfds_dir, model_dir = assets
  data = load_glue(c.data.task, tfds_dir, splits=["validation"])
  texts, labels = data.splits["validation"].texts, data.splits["validation"].labels
  tok = make_masked_lm_tokenizer(model_dir, c.blackbox.max_length)
  bb = make_masked_lm_blackbox(model_dir, c.blackbox.max_length,
                               tok.verbalizer_ids(data.verbalizers))
  metric = {"sst2": accuracy_score, "mrpc": f1_score}[c.data.task]
  for prompt, key in ((summary["learned_prompt_ids"], "final_task_metric"),
                      ((), "zero_shot_task_metric")):
    ids, _ = tok.encode_template(data.task.template, texts, prompt)
    pred = np.argmax(np.asarray(jax.jit(bb)(jnp.asarray(ids))), -1)
    assert summary[key] == pytest.approx(metric(labels, pred), abs=1e-12), key


def test_candidate_losses_equal_separate_evaluations(assets):
  exp = build_experiment(smoke(assets))
  task, num = exp.task, exp.config.zo.num_directions
  probs = jax.random.dirichlet(jax.random.key(1), jnp.ones(exp.init_params["probs"].shape[-1]),
                               exp.init_params["probs"].shape[:1])
  candidates = {"probs": sample_one_hot(jax.random.key(2), probs, num)}
  batch = {"x": exp.clients.x[0, :4], "y": exp.clients.y[0, :4]}
  together = jax.jit(task.candidate_losses)(candidates, batch)
  one = jax.jit(lambda cand: jnp.mean(task.loss(task.logits(cand, batch["x"]), batch["y"])))
  alone = [one(jax.tree.map(lambda a: a[i], candidates)) for i in range(num)]
  prompts = np.asarray(jax.vmap(task.prompt_ids)(candidates))
  assert len({tuple(p) for p in prompts}) > 1 and len(set(np.asarray(together).tolist())) > 1
  np.testing.assert_allclose(np.asarray(together), np.asarray(alone), rtol=1e-5, atol=1e-6)
  # The slot holds the prompt right after <s>; zero-shot drops it.
  prompt = task.prompt_ids(exp.init_params)
  rows = np.asarray(task.insert_prompt(prompt, batch["x"]))
  np.testing.assert_array_equal(rows[:, 1:1 + task.prompt_length], np.tile(prompt, (4, 1)))
  bare = np.asarray(task.insert_prompt(None, batch["x"]))
  np.testing.assert_array_equal(bare[:, 1:-task.prompt_length],
                                np.asarray(batch["x"])[:, 1 + task.prompt_length:])


def test_missing_folders_fail_naming_the_field(assets, tmp_path):
  c = get_config("smoke")
  with pytest.raises(ConfigError, match=r"config\.blackbox\.model_dir is empty.*config\.json, "
                                        r"tokenizer\.json and model\.safetensors"):
    run(c, str(tmp_path / "a"), log=lambda s: None)
  c.blackbox.model_dir = assets[1]
  with pytest.raises(ConfigError, match=r"config\.data\.tfds_dir is empty.*array_record GLUE"):
    run(c, str(tmp_path / "b"), log=lambda s: None)
  os.makedirs(tmp_path / "weights_only")
  c.blackbox.model_dir = str(tmp_path / "weights_only")
  with pytest.raises(ConfigError, match=r"model_dir=.* lacks config\.json, tokenizer\.json, "
                                        r"model\.safetensors"):
    run(c, str(tmp_path / "c"), log=lambda s: None)
  c.blackbox.model_dir, c.data.tfds_dir, c.data.task = assets[1], assets[0], "rte"
  with pytest.raises(ConfigError, match=r"config\.data\.tfds_dir=.* has no .*glue/rte"):
    run(c, str(tmp_path / "d"), log=lambda s: None)


def test_configs_validate_and_errors_name_the_field():
  for mode in ("", "smoke", "mrpc", "mnli", "cola", "qqp", "qnli", "rte"):
    validate_config(get_config(mode))
  c = get_config("")
  c.data.test_split = "validation_mismatched"
  with pytest.raises(ConfigError, match=r"config\.data\.test_split='validation_mismatched'"):
    validate_config(c)
  c = get_config("mnli")
  c.data.test_split = "validation_mismatched"
  validate_config(c)
  for field, value, message in (("data.task", "wnli", "data.task"),
                                ("server.algorithm", "fedbpt", "server.algorithm"),
                                ("data.examples_per_client", 5, "data.examples_per_client"),
                                ("prompt.vocabulary_texts", "web", "prompt.vocabulary_texts")):
    c = get_config("smoke")
    section, leaf = field.split(".")
    c[section][leaf] = value
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
      validate_config(c)


def test_candidates_are_space_prefixed_bpe_tokens(tmp_path):
  """With a real byte-level BPE (trained here), candidates are whole 'Ġword' tokens."""
  from tokenizers import ByteLevelBPETokenizer

  from fedbbpt_jax.models.roberta import RobertaTokenizer
  from fedbbpt_jax.tasks.glue import glue_vocabulary
  texts = [text for text, _ in _sst2(np.random.default_rng(1), 40)] + ["It was great."] * 3
  bpe = ByteLevelBPETokenizer()
  bpe.train_from_iterator(texts, vocab_size=1000, min_frequency=1,
                          special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
  bpe.save(str(tmp_path / "tokenizer.json"))
  tok = RobertaTokenizer(str(tmp_path / "tokenizer.json"), max_length=32)
  specials = (tok.bos_id, tok.eos_id, tok.pad_id, tok.mask_id)
  for kind in ("frequent_words", "pmi_ngram"):
    ids = glue_vocabulary(kind, texts, tok, 8, True, specials)
    assert len(set(ids.tolist())) == 8 and not set(ids.tolist()) & set(specials)
    tokens = [bpe.id_to_token(int(i)) for i in ids]
    assert all(t.startswith("Ġ") for t in tokens), tokens
  assert bpe.id_to_token(tok.verbalizer_ids(["great"])[0]) == "Ġgreat"
