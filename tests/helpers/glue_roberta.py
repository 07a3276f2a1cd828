"""Tiny offline GLUE data and a tiny random RoBERTa masked LM, built inside tests.

Shared by ``tests/data/test_glue.py``, ``tests/models/test_roberta.py`` and the
GLUE end-to-end runs: a GLUE-shaped TFDS builder written as array_record into a
temporary ``data_dir`` (same name and layout as TFDS' ``glue``), and a 2-layer,
hidden-32 RoBERTa with random weights in Hugging Face naming, with a word-level
``tokenizer.json``. Nothing touches the TFDS catalogue or a model hub.
"""

import json
import os
import struct

import numpy as np

HF_CONFIG = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
             "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 40,
             "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1}
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
TEMPLATE_WORDS = ["great", "terrible", "it", "was", "a", "film", "long", "very", ".", "?", ",",
                  "entailment", "yes", "no"]


def random_state_dict(seed=0, config=None):
  """Random HF-named ``RobertaForMaskedLM`` tensors (tied decoder) for ``config``."""
  c = dict(HF_CONFIG if config is None else config)
  rng = np.random.default_rng(seed)
  h, f = c["hidden_size"], c["intermediate_size"]
  r = lambda *s: rng.normal(0, 0.2, s).astype(np.float32)
  positions = c["max_position_embeddings"]
  sd = {"roberta.embeddings.word_embeddings.weight": r(c["vocab_size"], h),
        "roberta.embeddings.position_embeddings.weight": r(positions, h),
        "roberta.embeddings.token_type_embeddings.weight": r(1, h),
        "roberta.embeddings.LayerNorm.weight": 1 + r(h), "roberta.embeddings.LayerNorm.bias": r(h),
        "roberta.embeddings.position_ids": np.arange(positions, dtype=np.int64)[None],
        "lm_head.dense.weight": r(h, h), "lm_head.dense.bias": r(h),
        "lm_head.layer_norm.weight": 1 + r(h), "lm_head.layer_norm.bias": r(h),
        "lm_head.bias": r(c["vocab_size"])}
  sd["lm_head.decoder.weight"] = sd["roberta.embeddings.word_embeddings.weight"].copy()
  for i in range(c["num_hidden_layers"]):
    p = f"roberta.encoder.layer.{i}"
    for name, (o, n) in {"attention.self.query": (h, h), "attention.self.key": (h, h),
                         "attention.self.value": (h, h), "attention.output.dense": (h, h),
                         "intermediate.dense": (f, h), "output.dense": (h, f)}.items():
      sd[f"{p}.{name}.weight"], sd[f"{p}.{name}.bias"] = r(o, n), r(o)
    for name in ("attention.output.LayerNorm", "output.LayerNorm"):
      sd[f"{p}.{name}.weight"], sd[f"{p}.{name}.bias"] = 1 + r(h), r(h)
  return sd


def write_safetensors(path, sd):
  codes = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
  header, blobs, offset = {}, [], 0
  for name, a in sd.items():
    raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
    header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                    "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
  head = json.dumps(header).encode()
  with open(path, "wb") as fh:
    fh.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def write_model_dir(path, sd, config=None):
  """Writes ``config.json`` and ``model.safetensors``; returns the folder as a string."""
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as fh:
    json.dump(HF_CONFIG if config is None else config, fh)
  write_safetensors(os.path.join(path, "model.safetensors"), sd)
  return str(path)


def make_tokenizer_file(path, words=None, vocab_size=None):
  """Word-level ``tokenizer.json`` (whitespace split) with RoBERTa's special tokens.

  Ids: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3, then ``words``. Without
  ``vocab_size``, ``<mask>`` is appended after the words; with it, filler words
  pad the vocabulary and ``<mask>`` takes id ``vocab_size - 1`` (RoBERTa's
  convention, which ``load_roberta_mlm`` assumes).

  Returns:
    ``(path, {word: id})``.
  """
  from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers
  words = SPECIALS + list(TEMPLATE_WORDS if words is None else words)
  if vocab_size is not None:
    if len(words) > vocab_size - 1:
      raise ValueError(f"{len(words)} words do not fit a vocabulary of {vocab_size}")
    words += [f"filler{i}" for i in range(vocab_size - 1 - len(words))] + ["<mask>"]
  tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Whitespace()
  tok.add_special_tokens(["<s>", "<pad>", "</s>", AddedToken("<mask>", lstrip=True)])
  tok.save(str(path))
  return str(path), {w: i for i, w in enumerate(words)}


def write_tiny_roberta(path, words, seed=0):
  """A complete tiny model folder (config, weights, tokenizer with ``<mask>`` = 99)."""
  write_model_dir(path, random_state_dict(seed))
  _, vocab = make_tokenizer_file(os.path.join(path, "tokenizer.json"), words,
                                 vocab_size=HF_CONFIG["vocab_size"])
  return str(path), vocab


def make_glue_builder(data):
  """A TFDS builder named ``glue`` writing ``data[config][split] = [(texts, label), ...]``."""
  import tensorflow_datasets as tfds

  from fedbbpt_jax.data.glue import GLUE_TASKS

  with tfds.core.registered.skip_registration():

    class Glue(tfds.core.GeneratorBasedBuilder):  # same name/layout as TFDS' glue builder
      VERSION = tfds.core.Version("2.0.0")
      BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=n) for n in data]

      def _info(self):
        task = GLUE_TASKS[self.builder_config.name]
        features = {k: tfds.features.Text() for k in task.text_keys}
        features["label"] = tfds.features.ClassLabel(names=list(task.label_names))
        features["idx"] = np.int32
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(features),
                                     disable_shuffling=True)

      def _split_generators(self, dl_manager):
        return {s: self._generate_examples(s) for s in data[self.builder_config.name]}

      def _generate_examples(self, split):
        task = GLUE_TASKS[self.builder_config.name]
        for i, (texts, label) in enumerate(data[self.builder_config.name][split]):
          texts = (texts,) if isinstance(texts, str) else texts
          yield i, {**dict(zip(task.text_keys, texts)), "label": label, "idx": i}

  return Glue


def prepare_glue(root, data):
  """Prepares every config of ``data`` as array_record under ``root``; returns ``root``."""
  import tensorflow_datasets as tfds
  builder_cls = make_glue_builder(data)
  for name in data:
    builder = builder_cls(config=name, data_dir=str(root), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return str(root)
