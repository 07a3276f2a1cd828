"""A ``--config=`` file for CLI tests: a family's smoke config on its tiny black box.

Loading this file registers ``tiny_cnn`` and ``tiny_bert`` in the CLI process (the way
a user's own config file registers their model), so a subprocess run compiles in a
fraction of the real models' time. The mode names the smoke config:

    python -m experiments.train --config=tests/helpers/tiny_config.py:image --workdir=DIR
    python -m experiments.train --config=tests/helpers/tiny_config.py:text --workdir=DIR
"""

import ml_collections

from configs import drug_minilm, fmnist_effnet
from tests.helpers.tiny_models import tiny

SMOKE_CONFIGS = {"image": fmnist_effnet, "text": drug_minilm}


def get_config(mode: str) -> ml_collections.ConfigDict:
  """The smoke config of ``mode`` ('image' or 'text') with the tiny model of its family."""
  if mode not in SMOKE_CONFIGS:
    raise ValueError(f"tests/helpers/tiny_config.py: mode {mode!r} is not one of "
                     f"{sorted(SMOKE_CONFIGS)}")
  return tiny(SMOKE_CONFIGS[mode].get_config("smoke"))
