"""BlackVIP's image setup, federated: CLIP ViT-B/16 as the black box, BlackVIP's coordinator.

The paper's setting (Oh et al., CVPR 2023, as the Fed-BBPT image experiments use it), one
config per benchmark::

    python -m experiments.train --config=configs/clip_blackvip.py:oxford_pets --workdir=/tmp/pets
    python -m experiments.train --config=configs/clip_blackvip.py:tiny ...   # tests only

* **Black box**: CLIP ViT-B/16 (``blackbox.model='clip'``, weights: the local Hugging Face
  folder ``openai/clip-vit-base-patch16`` at ``blackbox.weights_path``, default
  ``DEFAULT_CLIP``) at 224 px, answering ``exp(logit_scale) * cosine`` over the dataset's
  classes with BlackVIP's template of the dataset (``blackbox.templates='blackvip:<set>'``;
  ``'ensemble:<set>'``: CoOp's seven-template ensemble plus it). Its outputs are the
  classes: ``task.label_mapping='identity'``, no re-mapping.
* **Data**: CoOp's 16-shot split of the benchmark (``data.name='coop:<set>'`` from CoOp's
  folders at ``data.root``, default ``DEFAULT_DATA_ROOT``; ``data.shots_seed`` = CoOp's
  seed 1), images decoded with CLIP's evaluation preprocessing at 224 px, the whole test
  split; the k-shot set split IID among ``NUM_CLIENTS`` clients.
* **Prompt**: BlackVIP's coordinator (``prompt.kind='blackvip'``): the frozen MAE ViT-B/16
  encoder on the client (``prompt.encoder='vit'``, the folder ``facebook/vit-mae-base`` at
  ``prompt.encoder_weights``, default ``DEFAULT_MAE``; [CLS] of the last block before the
  final LayerNorm) and the 9,920-float decoder, scaled by BlackVIP's ``P_EPS``
  (``prompt.epsilon``). BatchNorm per example (``prompt.bn='example'``, the prompt kind's
  default; ``'batch'`` is BlackVIP's train-mode BatchNorm, see ``prompts/blackvip.py``).
* **SPSA-GC** with BlackVIP's settings, ``SPSA_PARAMS = [o, c, a, alpha, gamma]``:
  ``a_t = a / (t + o) ** alpha`` is ``client.lr / (t + client.lr_offset) ** client.lr_decay``
  (a = 0.01, o = 1.0, alpha = 0.4) and ``c_t = c / t ** gamma`` is ``zo.sigma / t **
  zo.sigma_decay``; ``MOMS`` (beta) is ``zo.momentum``; ``SP_AVG = 5`` two-sided directions
  (``zo.num_directions``, 10 black-box passes of the minibatch per step); minibatch 128
  (``client.batch_size``, fewer when a client holds fewer images); plain steps
  ``w <- w - a_t * d`` (``client.optimizer='sgd'``). Per dataset (``BENCHMARKS``):
  beta, gamma, c, P_EPS from BlackVIP's ``docs/configuration.md`` and its black-box epochs.

Where the federated form differs from BlackVIP's single-machine run:

* BlackVIP trains E epochs of ``max(1, floor(N / 128))`` steps over all N = 16 x classes
  images (``T`` steps). Here each of C clients holds ``n = N / C`` images; a round is one
  local epoch (``client.local_steps`` = ``max(1, floor(n / B))``, ``B = min(128, n)``), and
  ``train.rounds`` is chosen so that the rounds' black-box examples equal BlackVIP's
  (``T x 10 x 128``, ``schedule``), not its step count.
* The step-size clock ``t`` counts a client's local steps across rounds
  (``client.schedule='step'``: ``t = r * K + k + 1``), so it ends at ``rounds x K``, C
  times fewer ticks than BlackVIP's ``T``; ``server.algorithm='centralized'`` with
  ``server.pooled_clock='global'`` runs BlackVIP's own schedule (every pooled step ticks).
* SPSA-GC's momentum restarts every round (clients keep no state between rounds; BlackVIP
  keeps one momentum for the whole run), and the server averages the clients' decoder
  changes (FedAvg, ``server.optimizer='sgd'``, ``server.lr=1``).
* BlackVIP augments training images (random resized crop, flip); here every image is
  CLIP's centre crop, as at test time.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import ml_collections

from configs import common

DEFAULT_CLIP = os.path.expanduser("~/models/clip-vit-base-patch16")   # openai/clip-vit-base-patch16
DEFAULT_MAE = os.path.expanduser("~/models/vit-mae-base")             # facebook/vit-mae-base
DEFAULT_DATA_ROOT = os.path.expanduser("~/data/coop")                 # CoOp's DATASET.ROOT
NUM_CLIENTS = 5
SHOTS = 16
BATCH = 128                 # BlackVIP's DATALOADER.TRAIN_X.BATCH_SIZE
SP_AVG = 5                  # BlackVIP's SP_AVG: two-sided SPSA directions per step
SPSA_O, SPSA_A, SPSA_ALPHA = 1.0, 0.01, 0.4   # SPSA_PARAMS o, a, alpha (every dataset)


class Benchmark(NamedTuple):
  """BlackVIP's per-dataset settings (its docs/configuration.md) and the class count."""

  classes: int     # classes of the benchmark (CoOp's split)
  epochs: int      # BlackVIP's black-box epochs
  beta: float      # MOMS: SPSA-GC's momentum
  gamma: float     # SPSA_PARAMS gamma: c_t = c / t ** gamma
  c: float         # SPSA_PARAMS c: perturbation size
  p_eps: float     # P_EPS: the prompt's scale


