"""Iterative label mapping (ILM-VP), federated: what it derives, what it costs, resume.

``task.remap_every = R``: before every R-th round the clients count the prompted
black box's predictions on their mapping images, the server sums the counts and
re-derives the frequency mapping. Smoke config (digits, 3 clients, 32 px) on the tiny
CNN registered from test code (``tests/helpers/tiny_models.py``): what is checked here
is the mapping's derivation, metering and resume, not what a real network predicts.
"""

import functools
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from configs import fmnist_effnet
from fedbbpt_jax.blackbox.counting import CountingBlackBox
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.data import ClientData
from fedbbpt_jax.tasks.image.remap import choose_mapping, refresh_file
from fedbbpt_jax.tasks.image.setup_statistics import correct_predictions, remap_correct
from fedbbpt_jax.train import run, validate_config
from fedbbpt_jax.train.build import build_experiment
from fedbbpt_jax.train.checkpoint import RoundCheckpointer
from fedbbpt_jax.train.vmapped_sweep import run_vmapped
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_models import tiny

ROUNDS = 3


def _config(remap_every=1, rounds=ROUNDS):
  return with_overrides(tiny(fmnist_effnet.get_config("smoke")), train__rounds=rounds,
                        train__eval_every=1, task__remap_every=remap_every,
                        baselines__zero_shot=False, baselines__local_only=False,
                        # a step large enough that the prompt moves the tiny CNN's
                        # predictions: ILM re-derived a different mapping before both
                        # rounds 2 and 3 at client.lr 0.05, 0.2 and 0.3 (once at 0.1)
                        client__lr=0.2)


