"""S runs of one experiment in one compiled program: a sweep over seeds or hyper-parameters.

The members of a vmapped sweep may differ only in ``config.seed`` and in the fields
that feed ``HParams`` (``VMAPPABLE_FIELDS``); everything else (data, partition,
estimator, algorithm, rounds, ...) changes the program and is refused, naming the
field. The experiment is built once; the members' server states, root keys and
``HParams`` are stacked on a leading sweep axis and every round is one call of
``jit(vmap(algorithm.apply))``. Each member then gets its own workdir with exactly
the records a separate ``train.run`` would write (config.json with the member's
config, metrics.jsonl, checkpoints, baselines.json, summary.json, accuracy.png),
equal to a separate run's up to float rounding (wall-clock fields aside).

    from fedbbpt_jax.train.vmapped_sweep import run_vmapped
    summaries = run_vmapped([cfg_seed0, cfg_seed1, cfg_seed2], ["/tmp/s0", "/tmp/s1", "/tmp/s2"])

Resume: rerunning continues after the last round complete in every member (a member
that got one round further before a crash recomputes that round, identically).
Baselines: zero-shot has no prompt, so it is computed once and copied; local-only
depends on seed and hyper-parameters and is vmapped over the members as well.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import refuse_host_server, refuse_poisson
from fedbbpt_jax.tasks import task_state
from fedbbpt_jax.tasks.evaluation import Evaluator
from fedbbpt_jax.train.baselines import local_only_fields
from fedbbpt_jax.train.build import Experiment, initial_params
from fedbbpt_jax.train.driver import Log, RoundExecutor, RoundOutcome, drive
from fedbbpt_jax.train.simulation import placed
from fedbbpt_jax.train.task_schedule import TaskSchedule, task_round
from fedbbpt_jax.zo import HParams

# Config fields members may differ in -> the HParams field they set (None: the seed).
VMAPPABLE_FIELDS: dict[str, str | None] = {
    "seed": None,
    "client.lr": "lr",
    "client.lr_offset": "lr_offset",
    "client.lr_decay": "lr_decay",
    "zo.sigma": "sigma",
    "zo.sigma_decay": "sigma_decay",
    "zo.momentum": "momentum",
}
SWEEP_BACKENDS = ("vmap", "shard")


class SweepMismatchError(ValueError):
  """Sweep members that cannot share one compiled program."""


def flat_config(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as ``{'a.b': value}`` (JSON values, as config.json holds them)."""
  out: dict[str, Any] = {}

  def walk(d: dict, prefix: str) -> None:
    for k, v in d.items():
      if isinstance(v, dict):
        walk(v, f"{prefix}{k}.")
      else:
        out[prefix + k] = v

  walk(json.loads(config.to_json()), "")
  return out


def differing_fields(configs: Sequence[ml_collections.ConfigDict]) -> list[str]:
  """Dotted keys whose values are not the same in every config."""
  flats = [flat_config(c) for c in configs]
  keys = sorted(set().union(*flats))
  return [k for k in keys if any(f.get(k) != flats[0].get(k) for f in flats[1:])]


def program_key(config: ml_collections.ConfigDict) -> str:
  """What decides the compiled program: the config without its vmappable fields.

  Configs with equal keys (and a backend in ``SWEEP_BACKENDS``) can run as one
  vmapped sweep. Every other field stays in the key, the round count and the
  black-box endpoint included: members share one black box and one round loop.
  """
  flat = {k: v for k, v in flat_config(config).items() if k not in VMAPPABLE_FIELDS}
  return json.dumps(flat, sort_keys=True)


