"""Builds an experiment from its config, for any registered task family and algorithm.

    family (config.task.family)   -> TaskBundle (task, data, black box, prompt init, ...)
    estimator (config.zo)         -> zero-order estimator
    client optimizer (config.client) + the bundle's projection -> the shared local step
    algorithm (config.server.algorithm) and the local-only baseline -> Algorithm

Nothing here names a task family or an algorithm: each is looked up in its registry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.federated import (ALGORITHMS, Algorithm, AlgorithmContext, flip_labels,
                                   label_flip_ids, make_client_optimizer, make_upload_faults,
                                   with_faults)
from fedbbpt_jax.tasks import FAMILIES, BuildOptions, Task, TaskBundle
from fedbbpt_jax.tasks.protocol import SIMULATION
from fedbbpt_jax.zo import HParams, make_estimator

INIT_KEY_FOLD = 2**31 - 1  # the prompt's init key: fold_in(key(seed), INIT_KEY_FOLD)


def hparams_from_config(config: ml_collections.ConfigDict) -> HParams:
  """The tunable step sizes (``client.lr*``, ``zo.sigma*``, ``zo.momentum``) as ``HParams``.

  Fields a family's config does not have take the neutral value (sigma 1, no decay,
  no momentum).
  """
  c, z = config.client, config.zo
  return HParams.create(lr=c.lr, lr_offset=c.get("lr_offset", 0.0), lr_decay=c.get("lr_decay", 0.0),
                        sigma=z.get("sigma", 1.0), sigma_decay=z.get("sigma_decay", 0.0),
                        momentum=z.get("momentum", 0.0))


def initial_params(bundle: TaskBundle, seed: int, noise: float = 0.0) -> Any:
  """The prompt generator's initial parameters for ``seed``.

  ``noise`` > 0 (``config.train.init_noise``) adds ``noise * N(0, 1) * max(|p|, s)`` to
  every float parameter ``p`` (``s`` the leaf's RMS, or 1 for an all-zero leaf), drawn
  from its own key: a relative perturbation of the size another CPU's float rounding
  makes after a few operations. A learning result should not depend on it.
  """
  key = jax.random.fold_in(jax.random.key(seed), INIT_KEY_FOLD)
  params = bundle.init_prompt(key)
  if not noise:
    return params
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.fold_in(key, 1), max(len(leaves), 1))

  def perturb(p, k):
    p = jnp.asarray(p)
    if not jnp.issubdtype(p.dtype, jnp.floating):
      return p
    rms = jnp.sqrt(jnp.mean(jnp.square(p))) if p.size else 0.0
    scale = jnp.maximum(jnp.abs(p), jnp.where(rms > 0, rms, 1.0))
    return p + (noise * jax.random.normal(k, p.shape) * scale).astype(p.dtype)

  return jax.tree.unflatten(treedef, [perturb(p, k) for p, k in zip(leaves, keys)])


@dataclasses.dataclass
class Experiment:
  """An experiment's parts: the family's bundle, the algorithm and the local-only baseline."""

  config: ml_collections.ConfigDict
  bundle: TaskBundle
  algorithm: Algorithm
  local_only: Algorithm
  hparams: HParams
  root_key: jax.Array
  init_params: Any
  num_candidates: int

  @property
  def task(self) -> Task:
    return self.bundle.task

  @property
  def clients(self):
    return self.bundle.clients

  @property
  def test_x(self):
    return self.bundle.test_x

  @property
  def test_y(self) -> np.ndarray:
    return self.bundle.test_y

  @property
  def label_histograms(self) -> np.ndarray:
    return self.bundle.label_histograms

  @property
  def num_clients(self) -> int:
    return self.bundle.num_clients

  @property
  def cohort_size(self) -> int:
    return self.algorithm.cohort_size

  @property
  def round_cost(self):
    return self.algorithm.round_cost

  def upload_structure(self) -> Any:
    """Shapes and dtypes (``jax.ShapeDtypeStruct``s) of one client's upload: what a
    deployment decodes replies against and counts traffic with."""
    received = self.algorithm.broadcast(self.algorithm.init(self.init_params))
    one = jax.tree.map(lambda a: a[0], self.clients)
    return jax.eval_shape(self.algorithm.client_update, received, one, jax.random.key(0),
                          self.hparams, jax.numpy.int32(0))

  def train_examples_per_round(self, local_only: bool = False) -> int:
    """Black-box examples one round of the algorithm (or of the local-only baseline) costs
    at most (a Poisson cohort: every slot of its capacity filled)."""
    algorithm = self.local_only if local_only else self.algorithm
    cost = algorithm.round_cost
    if algorithm.partial_chunk:
      cost = dataclasses.replace(cost, client_activations=algorithm.select.slots)
    return cost.bb_examples


def raise_blackbox_error(exp: Experiment) -> None:
  """Raises the error a remote black box recorded in its host callback, if any.

  A ``jax.pure_callback`` must not raise, so ``RemoteBlackBox`` returns NaN and keeps
  the error; the driver calls this after every step and evaluation, before anything is
  written, so a failed round is never committed (the last checkpoint stays intact).
  """
  exp.bundle.blackbox.raise_pending_error()


def build_experiment(config: ml_collections.ConfigDict, workdir: str | None = None,
                     wrap_blackbox: Callable[[BlackBox], BlackBox] | None = None,
                     role: str = SIMULATION, **where: Any) -> Experiment:
  """Builds the family's bundle, the estimator, the algorithm and the local-only baseline.

  Args:
    config: a validated experiment config.
    workdir: where the family may cache its setup (e.g. the image label mapping).
    wrap_blackbox: applied to the black box before anything uses it (tests count
      real calls with ``blackbox.counting.CountingBlackBox``).
    role: where the data lie (``tasks.BuildOptions.role``): 'simulation' (here),
      'server' (nowhere here; ``where`` gives ``client_sizes`` and ``gather``) or 'node'
      (one client's; ``where`` gives ``partition_id``).

  Raises:
    ConfigError: the task family cannot build in ``role`` (naming ``task.family``).
  """
  family = FAMILIES.get(config.task.family, "task.family")
  if role not in family.roles:
    raise ConfigError(f"config.task.family={config.task.family!r} derives its set-up in one "
                      f"process holding every client's data; it has no {role!r} build, so a "
                      "deployment whose server holds no training data cannot run it")
  flipped: list[int] = []  # the label-flip attack, applied by the family to its clients

  def flip(clients, num_classes):
    flipped.append(num_classes)
    return flip_labels(clients, label_flip_ids(config, int(clients.y.shape[0])), num_classes)

  label_flip = config.get("attack", {}).get("kind", "none") == "label_flip"
  bundle = family.build(config, BuildOptions(workdir=workdir, wrap_blackbox=wrap_blackbox,
                                             prepare_clients=flip if label_flip else None,
                                             role=role, **where))
  if label_flip and not flipped:
    raise ConfigError(f"config.attack.kind='label_flip': task family "
                      f"{config.task.family!r} never passes its clients through "
                      "BuildOptions.clients, so their labels cannot be flipped")
  estimator = make_estimator(config.zo.estimator, config.zo.num_directions)
  algorithm, local_only = build_algorithms(config, bundle, estimator)
  root_key = jax.random.key(config.seed)
  return Experiment(config=config, bundle=bundle, algorithm=algorithm, local_only=local_only,
                    hparams=hparams_from_config(config), root_key=root_key,
                    init_params=initial_params(bundle, config.seed,
                                               config.train.get("init_noise", 0.0)),
                    num_candidates=estimator.num_candidates)


def build_algorithms(config: ml_collections.ConfigDict, bundle: TaskBundle,
                     estimator: Any) -> tuple[Algorithm, Algorithm]:
  """The configured algorithm (with the config's simulated faults) and the local-only
  baseline on ``bundle``'s task."""
  ctx = AlgorithmContext(
      config=config, candidate_losses=bundle.task.candidate_losses, estimator=estimator,
      client_optimizer=make_client_optimizer(config.client.optimizer,
                                             config.client.get("weight_decay", 0.0)),
      num_clients=bundle.num_clients, backend=config.parallel.backend, project=bundle.project,
      num_examples=None if bundle.client_count else np.asarray(bundle.clients.num_examples))
  spec = ALGORITHMS.get(config.server.algorithm, "server.algorithm")
  algorithm = with_faults(spec.build(ctx), make_upload_faults(config, bundle.num_clients))
  return algorithm, ALGORITHMS.get(spec.local_only).build(ctx)


def with_task(exp: Experiment, task: Task) -> Experiment:
  """``exp`` with its bundle's task replaced (e.g. a refreshed label mapping).

  The algorithms are rebuilt around the new task's losses (a new compiled program);
  their state is unchanged in shape, so a round's state carries over.
  """
  bundle = dataclasses.replace(exp.bundle, task=task)
  estimator = make_estimator(exp.config.zo.estimator, exp.config.zo.num_directions)
  algorithm, local_only = build_algorithms(exp.config, bundle, estimator)
  return dataclasses.replace(exp, bundle=bundle, algorithm=algorithm, local_only=local_only)
