"""A black box answering NaN or inf: ranked worst and counted, or the run stops cleanly.

The smoke run (3 clients, all in the cohort, 3 local steps, 4 candidates x 8 images a
step) with its black box wrapped so that some candidates' outputs are NaN or inf. The
wrapper poisons only the training calls (32 rows: 4 candidates x 8 images, candidate
major); the label mapping (10 rows) and evaluations (100 rows) stay clean.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

BATCH, CANDIDATES, CLIENTS, STEPS = 8, 4, 3, 3


class PoisonedCandidates(BlackBox):
  """``inner`` with candidate i of every training call answering ``values[i]`` (if given)."""

  def __init__(self, inner, values):
    self.inner, self.values = inner, values
    self.name, self.input_shape, self.output_size = inner.name, inner.input_shape, \
        inner.output_size

  def _outputs(self, inputs):
    out = self.inner._outputs(inputs)  # pylint: disable=protected-access
    if inputs.shape[0] != CANDIDATES * BATCH:
      return out
    for i, value in enumerate(self.values):
      if value is not None:
        out = out.at[i * BATCH:(i + 1) * BATCH].set(value)
    return out

  def raise_pending_error(self):
    self.inner.raise_pending_error()


def config(rounds):
  c = with_overrides(tiny(get_config("smoke")), train__rounds=rounds, train__eval_every=1,
                     baselines__zero_shot=False, baselines__local_only=False)
  assert (c.client.batch_size, c.data.num_clients, c.client.local_steps) == (BATCH, CLIENTS,
                                                                             STEPS)
  return c


def rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
  """The uninterrupted 2-round run with a healthy black box."""
  workdir = str(tmp_path_factory.mktemp("clean"))
  run(config(2), workdir, log=lambda s: None)
  return workdir


def test_nan_and_inf_candidates_are_ranked_worst_counted_and_params_stay_finite(clean, tmp_path):
  workdir = str(tmp_path / "poisoned")
  wrap = lambda bb: PoisonedCandidates(bb, [jnp.nan, jnp.inf])   # 2 of 4 candidates a step
  run(config(2), workdir, log=lambda s: None, wrap_blackbox=wrap)
  got = rows(workdir)
  assert [r["nonfinite_candidates"] for r in got] == [CLIENTS * STEPS * 2] * 2   # 18 a round
  assert [r["nonfinite_candidates"] for r in rows(clean)] == [0, 0]
  assert all(np.isfinite([r["train_loss"], r["test_loss"]]).all() for r in got)
  state, _ = RoundCheckpointer(workdir).restore(2)
  before, _ = RoundCheckpointer(workdir).restore(1)
  clean_state, _ = RoundCheckpointer(clean).restore(2)
  params = [np.asarray(a) for a in jax.tree.leaves(state["params"])]
  assert all(np.isfinite(p).all() for p in params)
  # The finite candidates still steer: round 2 moved the generator, and not as the clean run.
  step = max(float(np.abs(p - np.asarray(b)).max())
             for p, b in zip(params, jax.tree.leaves(before["params"])))
  gap = max(float(np.abs(p - np.asarray(c)).max())
            for p, c in zip(params, jax.tree.leaves(clean_state["params"])))
  assert step > 0 and gap > 0, (step, gap)


def test_a_round_with_every_candidate_non_finite_stops_the_run_and_a_rerun_resumes(
    clean, tmp_path):
  workdir = str(tmp_path / "broken_round_2")
  run(config(1), workdir, log=lambda s: None)                     # round 1, healthy
  broken = lambda bb: PoisonedCandidates(bb, [jnp.nan, jnp.inf, -jnp.inf, jnp.nan])
  with pytest.raises(FloatingPointError) as e:
    run(config(2), workdir, log=lambda s: None, wrap_blackbox=broken)
  assert str(e.value) == (
      f"round 2: the black box answered NaN or inf for all {CLIENTS * STEPS * CANDIDATES} "
      f"candidates of the round, so no step moved; the round is not saved (round 1 is the "
      f"last one saved in {workdir}): check the black box, then rerun the same command to "
      "resume")
  assert [r["round"] for r in rows(workdir)] == [1]
  assert RoundCheckpointer(workdir).latest_round() == 1
  run(config(2), workdir, log=lambda s: None)                     # healthy again: resumes
  for a, b in zip(rows(clean), rows(workdir), strict=True):
    for key in ("round", "train_loss", "test_accuracy", "test_loss", "bb_examples", "cohort"):
      assert a[key] == b[key], (key, a, b)
  s_clean, _ = RoundCheckpointer(clean).restore(2)
  s_resumed, _ = RoundCheckpointer(workdir).restore(2)
  for x, y in zip(jax.tree.leaves(s_clean), jax.tree.leaves(s_resumed), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