def check_members(configs: Sequence[ml_collections.ConfigDict]) -> list[str]:
  """Returns the vmappable fields the members differ in.

  Raises:
    SweepMismatchError: naming the first non-vmappable field that differs (with the
      values), or a backend that cannot be vmapped.
  """
  if not configs:
    raise SweepMismatchError("a vmapped sweep needs at least one member config")
  diffs = differing_fields(configs)
  bad = [k for k in diffs if k not in VMAPPABLE_FIELDS]
  if bad:
    values = [flat_config(c).get(bad[0]) for c in configs]
    raise SweepMismatchError(
        f"sweep members differ in config.{bad[0]} ({values})"
        f"{' (and in ' + ', '.join(bad[1:]) + ')' if bad[1:] else ''}: "
        f"only {sorted(VMAPPABLE_FIELDS)} may differ within one compiled program; "
        "run these points separately")
  if "seed" in diffs and configs[0].get("attack", {}).get("kind", "none") == "label_flip":
    raise SweepMismatchError(
        "config.attack.kind='label_flip' poisons the data of each seed's own malicious "
        "clients at build time, and a vmapped sweep shares one data set: run the seeds "
        "separately")
  try:
    refuse_host_server(configs[0], "a vmapped sweep")
    refuse_poisson(configs[0], "a vmapped sweep (its rounds' branches would all run)")
  except ConfigError as e:
    raise SweepMismatchError(str(e)) from e
  backend = configs[0].parallel.backend
  if backend not in SWEEP_BACKENDS:
    raise SweepMismatchError(f"config.parallel.backend={backend!r}: a vmapped sweep needs one "
                             f"of {list(SWEEP_BACKENDS)}")
  return diffs


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def member_hparams(exp: Any, configs: Sequence[ml_collections.ConfigDict],
                   diffs: Sequence[str]) -> HParams:
  """``HParams`` stacked over members: the experiment's, with the swept fields set.

  A swept field must be one the experiment takes from its config (the text track,
  for one, fixes ``sigma``); otherwise members would differ where separate runs
  do not.
  """
  values = {}
  for dotted, field in VMAPPABLE_FIELDS.items():
    if field is None:
      continue
    base = getattr(exp.hparams, field)
    if dotted in diffs:
      if not np.isclose(float(base), float(np.float32(_get(configs[0], dotted)))):
        raise SweepMismatchError(
            f"sweep members differ in config.{dotted}, but this experiment does not take "
            f"HParams.{field} from it (it uses {float(base)}); do not sweep it here")
      values[field] = jnp.asarray([_get(c, dotted) for c in configs], jnp.float32)
    else:
      values[field] = jnp.broadcast_to(base, (len(configs),))
  return HParams(**values)


def member_keys_and_params(exp: Any, configs: Sequence[ml_collections.ConfigDict],
                           diffs: Sequence[str]) -> tuple[jax.Array, Any]:
  """Stacked root keys and initial generators, one per member's seed."""
  s = len(configs)
  if "seed" not in diffs:
    keys = jnp.stack([exp.root_key] * s)
    return keys, jax.tree.map(lambda a: jnp.broadcast_to(a, (s,) + a.shape), exp.init_params)
  keys = jnp.stack([jax.random.key(c.seed) for c in configs])
  params = jax.tree.map(lambda *xs: jnp.stack(xs),
                        *[initial_params(exp.bundle, c.seed, c.train.get("init_noise", 0.0))
                          for c in configs])
  return keys, params


def sweep_step(algorithm: Any) -> tuple[Callable, list[int]]:
  """``jit(vmap(algorithm.apply))`` over (state, root key, hparams); data shared.

  Returns the step and a list that grows by one each time ``apply`` is traced
  (one entry after any number of rounds: later rounds reuse the program).
  """
  traces: list[int] = []

  def counted(state, data, key, hparams):
    traces.append(1)
    return algorithm.apply(state, data, key, hparams)

  return jax.jit(jax.vmap(counted, in_axes=(0, None, 0, 0))), traces


def sweep_task_step(exp: Any, refreshing: bool) -> tuple[Callable, list[int]]:
  """``sweep_step`` of ``exp``'s round with the task's state as an argument
  (``task_round``): ``step(state, data, keys, hparams, task_states)``, every member's
  state (e.g. its own label map) stacked on the sweep axis when ``refreshing``, else
  ``None`` (the task as built)."""
  traces: list[int] = []
  apply = task_round(exp)

  def counted(state, data, key, hparams, state_of_task):
    traces.append(1)
    return apply(state, data, key, hparams, state_of_task)

  in_axes = (0, None, 0, 0, 0 if refreshing else None)
  return jax.jit(jax.vmap(counted, in_axes=in_axes)), traces


