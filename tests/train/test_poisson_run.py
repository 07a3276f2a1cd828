"""Poisson cohorts in a run: the query counters equal the members' real black-box traffic,
and the config refuses what the sampling cannot run, naming the fields."""

import json
import os
import re

import pytest

from configs import fmnist_effnet
from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.train import run, validate_config
from fedbbpt_jax.train.records import check_or_write_config
from fedbbpt_jax.train.vmapped_sweep import SweepMismatchError, run_vmapped
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

ROUNDS, CLIENTS, COHORT = 3, 30, 3


def poisson_config(**overrides):
  """The digits smoke config on the tiny black box: 30 clients, q = 0.1, DP-FedAvg."""
  config = with_overrides(tiny(fmnist_effnet.get_config("smoke")), train__rounds=ROUNDS,
                          train__eval_every=ROUNDS, baselines__zero_shot=False,
                          baselines__local_only=False, data__num_clients=CLIENTS,
                          server__cohort_size=COHORT, server__aggregator="dp_gaussian",
                          client__local_steps=2)
  return with_overrides(config, **overrides)


def test_counters_equal_the_members_real_black_box_traffic(tmp_path):
  config = poisson_config()
  wrapped, lines = [], []
  summary = run(config, str(tmp_path), log=lines.append,
                wrap_blackbox=lambda bb: wrapped.append(CountingBlackBox(bb)) or wrapped[-1])
  real = wrapped[0].counts()
  with open(tmp_path / "metrics.jsonl") as f:
    rows = [json.loads(line) for line in f]
  members = [r["participants"] for r in rows]
  assert [len(r["cohort"]) for r in rows] == members
  assert all(r["cohort_overflow"] == 0 for r in rows)
  # ceil(3 + 8 sqrt(2.7)) = 17 slots, chunks of 5: 20 slots, of which about 3 are filled.
  assert len(set(members)) > 1 and max(members) < 20
  counters = summary["query_counters"]
  steps, batch = config.client.local_steps, config.client.batch_size
  # The estimator's candidates per step, as the run's first line states them.
  candidates = int(re.search(r"\((\d+) candidates/step\)", "\n".join(lines)).group(1))
  setup_examples = CLIENTS * config.task.mapping_examples_per_client  # the label mapping
  assert counters["client_activations"] == sum(members)
  assert counters["bb_examples"] == setup_examples + sum(members) * steps * candidates * batch
  n_test = summary["test_examples"]
  assert counters["eval_bb_examples"] == n_test
  assert real["examples"] == counters["bb_examples"] + counters["eval_bb_examples"]
  eval_calls = -(-n_test // config.train.eval_batch_size)
  # One call per client (mapping), per member step (all candidates), per evaluation chunk.
  assert real["calls"] == CLIENTS + sum(members) * steps + eval_calls
  # Every row reports the traffic of the members only.
  per_member = rows[0]["download_bytes"] // members[0]
  assert [r["download_bytes"] for r in rows] == [m * per_member for m in members]
  assert [r["upload_bytes"] for r in rows] == [m * per_member for m in members]  # dense


@pytest.mark.parametrize("overrides,message", [
    (dict(server__sampling="fixed"),
     "config.server.sampling='fixed' (how the simulation draws cohorts) contradicts "
     "config.server.dp.sampling='poisson' (what the privacy accountant assumes): set both to "
     "the same value, or server.sampling='' to follow server.dp.sampling"),
    (dict(server__sampling="bernoulli"),
     "config.server.sampling='bernoulli' is not one of ['fixed', 'poisson'], '' = "
     "server.dp.sampling when server.aggregator='dp_gaussian', else 'fixed'"),
    (dict(server__aggregator="weighted_mean", server__sampling="poisson",
          server__algorithm="fedone"),
     "config.server.sampling resolves to 'poisson' (variable cohorts), which only "
     "server.algorithm='fedbbpt' runs, not 'fedone'"),
    (dict(parallel__backend="shard"),
     "config.parallel.backend='shard' cannot run Poisson cohorts"),
    (dict(parallel__cohort_chunk=-1), "config.parallel.cohort_chunk=-1 must be >= 0"),
])
def test_refusals_name_the_field(overrides, message):
  with pytest.raises(ConfigError) as e:
    validate_config(poisson_config(**overrides))
  assert message in str(e.value)


def test_fixed_dp_sampling_and_every_client_are_plain_full_cohorts():
  # server.sampling '' follows server.dp.sampling='fixed'; q = 1 is the full cohort.
  for overrides in (dict(server__dp__sampling="fixed"), dict(server__cohort_size=0)):
    validate_config(poisson_config(**overrides))


def test_a_vmapped_sweep_refuses_poisson_cohorts(tmp_path):
  configs = [poisson_config(seed=0), poisson_config(seed=1)]
  with pytest.raises(SweepMismatchError, match="config.server.sampling resolves to 'poisson'"):
    run_vmapped(configs, [str(tmp_path / "a"), str(tmp_path / "b")], log=lambda s: None)


def test_a_dp_run_recorded_before_server_sampling_does_not_resume_as_poisson(tmp_path):
  config = poisson_config()
  old = json.loads(config.to_json())
  del old["server"]["sampling"]  # a run recorded before the field existed
  with open(os.path.join(tmp_path, "config.json"), "w") as f:
    json.dump(old, f)
  with pytest.raises(ValueError, match="holds a DP run recorded before config.server.sampling"):
    check_or_write_config(str(tmp_path), config)
  # Without DP ('' = fixed cohorts, as before) it resumes.
  plain = poisson_config(server__aggregator="weighted_mean")
  old = json.loads(plain.to_json())
  del old["server"]["sampling"]
  with open(os.path.join(tmp_path, "config.json"), "w") as f:
    json.dump(old, f)
  check_or_write_config(str(tmp_path), plain)


def test_a_deployment_refuses_poisson_cohorts():
  from fedbbpt_jax.flower.server_app import check_deployable  # pylint: disable=import-outside-toplevel
  with pytest.raises(ConfigError, match="config.server.sampling resolves to 'poisson' .* which "
                                        "a deployment does not run"):
    check_deployable(poisson_config())
  check_deployable(poisson_config(server__dp__sampling="fixed"))  # fixed cohorts deploy
