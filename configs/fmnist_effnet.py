"""Fed-BBPT on Fashion-MNIST with a frozen ImageNet EfficientNet-Lite0 as the black box.

Default experiment of ``make demo``. Launch::

    python -m experiments.train --config=configs/fmnist_effnet.py --workdir=/tmp/fmnist
    python -m experiments.train --config=configs/fmnist_effnet.py:smoke --workdir=/tmp/smoke
    python -m experiments.train --config=configs/fmnist_effnet.py:dfedsam --workdir=/tmp/dfedsam

Dotted overrides work as usual, e.g. ``--config.zo.estimator=spsa_gc``,
``--config.server.algorithm=centralized`` or ``--config.server.algorithm=fedbpt
--config.zo.estimator=cma_es``.
"""

import ml_collections

from configs import common


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """Returns the config; ``mode='smoke'`` gives a tiny run for tests, ``mode='dfedsam'``
  the decentralized setting of ``configs/sweeps/decentralized.py`` (9 clients on a 3 x 3
  torus, zero-order SAM, no server)."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "fashion_mnist"          # 'fashion_mnist' | 'digits'
  c.data.source_dir = "/usr/share/datasets/fashion-mnist"
  c.data.tfds_dir = ""                   # '' = $FEDBBPT_DATA_DIR or ~/.cache/fedbbpt_jax/tfds
  c.data.update(common.partition(num_clients=5, partition="dirichlet", examples_per_client=400,
                                 test_examples=2000))

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.model = "efficientnet_lite0"
  c.blackbox.input_size = 64             # canvas side (the model's input resolution)
  c.blackbox.budget_examples = 0         # training black-box examples allowed (0 = unlimited)
  c.blackbox.chunk_size = 0              # local model: inputs per forward (0 = whole call)
  c.blackbox.update(common.remote_blackbox())
  c.blackbox.wire_dtype = "float32"      # 'float32' (exact) | 'uint8' (8-bit, docs/deployment)

  c.task = ml_collections.ConfigDict()
  c.task.family = "image"
  c.task.image_size = 48                 # garment side inside the canvas
  c.task.background = 0.0
  c.task.loss_temperature = 3.0          # 0 = plain cross-entropy; > 0 = scale-free (see task)
  c.task.label_mapping = "frequency"     # 'frequency' | 'fixed'
  c.task.sources_per_label = 20          # k of the frequency mapping (top-k mean)
  c.task.mapping_examples_per_client = 200
  c.task.remap_every = 2                 # ILM: re-derive the mapping from the prompted
  #                                        predictions every N rounds (0 = frozen mapping)
  c.task.remap_accept = "better"         # keep a re-derived mapping only if it classifies the
  #                                        clients' mapping images at least as well | 'always'

  c.prompt = ml_collections.ConfigDict()
  c.prompt.kind = "frame"                # 'frame' | 'intrinsic_frame' | 'frame_mixture' |
  #                                        'coordinator' | 'blackvip'
  #                                        (BlackVIP's coordinator: blackbox.input_size=224,
  #                                        region='full'; prompt.bn 'example' | 'batch')
  c.prompt.region = "frame"              # 'frame' (outside the image) | 'full'
  c.prompt.epsilon = 1.0
  c.prompt.frame_resolution = 8
  c.prompt.num_patterns = 4              # 'frame_mixture': frame patterns mixed per image
  c.prompt.intrinsic_dim = 48            # 'intrinsic_frame': 3 k (k per colour channel)
  c.prompt.rank = 2                      # 'intrinsic_frame': rank of its low-rank factor
  c.prompt.encoder = "random"            # frozen client-side encoder of 'coordinator' and
  #                                        'frame_mixture': 'random' (fixed random convolutions)
  #                                        | 'efficientnet_lite0' (the public pretrained trunk)
  #                                        | 'vit' ('blackvip', 'frame_mixture': a ViT's [CLS]
  #                                        from the folder prompt.encoder_weights)
  c.prompt.encoder_blocks = 8            # 'efficientnet_lite0': trunk blocks (8 = end of stage 4)

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "spsa_gc"
  c.zo.num_directions = 2
  c.zo.sigma = 0.01
  c.zo.sigma_decay = 0.1
  c.zo.momentum = 0.9

  c.client = ml_collections.ConfigDict()
  c.client.optimizer = "sgd"             # 'sgd' | 'adam'
  c.client.update(common.client_schedule(lr=0.01, lr_offset=1.0, lr_decay=0.4, local_steps=10,
                                         batch_size=32))

  c.server = common.server()
  c.train = common.train(rounds=10, eval_every=1, eval_batch_size=500)
  c.baselines = common.baselines(local_only=True)
  c.parallel = common.parallel()
  c.decentralized = common.decentralized()  # server.algorithm='dfedsam' only
  c.attack = common.attack()              # Byzantine clients in simulation (off)

  if mode == "smoke":
    c.data.name = "digits"
    c.data.num_clients = 3
    c.data.examples_per_client = 0
    c.data.test_examples = 200
    c.blackbox.input_size = 32
    c.task.image_size = 20
    c.task.mapping_examples_per_client = 10
    c.task.sources_per_label = 5
    c.task.remap_every = 0               # frozen mapping (test_label_remap tests ILM)
    c.task.loss_temperature = 0.0
    c.client.lr = 0.01
    c.client.local_steps = 3
    c.client.batch_size = 8
    c.train.rounds = 4
    c.train.eval_batch_size = 100
  elif mode == "dfedsam":
    c.data.num_clients = 9
    c.data.test_examples = 1000
    c.server.algorithm = "dfedsam"
    c.server.cohort_size = 0
    c.client.local_steps = 5             # a SAM step costs two estimates: 10 estimates a round
    c.decentralized.topology = "torus"
    c.task.sources_per_label = 10        # the sweep's frozen top-10 mapping
    c.task.remap_every = 0
    c.train.eval_every = 2
  elif mode:
    raise ValueError(f"unknown config mode {mode!r} for configs/fmnist_effnet.py; "
                     "use '', 'smoke' or 'dfedsam'")
  return c