def member(tree: Any, i: int) -> Any:
  return jax.tree.map(lambda a: a[i], tree)


class VmappedRounds(RoundExecutor):
  """S members in one compiled program: server states, root keys and ``HParams`` stacked
  on a leading sweep axis, every round one call of ``jit(vmap(round))`` (a refreshing
  task's per-member state stacked too)."""

  def __init__(self):
    self.traces: list[int] = []  # one entry per trace of the round (1: one program)

  def check(self, configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str]
            ) -> None:
    self.configs, self.workdirs = list(configs), list(workdirs)
    self.diffs = check_members(configs)

  def start(self, exp: Experiment, exps: list[Experiment],
            configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
            states: list[Any], start_round: int, schedules: list[TaskSchedule], log: Log
            ) -> None:
    self.refreshing = bool(schedules[0].rounds)
    if self.refreshing and task_state(exp.task) is None:
      raise SweepMismatchError(
          "this task re-derives itself during training but exposes no state (Task.state / "
          "with_state), so the members cannot share one compiled program: run them one by one")
    self.backend = exp.config.parallel.backend
    self.hparams = member_hparams(exp, configs, self.diffs)
    self.keys, self.init_params = member_keys_and_params(exp, configs, self.diffs)
    log(f"vmapped sweep of {len(configs)} members over {self.diffs or ['nothing']}")
    state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
    if not start_round:
      state = jax.vmap(exp.algorithm.init)(self.init_params)
    self._state, self.clients = placed((state, exp.clients), self.backend)
    self.step, self.traces = sweep_task_step(exp, self.refreshing)

  def state(self, i: int) -> Any:
    return member(self._state, i)

  def round(self, r: int, exps: list[Experiment]) -> list[RoundOutcome]:
    states = None if not self.refreshing else placed(jax.tree.map(
        lambda *xs: jnp.stack(xs), *[task_state(e.task) for e in exps]), self.backend)
    self._state, m = self.step(self._state, self.clients, self.keys, self.hparams, states)
    jax.block_until_ready(m["train_loss"])
    return [RoundOutcome(member(self._state, i), member(m, i)) for i in range(len(exps))]

  def local_only(self, exp: Experiment, evaluator: Evaluator, todo: list[int], rounds: int,
                 log: Log) -> dict[int, dict[str, Any]]:
    """The members ``todo``'s local-only baselines, trained in one vmapped program."""
    log(f"local-only baseline of {len(todo)} members (vmapped) ...")
    idx = jnp.asarray(todo)
    step, _ = sweep_step(exp.local_only)
    state = jax.vmap(exp.local_only.init)(member(self.init_params, idx))
    state, clients = placed((state, exp.clients), self.backend)
    k, hp = self.keys[idx], member(self.hparams, idx)
    for _ in range(rounds):
      state, _ = step(state, clients, k, hp)
    return {m: local_only_fields(exp, evaluator, member(state.params, j), rounds)
            for j, m in enumerate(todo)}

  def describe_member(self, i: int) -> str:
    differing = {k: flat_config(self.configs[i])[k] for k in self.diffs}
    return f"sweep member {i} ({self.workdirs[i]}, differing in {differing})"


def run_vmapped(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
                log: Callable[[str], None] = print,
                stats: dict[str, Any] | None = None) -> list[dict[str, Any]]:
  """Runs (or resumes) ``len(configs)`` members in one program; returns their summaries.

  Args:
    configs: one config per member, differing only in ``VMAPPABLE_FIELDS``.
    workdirs: one workdir per member (same layout as ``train.run``'s).
    log: progress lines (each member's prefixed by its index).
    stats: if given, filled with ``round_traces`` (times the round function was
      traced: 1 when later rounds reuse the program) and ``members``.

  Raises:
    SweepMismatchError: the members cannot share a program (names the field).
  """
  executor = VmappedRounds()
  summaries = drive(configs, workdirs, executor, log)
  if stats is not None:
    stats.update(round_traces=len(executor.traces), members=len(summaries))
  return summaries