BENCHMARKS = {
    "caltech101": Benchmark(100, 5000, 0.9, 0.2, 0.005, 0.2),
    "oxford_pets": Benchmark(37, 5000, 0.9, 0.1, 0.01, 1.0),
    "stanford_cars": Benchmark(196, 2500, 0.9, 0.2, 0.01, 0.3),
    "oxford_flowers": Benchmark(102, 5000, 0.5, 0.2, 0.02, 1.0),
    "food101": Benchmark(101, 5000, 0.9, 0.1, 0.01, 0.3),
    "fgvc_aircraft": Benchmark(100, 5000, 0.3, 0.1, 0.01, 0.5),
    "sun397": Benchmark(397, 1000, 0.5, 0.1, 0.01, 1.0),
    "dtd": Benchmark(47, 5000, 0.7, 0.2, 0.01, 0.3),
    "svhn": Benchmark(10, 5000, 0.9, 0.2, 0.005, 1.0),
    "eurosat": Benchmark(10, 5000, 0.9, 0.2, 0.005, 0.4),
    "resisc45": Benchmark(45, 5000, 0.95, 0.1, 0.01, 0.3),
    "clevr": Benchmark(8, 5000, 0.9, 0.2, 0.005, 1.0),
    "ucf101": Benchmark(101, 5000, 0.9, 0.1, 0.01, 0.3),
    "imagenet": Benchmark(1000, 500, 0.9, 0.2, 0.005, 0.3),
}


class Schedule(NamedTuple):
  """The federated run that spends BlackVIP's black-box examples (module docstring)."""

  blackvip_steps: int      # T = epochs x max(1, floor(N / 128))
  batch: int               # B = min(128, N / C)
  local_steps: int         # K = max(1, floor((N / C) / B)): one local epoch
  rounds: int              # R: R x C x K x B ~ T x 128