def _rows(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def remapped_run(tmp_path_factory):
  """3 rounds with the mapping re-derived before rounds 2 and 3, black box counted."""
  workdir = str(tmp_path_factory.mktemp("ilm") / "run")
  wrapped = []
  summary = run(_config(), workdir, log=lambda s: None,
                wrap_blackbox=lambda bb: wrapped.append(CountingBlackBox(bb)) or wrapped[-1])
  return workdir, summary, wrapped[0].counts()


# --- ILM recomputed in numpy ------------------------------------------------------------

def numpy_counts(logits: np.ndarray, labels: np.ndarray, num_labels: int) -> np.ndarray:
  """``C[s, t]``: images of label t the black box puts in source class s, plus 1e-6 times
  the softmax probability of s summed over label t's images (the documented tie-break)."""
  predicted = np.eye(logits.shape[1])[logits.argmax(1)]
  is_label = np.eye(num_labels)[labels]
  return predicted.T @ is_label + 1e-6 * scipy.special.softmax(logits, axis=1).T @ is_label


def numpy_greedy_mapping(counts: np.ndarray, k: int) -> np.ndarray:
  """ILM's frequency rule: walk the (source, label) pairs by decreasing count; a source
  goes to a label while it is unused and the label holds fewer than k sources."""
  num_sources, num_labels = counts.shape
  mapping = np.zeros((num_sources, num_labels), np.float32)  # as the run stores it
  used, held = set(), np.zeros(num_labels, int)
  for flat in np.argsort(-counts, axis=None, kind="stable"):
    source, label = divmod(int(flat), num_labels)
    if source not in used and held[label] < k:
      mapping[source, label] = 1.0 / k
      used.add(source)
      held[label] += 1
  assert held.tolist() == [k] * num_labels
  return mapping


def numpy_correct(logits: np.ndarray, labels: np.ndarray, mapping: np.ndarray) -> int:
  """Images whose label's mapped sources have the highest mean logit."""
  sources = [np.flatnonzero(mapping[:, t]) for t in range(mapping.shape[1])]
  label_logits = np.stack([logits[:, s].mean(1) for s in sources], 1)
  return int(np.sum(label_logits.argmax(1) == labels))


@pytest.fixture(scope="module")
def rebuilt(remapped_run):
  """The run's experiment again (its first mapping read back, no query), the prompted
  black box jitted as the run calls it, and the global prompt after round r."""
  workdir = remapped_run[0]
  exp = build_experiment(_config(), workdir=workdir)
  template = exp.algorithm.init(exp.init_params)
  after = lambda r: exp.algorithm.model(RoundCheckpointer(workdir).restore(r, template)[0])
  return exp, jax.jit(exp.task.source_logits), after


def mappings_in_force(workdir):
  """The mapping before round 1 (from unprompted predictions), 2 and 3."""
  files = ["label_map.npz"] + [refresh_file(r) for r in range(1, ROUNDS)]
  out = []
  for name in files:
    with np.load(os.path.join(workdir, name)) as f:
      out.append((f["label_map"], int(f["mapping_queries"]), int(f["mapping_calls"])))
  return out


def test_each_mapping_is_the_frequency_mapping_of_the_clients_predictions(remapped_run,
                                                                          rebuilt):
  """The first mapping comes from the unprompted black box on the clients' first m
  images; before round r + 1 the same images go through it under the global prompt of
  round r, and the frequency mapping of the summed counts is kept only if it classifies
  those images at least as well as the mapping in force. Each costs one call a client."""
  workdir = remapped_run[0]
  exp, predict, after = rebuilt
  config = _config()
  m, k = config.task.mapping_examples_per_client, config.task.sources_per_label
  labels = np.concatenate([np.asarray(exp.clients.y[i, :m]) for i in range(exp.num_clients)])
  unprompted = jax.jit(lambda x: exp.task.source_logits(None, x))
  in_force, changed = None, []
  for r, (derived, queries, calls) in enumerate(mappings_in_force(workdir)):
    ask = unprompted if r == 0 else functools.partial(predict, after(r))
    logits = np.concatenate([np.asarray(ask(exp.clients.x[i, :m]), np.float64)
                             for i in range(exp.num_clients)])
    candidate = numpy_greedy_mapping(numpy_counts(logits, labels, exp.task.num_classes), k)
    assert (queries, calls) == (exp.num_clients * m, exp.num_clients)
    if r == 0:
      np.testing.assert_array_equal(derived, candidate)
    else:
      new, old = (numpy_correct(logits, labels, candidate),
                  numpy_correct(logits, labels, in_force))
      np.testing.assert_array_equal(derived, candidate if new >= old else in_force)
      assert numpy_correct(logits, labels, derived) >= old
      changed.append(not np.array_equal(derived, in_force))
    in_force = derived
  assert any(changed)  # ILM changed the mapping in this run (so the checks above bite)


def test_each_round_is_evaluated_under_the_mapping_then_in_force(remapped_run, rebuilt):
  """Every round's test accuracy is that round's prompt under the mapping derived
  before it (not the first one), recomputed from the black box's outputs."""
  workdir = remapped_run[0]
  exp, predict, after = rebuilt
  maps = [label_map for label_map, _, _ in mappings_in_force(workdir)]
  chunk = _config().train.eval_batch_size
  test_y = np.asarray(exp.test_y)
  for r, row in enumerate(_rows(workdir), start=1):
    params = after(r)
    logits = np.concatenate([np.asarray(predict(params, exp.test_x[j:j + chunk]), np.float64)
                             for j in range(0, len(test_y), chunk)])
    assert row["test_accuracy"] == numpy_correct(logits, test_y, maps[r - 1]) / len(test_y)
  # The last round's accuracy under the first mapping would differ: the remapping counts.
  assert row["test_accuracy"] != numpy_correct(logits, test_y, maps[0]) / len(test_y)


def test_a_candidate_mapping_is_kept_only_if_it_is_not_worse():
  # Two images of labels 0 and 1; sources 0..3. The current mapping (0 -> label 0,
  # 1 -> label 1) gets both right; the candidate (2 -> 0, 3 -> 1) gets none right.
  logits = np.asarray([[5.0, 0.0, 0.0, 4.0], [0.0, 5.0, 1.0, 0.0]])
  labels = np.asarray([0, 1])
  current = np.asarray([[1, 0], [0, 1], [0, 0], [0, 0]], np.float32)
  candidate = np.asarray([[0, 0], [0, 0], [1, 0], [0, 1]], np.float32)
  assert correct_predictions(logits, labels, current) == 2
  assert correct_predictions(logits, labels, candidate) == 0
  # The client's guard statistic counts both on the outputs it kept, then forgets them.
  client = ClientData(x=jnp.zeros((2, 1)), y=jnp.asarray(labels), num_examples=jnp.asarray(2))
  store = {"remap_3_logits": logits, "remap_3_labels": labels}
  right = remap_correct(2)(client, {"round": 3, "current": current, "candidate": candidate},
                           store)
  assert right == {"current": 2, "candidate": 0} and store == {}
  with pytest.raises(RuntimeError, match="kept no outputs of the re-map before round 4"):
    remap_correct(2)(client, {"round": 3, "current": current, "candidate": candidate}, store)
  asked = []

  def correct():
    asked.append(1)
    return right["current"], right["candidate"]

  np.testing.assert_array_equal(choose_mapping(current, candidate, "better", correct), current)
  np.testing.assert_array_equal(choose_mapping(candidate, current, "better",
                                               lambda: (0, 2)), current)
  np.testing.assert_array_equal(choose_mapping(current, candidate, "always", correct), candidate)
  assert len(asked) == 1  # 'always' asks the clients nothing
  with pytest.raises(ValueError, match="remap_accept"):
    choose_mapping(current, candidate, "sometimes", correct)


def test_remapping_is_metered_and_the_meter_equals_the_real_traffic(remapped_run):
  workdir, summary, real = remapped_run
  config = _config()
  rows = _rows(workdir)
  per_mapping = 3 * config.task.mapping_examples_per_client  # 3 clients, one call each
  assert [r.get("refresh_bb_examples") for r in rows] == [None, per_mapping, per_mapping]
  assert summary["task_refreshes"] == 2 and summary["refresh_bb_examples"] == 2 * per_mapping
  # Training: every client, local step and candidate (spsa_gc: 2 directions x +-) on a
  # minibatch; the first mapping and the two re-mappings on the mapping images.
  steps, batch = config.client.local_steps, config.client.batch_size
  candidates = ROUNDS * 3 * steps * 2 * config.zo.num_directions
  counters = summary["query_counters"]
  assert counters["candidates"] == candidates
  assert counters["bb_examples"] == candidates * batch + 3 * per_mapping
  assert counters["bb_calls"] == candidates + 3 * 3
  assert counters["eval_bb_examples"] == ROUNDS * config.data.test_examples
  assert real["examples"] == counters["bb_examples"] + counters["eval_bb_examples"]
  # Real forwards: the first mapping and each re-mapping one per client, one per client
  # and local step (all candidates in one call), two per evaluation (200 test images).
  assert real["calls"] == 3 + 2 * 3 + ROUNDS * 3 * steps + ROUNDS * 2


@pytest.mark.parametrize("crash", ["before_round_3", "mapping_file_lost"])
def test_resume_after_a_crash_is_bit_exact(remapped_run, tmp_path, crash):
  whole, _, _ = remapped_run
  resumed = str(tmp_path / "resumed")
  shutil.copytree(whole, resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "3"))  # resumes after round 2: reads
  # round 2's mapping back (no query) and finds round 3's in the workdir (metered again)
  if crash == "mapping_file_lost":  # crashed before round 3's mapping was written
    os.remove(os.path.join(resumed, refresh_file(2)))
  os.remove(os.path.join(resumed, "summary.json"))
  run(_config(), resumed, log=lambda s: None)
  for a, b in zip(_rows(whole), _rows(resumed), strict=True):
    for key in ("train_loss", "test_accuracy", "test_loss", "bb_examples", "bb_calls"):
      assert a[key] == b[key], (crash, key, a, b)
  for x, y in zip(jax.tree.leaves(RoundCheckpointer(whole).restore(3)[0]),
                  jax.tree.leaves(RoundCheckpointer(resumed).restore(3)[0]), strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_a_lost_earlier_mapping_stops_the_resume_with_its_file_named(remapped_run, tmp_path):
  whole, _, _ = remapped_run
  resumed = str(tmp_path / "resumed")
  shutil.copytree(whole, resumed)
  shutil.rmtree(os.path.join(resumed, "checkpoints", "3"))
  os.remove(os.path.join(resumed, refresh_file(1)))  # round 2's mapping: needed to go on
  with pytest.raises(FileNotFoundError, match=refresh_file(1)):
    run(_config(), resumed, log=lambda s: None)


def test_remapping_is_checked():
  with pytest.raises(ConfigError, match="config.task.remap_every"):
    validate_config(with_overrides(_config(), task__remap_every=-1))
  with pytest.raises(ConfigError, match="config.task.remap_accept"):
    validate_config(with_overrides(_config(), task__remap_accept="never"))
  with pytest.raises(ConfigError, match="label_mapping='fixed'"):
    validate_config(with_overrides(_config(), task__label_mapping="fixed"))


TIMING = {"round_seconds", "wall_seconds", "refresh_seconds"}


def test_three_seeds_remapping_in_one_program_equal_three_runs(tmp_path):
  """A refresh changes data, not the program: three seeds, each re-deriving its own
  mapping from its own prompt before every round, run as one vmapped sweep traced once,
  and each member's mappings, rows and final state equal its separate run's (floats up
  to the vmapped program's rounding)."""
  configs = [with_overrides(_config(), seed=s) for s in (0, 1, 2)]
  separate = [str(tmp_path / f"run{s}") for s in (0, 1, 2)]
  for config, workdir in zip(configs, separate):
    run(config, workdir, log=lambda s: None)
  swept = [str(tmp_path / f"member{s}") for s in (0, 1, 2)]
  stats = {}
  run_vmapped(configs, swept, log=lambda s: None, stats=stats)
  assert stats == {"round_traces": 1, "members": 3}
  mappings = []
  for one, member in zip(separate, swept):
    maps = mappings_in_force(member)
    for (a, qa, ca), (b, qb, cb) in zip(mappings_in_force(one), maps, strict=True):
      np.testing.assert_array_equal(a, b)
      assert (qa, ca) == (qb, cb)
    mappings.append(maps)
    for a, b in zip(_rows(one), _rows(member), strict=True):
      assert set(a) == set(b)
      for key in set(a) - TIMING:
        if isinstance(a[key], float):
          np.testing.assert_allclose(a[key], b[key], rtol=1e-5, atol=1e-6, err_msg=key)
        else:
          assert a[key] == b[key], key
    for x, y in zip(jax.tree.leaves(RoundCheckpointer(one).restore(ROUNDS)[0]),
                    jax.tree.leaves(RoundCheckpointer(member).restore(ROUNDS)[0]), strict=True):
      np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
  # The members re-derived different mappings (each from its own prompt).
  assert any(not np.array_equal(mappings[0][-1][0], m[-1][0]) for m in mappings[1:])
