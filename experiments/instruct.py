"""Runs instruction optimisation (``configs/instruction.py``) and writes its summary.

    python -m experiments.instruct --config=configs/instruction.py[:smoke] --workdir=DIR \\
        [--config.generator.model_path=...] \\
        [--config.blackbox.url=... | --config.blackbox.model_path=...]

Prints the found instruction, its test score, the zero-shot score (the instruction
found at z = 0, before any search) and every party's cost, and writes
``DIR/summary.json`` (``fedbbpt_jax.tasks.instruction.experiment``). Both models
default to SmolLM2-135M-Instruct, which ships offline; ``config.server.aggregator``
picks the federated server's rule from the ``federated`` registry. Running again with
the same workdir resumes after the last complete round. A refused config ends in one
line ``error: <message>`` and exit status 2 (``config_cli``).
"""

from __future__ import annotations

from absl import flags
from ml_collections import config_flags

from experiments import config_cli
from fedbbpt_jax.core import ConfigError, UnknownNameError
from fedbbpt_jax.federated.aggregation.aggregators import make_aggregator
from fedbbpt_jax.tasks.instruction.experiment import run_instruction

_CONFIG = config_flags.DEFINE_config_file("config", None, "instruction config file[:mode]")
_WORKDIR = flags.DEFINE_string("workdir", None, "directory for summary.json")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config = _CONFIG.value
  try:
    aggregator = make_aggregator(config.server.aggregator, config, config.task.num_clients)
  except UnknownNameError as e:  # names config.server.aggregator and the registered ones
    raise ConfigError(str(e)) from e
  s = run_instruction(config, _WORKDIR.value, aggregator)
  if s["stopped"]:
    print(f"stopped early: {s['stopped']}", flush=True)
  print(f"{s['method']} on {s['task']}: instruction {s['instruction']!r} scores "
        f"{100 * s['test_score']:.1f}% on the test examples (zero-shot instruction "
        f"{100 * s['zero_shot_test_score']:.1f}%); {s['generations']} generations, "
        f"{s['train_queries']} training queries", flush=True)


if __name__ == "__main__":
  config_cli.run(main)
