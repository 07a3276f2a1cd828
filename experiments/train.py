"""Launches (or resumes) an experiment.

    python -m experiments.train --config=configs/fmnist_effnet.py[:smoke] --workdir=DIR \
        [--config.client.lr=0.02 ...] [--imports=my_pkg.plugins,...]

``--imports``: your modules, imported before the config is read, that register your own
datasets, algorithms, aggregators, black boxes, ... under the names the config then uses.

Rerunning the same command continues from the last complete round. At the end it
prints a table (zero-shot, local-only, Fed-BBPT, queries, wall time) and writes
DIR/summary.json and DIR/accuracy.png. An unknown config field or a refused config
value ends in one line ``error: <message>`` and exit status 2 (``config_cli``).
"""

from __future__ import annotations

from absl import flags, logging
from ml_collections import config_flags

from experiments import config_cli

from fedbbpt_jax.train import run
from fedbbpt_jax.train.summary_table import format_summary

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file[:mode]",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for checkpoints, metrics and plots")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  summary = run(_CONFIG.value, _WORKDIR.value, log=lambda s: print(s, flush=True))
  print(format_summary(summary, _WORKDIR.value), flush=True)


if __name__ == "__main__":
  config_cli.run(main)
