"""A vmapped sweep equals separate runs: seeds, an lr sweep, resume, refused mismatches."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs.fmnist_effnet import get_config
from fedbbpt_jax.federated import ServerState
from fedbbpt_jax.train import run
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.vmapped_sweep import SweepMismatchError, program_key, run_vmapped
from tests.helpers.tiny_models import tiny

ROUNDS = 2
WALL_CLOCK = {"round_seconds", "wall_seconds", "local_only_seconds"}
QUIET = lambda s: None  # noqa: E731


def smoke(seed=0, lr=0.01, rounds=ROUNDS, local_only=True):
  c = tiny(get_config("smoke"))
  c.seed, c.client.lr, c.train.rounds = seed, lr, rounds
  c.baselines.local_only = local_only
  return c


def read(workdir, name):
  path = os.path.join(workdir, name)
  if name.endswith(".jsonl"):
    return [json.loads(line) for line in open(path)]
  return json.load(open(path))


def assert_close(a, b, path="", rtol=1e-5, atol=1e-6):
  """Recursive equality; floats within tolerance; wall-clock fields ignored."""
  if isinstance(a, dict):
    assert set(a) == set(b), (path, set(a) ^ set(b))
    for k in a:
      if k not in WALL_CLOCK:
        assert_close(a[k], b[k], f"{path}.{k}", rtol, atol)
  elif isinstance(a, (list, tuple)):
    assert len(a) == len(b), path
    for i, (x, y) in enumerate(zip(a, b)):
      assert_close(x, y, f"{path}[{i}]", rtol, atol)
  elif isinstance(a, float) or isinstance(b, float):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=path)
  else:
    assert a == b, (path, a, b)


def final_pattern(workdir):
  like = {"pattern": jnp.zeros((8, 8, 3))}
  template = ServerState(params=like, opt_state=optax.sgd(1.0).init(like),
                         round=jnp.asarray(0, jnp.int32))
  state, _ = RoundCheckpointer(workdir).restore(ROUNDS, template)
  return np.asarray(state.params["pattern"])


def assert_same_run(vmapped_dir, separate_dir, names=("config.json", "baselines.json",
                                                     "summary.json", "metrics.jsonl")):
  for name in names:
    assert_close(read(vmapped_dir, name), read(separate_dir, name), name)
  assert os.path.getsize(os.path.join(vmapped_dir, "accuracy.png")) > 0
  np.testing.assert_allclose(final_pattern(vmapped_dir), final_pattern(separate_dir),
                             rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def separate(tmp_path_factory):
  """Separate runs: seeds 0, 1, 2; seed 0 at two learning rates with local-only."""
  root = tmp_path_factory.mktemp("separate")
  specs = {"s0": smoke(0, local_only=False), "s1": smoke(1, local_only=False),
           "s2": smoke(2, local_only=False), "lr1": smoke(0, 0.01), "lr3": smoke(0, 0.03)}
  dirs = {}
  for name, config in specs.items():
    dirs[name] = str(root / name)
    run(config, dirs[name], log=QUIET)
  return dirs


@pytest.fixture(scope="module")
def lr_sweep(tmp_path_factory):
  root = tmp_path_factory.mktemp("lr_sweep")
  dirs = [str(root / "lr1"), str(root / "lr3")]
  run_vmapped([smoke(0, 0.01), smoke(0, 0.03)], dirs, log=QUIET)
  return dirs


def test_three_seeds_in_one_program_equal_three_runs(separate, tmp_path):
  dirs = [str(tmp_path / f"s{s}") for s in range(3)]
  stats = {}
  summaries = run_vmapped([smoke(s, local_only=False) for s in range(3)], dirs, log=QUIET,
                          stats=stats)
  assert stats == {"round_traces": 1, "members": 3}
  for s, d in enumerate(dirs):
    assert_same_run(d, separate[f"s{s}"])
    assert read(d, "config.json")["seed"] == s
  assert len({s["final_loss"] for s in summaries}) == 3  # the seeds really differ


def test_lr_sweep_equals_separate_runs(separate, lr_sweep):
  # Local-only included: vmapped over the members too.
  assert_same_run(lr_sweep[0], separate["lr1"])
  assert_same_run(lr_sweep[1], separate["lr3"])
  assert not np.allclose(final_pattern(lr_sweep[0]), final_pattern(lr_sweep[1]))
  assert (read(lr_sweep[0], "summary.json")["local_only_client_accuracies"]
          != read(lr_sweep[1], "summary.json")["local_only_client_accuracies"])


def test_resumed_sweep_equals_uninterrupted(lr_sweep, tmp_path):
  # A crash during round 2: member 1 lost its round-2 checkpoint, member 0 kept it;
  # both lost summary.json; metrics.jsonl still has the uncommitted round-2 rows.
  dirs = [str(tmp_path / "lr1"), str(tmp_path / "lr3")]
  for src, dst in zip(lr_sweep, dirs):
    shutil.copytree(src, dst)
    os.remove(os.path.join(dst, "summary.json"))
  shutil.rmtree(os.path.join(dirs[1], "checkpoints", str(ROUNDS)))
  assert RoundCheckpointer(dirs[1]).latest_round() == ROUNDS - 1
  lines = []
  run_vmapped([smoke(0, 0.01), smoke(0, 0.03)], dirs, log=lines.append)
  assert sum(f"resuming after round {ROUNDS - 1}" in line for line in lines) == 2
  for d, full in zip(dirs, lr_sweep):
    assert_same_run(d, full)
    assert RoundCheckpointer(d).latest_round() == ROUNDS


def test_members_differing_elsewhere_are_refused(tmp_path):
  other = smoke(1)
  other.data.dirichlet_alpha = 0.1
  with pytest.raises(SweepMismatchError, match=r"data\.dirichlet_alpha"):
    run_vmapped([smoke(0), other], [str(tmp_path / "a"), str(tmp_path / "b")], log=QUIET)
  algo = smoke(0)
  algo.server.algorithm = "fedone"
  with pytest.raises(SweepMismatchError, match=r"server\.algorithm"):
    run_vmapped([smoke(0), algo], [str(tmp_path / "c"), str(tmp_path / "d")], log=QUIET)
  assert not os.path.exists(tmp_path / "a")  # refused before anything is written
  assert program_key(smoke(0)) == program_key(smoke(3, 0.5))
  assert program_key(smoke(0)) != program_key(other)
