"""The text family's candidate vocabulary by role: derived once from the clients' counts,
kept in the workdir, read back on resume and by the nodes.

A simulation or a deployment's server derives it from the clients' summed counts
(``setup_statistics.gathered_phrases``, asked through the build's ``Gather``) and writes
``VOCABULARY_FILE`` in its workdir; a resume reads that file and asks nothing again. A
node reads the file the server sent; while it is not there yet (the server is still
gathering the counts) the node builds with a placeholder of the same shape, never
trained with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.models.minilm import TextTokenizer
from fedbbpt_jax.prompts.vocabulary import flatten_to_token_ids
from fedbbpt_jax.tasks.local_setup import Gather, read_setup_file, write_setup_file
from fedbbpt_jax.tasks.protocol import NODE
from fedbbpt_jax.tasks.text.setup_statistics import gathered_phrases

VOCABULARY_FILE = "candidate_vocabulary.npz"  # the candidates' word-piece ids


def special_ids(tokenizer: TextTokenizer) -> tuple[int, ...]:
  """The ids never offered as candidates."""
  return (tokenizer.pad_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.unk_id)


def gathered_vocabulary(pcfg: Any, tokenizer: TextTokenizer, gather: Gather) -> np.ndarray:
  """``prompt.vocabulary_size`` word-piece ids of ``prompt.vocabulary`` from the clients'
  summed counts (no special token).

  Raises:
    ConfigError: fewer distinct candidates exist (naming the fields that decide it).
  """
  phrases = gathered_phrases(pcfg.vocabulary, gather)
  min_count = pcfg.get("vocabulary_min_count", 1)
  try:
    return flatten_to_token_ids(phrases, tokenizer.pieces, pcfg.vocabulary_size,
                                special_ids(tokenizer))
  except ValueError as e:
    raise ConfigError(f"config.prompt.vocabulary_size={pcfg.vocabulary_size} "
                      f"(config.prompt.vocabulary={pcfg.vocabulary!r}, "
                      f"config.prompt.vocabulary_min_count={min_count}: only "
                      f"what a client counts that often leaves it): {e}") from e


def candidate_vocabulary(pcfg: Any, tokenizer: TextTokenizer, gather: Gather | None,
                         workdir: str | None, role: str) -> np.ndarray:
  """The candidates in force: the workdir's ``VOCABULARY_FILE``, else (not on a node)
  gathered and written there, else (a node while the server gathers) all ``[PAD]``."""
  ids = read_setup_file(workdir, VOCABULARY_FILE)
  if ids is not None:
    return np.asarray(ids, np.int32)
  if role == NODE or gather is None:
    return np.full(int(pcfg.vocabulary_size), tokenizer.pad_id, np.int32)
  ids = gathered_vocabulary(pcfg, tokenizer, gather)
  write_setup_file(workdir, VOCABULARY_FILE, ids)
  return ids
