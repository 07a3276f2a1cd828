"""Fed-BBPT on Fashion-MNIST with a frozen ImageNet EfficientNet-Lite0 as the black box.

Default experiment of ``make demo``. Launch::

    python -m experiments.train --config=configs/fmnist_effnet.py --workdir=/tmp/fmnist
    python -m experiments.train --config=configs/fmnist_effnet.py:smoke --workdir=/tmp/smoke

Dotted overrides work as usual, e.g. ``--config.zo.estimator=spsa_gc``,
``--config.server.algorithm=centralized`` or ``--config.server.algorithm=fedbpt
--config.zo.estimator=cma_es``.
"""

import ml_collections


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """Returns the config; ``mode='smoke'`` gives a tiny run for tests."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"          # 'fashion_mnist' | 'digits'
  c.data.source_dir = "/usr/share/datasets/fashion-mnist"
  c.data.tfds_dir = ""                   # '' = $FEDBBPT_DATA_DIR or ~/.cache/fedbbpt_jax/tfds
  c.data.num_clients = 5
  c.data.partition = "dirichlet"         # 'iid' | 'dirichlet' | 'shards'
  c.data.dirichlet_alpha = 0.5
  c.data.shards_per_client = 2
  c.data.examples_per_client = 400       # 0 = keep every example of the partition
  c.data.test_examples = 2000            # fixed subset of the test split (0 = all)
  c.data.partition_seed = 0

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.model = "efficientnet_lite0"
  c.blackbox.input_size = 64             # canvas side (the model's input resolution)
  c.blackbox.budget_examples = 0         # training black-box examples allowed (0 = unlimited)
  # The model as a real API (python -m fedbbpt_jax.serve ...); '' = the local surrogate.
  c.blackbox.url = ""                    # e.g. 'http://127.0.0.1:8000'
  c.blackbox.api_key_env = "FEDBBPT_API_KEY"  # env var holding the key (config.json is on disk)
  c.blackbox.wire_dtype = "float32"      # 'float32' (exact) | 'uint8' (8-bit pixels, see README)
  c.blackbox.max_attempts = 5            # tries per request on 429/5xx/network errors
  c.blackbox.backoff_seconds = 0.5       # first retry delay, doubled per retry
  c.blackbox.timeout_seconds = 60.0      # per HTTP attempt
  c.blackbox.max_concurrency = 8         # requests in flight at once

  c.task = ml_collections.ConfigDict()
  c.task.image_size = 48                 # garment side inside the canvas
  c.task.background = 0.0
  c.task.loss_temperature = 3.0          # 0 = plain cross-entropy; > 0 = scale-free (see task)
  c.task.label_mapping = "frequency"     # 'frequency' | 'fixed'
  c.task.sources_per_label = 10          # k of the frequency mapping (top-k mean)
  c.task.mapping_examples_per_client = 200

  c.prompt = ml_collections.ConfigDict()
  c.prompt.kind = "frame"                # 'frame' | 'coordinator'
  c.prompt.region = "frame"              # 'frame' (outside the image) | 'full'
  c.prompt.epsilon = 1.0
  c.prompt.frame_resolution = 8

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "spsa_gc"
  c.zo.num_directions = 2
  c.zo.sigma = 0.01
  c.zo.sigma_decay = 0.1
  c.zo.momentum = 0.9

  c.client = ml_collections.ConfigDict()
  c.client.optimizer = "sgd"             # 'sgd' | 'adam'
  c.client.lr = 0.01
  c.client.lr_offset = 1.0
  c.client.lr_decay = 0.4
  c.client.local_steps = 10
  c.client.batch_size = 32

  c.server = ml_collections.ConfigDict()
  # 'fedbbpt' | 'fedone' (one client per round) | 'centralized' (pooled data, upper
  # reference) | 'fedbpt' (federated CMA-ES; needs --config.zo.estimator=cma_es)
  c.server.algorithm = "fedbbpt"
  c.server.optimizer = "sgd"             # 'sgd' (FedAvg) | 'momentum' (FedAvgM) | 'adam'
  c.server.lr = 1.0
  c.server.momentum = 0.9
  c.server.cohort_size = 0               # 0 = every client every round

  c.train = ml_collections.ConfigDict()
  c.train.rounds = 10
  c.train.eval_every = 1
  c.train.eval_batch_size = 500

  c.baselines = ml_collections.ConfigDict()
  c.baselines.zero_shot = True
  c.baselines.local_only = True

  c.parallel = ml_collections.ConfigDict()
  c.parallel.backend = "vmap"            # 'vmap' | 'shard' (over devices) | 'loop'
  c.parallel.cpu_devices = 0             # CPU devices to expose (0 = JAX default, 1)

  if mode == "smoke":
    c.data.name = "digits"
    c.data.num_clients = 3
    c.data.examples_per_client = 0
    c.data.test_examples = 200
    c.blackbox.input_size = 32
    c.task.image_size = 20
    c.task.mapping_examples_per_client = 10
    c.task.sources_per_label = 5
    c.task.loss_temperature = 0.0
    c.client.lr = 0.01
    c.client.local_steps = 3
    c.client.batch_size = 8
    c.train.rounds = 4
    c.train.eval_batch_size = 100
  elif mode:
    raise ValueError(f"unknown config mode {mode!r} for configs/fmnist_effnet.py; use '' or 'smoke'")
  return c