def schedule(benchmark: Benchmark, num_clients: int = NUM_CLIENTS, shots: int = SHOTS) -> Schedule:
  """BlackVIP's steps and the federated rounds that spend as many black-box examples."""
  images = benchmark.classes * shots
  steps = benchmark.epochs * max(1, images // BATCH)
  per_client = images // num_clients
  batch = min(BATCH, per_client)
  local_steps = max(1, per_client // batch)
  rounds = max(1, round(steps * min(BATCH, images) / (num_clients * local_steps * batch)))
  return Schedule(steps, batch, local_steps, rounds)


def get_config(mode: str = "oxford_pets") -> ml_collections.ConfigDict:
  """Returns the config of benchmark ``mode`` (a key of ``BENCHMARKS``), or ``'tiny'``: the
  tiny CLIP and MAE of ``tests/data`` on two clients for one round (``data.root`` is the
  test's CoOp folder)."""
  tiny = mode == "tiny"
  dataset = "oxford_pets" if tiny else mode
  if dataset not in BENCHMARKS:
    raise ValueError(f"unknown config mode {mode!r} for configs/clip_blackvip.py; use one of "
                     f"{sorted(BENCHMARKS)} or 'tiny'")
  bench = BENCHMARKS[dataset]
  plan = schedule(bench)
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = f"coop:{dataset}"
  c.data.root = DEFAULT_DATA_ROOT        # CoOp's DATASET.ROOT (its folder layout and splits)
  c.data.tfds_dir = ""                   # or a prepared TFDS data_dir (not cars, aircraft, ucf)
  c.data.shots = SHOTS                   # images per class in the k-shot train set
  c.data.shots_seed = 1                  # CoOp's SEED 1: the k-shot draw
  c.data.image_size = 224                # CLIP's resize + centre crop
  c.data.cache_dir = ""                  # decoded images ('' = $FEDBBPT_DATA_DIR/decoded)
  c.data.update(common.partition(num_clients=NUM_CLIENTS))

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.model = "clip"
  c.blackbox.input_size = 224            # ViT-B/16's input
  c.blackbox.weights_path = DEFAULT_CLIP  # a Hugging Face CLIP folder (or open_clip weights)
  c.blackbox.templates = f"blackvip:{dataset}"  # | f'ensemble:{dataset}' | 'a {}.|...'
  c.blackbox.budget_examples = 0
  c.blackbox.chunk_size = 0
  c.blackbox.update(common.remote_blackbox())
  c.blackbox.wire_dtype = "float32"

  c.task = ml_collections.ConfigDict()
  c.task.family = "image"
  c.task.image_size = 224                # the image fills the canvas
  c.task.background = 0.0
  c.task.loss_temperature = 0.0          # BlackVIP's plain cross-entropy
  c.task.label_mapping = "identity"      # CLIP answers over the dataset's classes
  c.task.sources_per_label = 1           # (read by the frequency mapping only)
  c.task.mapping_examples_per_client = 1
  c.task.remap_every = 0

  c.prompt = ml_collections.ConfigDict()
  c.prompt.kind = "blackvip"
  c.prompt.region = "full"
  c.prompt.epsilon = bench.p_eps         # P_EPS
  c.prompt.frame_resolution = 8          # (read by the frame prompts only)
  c.prompt.encoder = "vit"
  c.prompt.encoder_weights = DEFAULT_MAE  # facebook/vit-mae-base
  c.prompt.bn = "example"                # | 'batch': BlackVIP's train-mode BatchNorm

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "spsa_gc"
  c.zo.num_directions = SP_AVG
  c.zo.sigma = bench.c                   # c
  c.zo.sigma_decay = bench.gamma         # gamma
  c.zo.momentum = bench.beta             # MOMS

  c.client = ml_collections.ConfigDict()
  c.client.optimizer = "sgd"
  c.client.update(common.client_schedule(lr=SPSA_A, lr_offset=SPSA_O, lr_decay=SPSA_ALPHA,
                                         local_steps=plan.local_steps, batch_size=plan.batch))

  c.server = common.server()
  c.train = common.train(rounds=plan.rounds, eval_every=max(1, math.ceil(plan.rounds / 10)),
                         eval_batch_size=100)
  c.baselines = common.baselines(zero_shot=True, local_only=False)
  c.parallel = common.parallel()
  c.decentralized = common.decentralized()
  c.attack = common.attack()

  if tiny:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    c.data.root = ""                     # the test's tiny CoOp folder
    c.data.shots = 2
    c.data.image_size = 32
    c.data.num_clients = 2
    c.blackbox.weights_path = os.path.join(here, "tests", "data", "clip_tiny_224")
    c.prompt.encoder_weights = os.path.join(here, "tests", "data", "vit_mae_tiny", "mae")
    c.zo.num_directions = 1
    c.client.local_steps = 2
    c.client.batch_size = 4
    c.train.rounds = 1
    c.train.eval_every = 1
    c.train.eval_batch_size = 8
  return c
