"""The label mappings a run may start from, registered by name (``config.task.label_mapping``).

An entry derives the ``[num_sources, num_classes]`` mapping before training and says what
it cost: ``derive(gather, num_classes, task_cfg, dataset, num_sources) -> (label_map,
black-box examples, black-box calls)``, where ``gather(name, request)`` asks every client
for one of the family's set-up statistics (``setup_statistics.py``): the server never
sees an image. Entries tagged ``remappable`` can be re-derived from the prompted
predictions during training (``task.remap_every``, ILM).

* ``frequency``: every client counts the predictions the unprompted black box makes on
  its first ``mapping_examples_per_client`` images (``label_counts``, one call); the
  server sums the counts and takes the frequency mapping
  (``label_mapping.frequency_mapping``).
* ``fixed``: a hand-made list of source classes per label (``FIXED_MAPPINGS``, by
  dataset); no query.
* ``identity``: output ``i`` is class ``i`` (no query): for a black box that answers over
  the dataset's own classes, a zero-shot model given the dataset's class names (CLIP,
  ``blackbox.model='clip'``; the config check requires it there). Its output count must
  equal the dataset's number of classes.

A user registers their own: ``LABEL_MAPPINGS.register("mine", derive)``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from fedbbpt_jax.core import ConfigError, Registry
from fedbbpt_jax.tasks.image.label_mapping import (SEMANTIC_FASHION_MNIST, fixed_mapping,
                                                   frequency_mapping)
from fedbbpt_jax.tasks.image.setup_statistics import LABEL_COUNTS
from fedbbpt_jax.tasks.local_setup import Gather, summed, work

REMAPPABLE = "remappable"  # tag: ILM can re-derive it from the prompted predictions
# Datasets with a hand-made source-class list per label (``task.label_mapping='fixed'``).
FIXED_MAPPINGS = {"fashion_mnist": SEMANTIC_FASHION_MNIST}

Derive = Callable[[Gather, int, Any, str, int], tuple[np.ndarray, int, int]]
LABEL_MAPPINGS: Registry[Derive] = Registry(
    "label mapping", home="fedbbpt_jax.tasks.image.mappings.LABEL_MAPPINGS")


def frequency(gather: Gather, num_classes: int, cfg: Any, dataset: str,
              num_sources: int) -> tuple[np.ndarray, int, int]:
  """The frequency mapping of the clients' summed prediction counts (see the module)."""
  del dataset, num_classes, num_sources
  stats = gather(LABEL_COUNTS, {})
  return (frequency_mapping(summed(stats, "counts"), cfg.sources_per_label),) + work(stats)


def fixed(gather: Gather, num_classes: int, cfg: Any, dataset: str,
          num_sources: int) -> tuple[np.ndarray, int, int]:
  """The dataset's hand-made list (``FIXED_MAPPINGS``); no query."""
  del gather, num_classes, cfg
  if dataset not in FIXED_MAPPINGS:
    raise ConfigError(f"config.task.label_mapping='fixed' has a list only for "
                      f"{sorted(FIXED_MAPPINGS)}, not config.data.name={dataset!r}")
  return fixed_mapping(FIXED_MAPPINGS[dataset], num_sources), 0, 0


LABEL_MAPPINGS.register("frequency", frequency, tags=(REMAPPABLE,))
LABEL_MAPPINGS.register("fixed", fixed)


def identity(gather: Gather, num_classes: int, cfg: Any, dataset: str,
             num_sources: int) -> tuple[np.ndarray, int, int]:
  """Output ``i`` -> class ``i`` (see the module docstring); no query.

  Raises:
    ConfigError: the black box's output count is not the dataset's number of classes.
  """
  del gather, cfg
  if num_sources != num_classes:
    raise ConfigError(f"config.task.label_mapping='identity' reads output i as class i, and "
                      f"the black box answers {num_sources} outputs for the {num_classes} "
                      f"classes of config.data.name={dataset!r}: use a mapping that pools "
                      "outputs into classes ('frequency', 'fixed')")
  return np.eye(num_classes, dtype=np.float32), 0, 0


LABEL_MAPPINGS.register("identity", identity)
