"""Federated BDPL on Drugs.com reviews with all-MiniLM-L6-v2 as the black box.

Text-track demo (``make demo-text``). The black box embeds ``[CLS] prompt review
[SEP]``; classes are verbalizer texts embedded by the same black box; the
prediction is the most cosine-similar class. Launch::

    python -m experiments.train --config=configs/drug_minilm.py --workdir=/tmp/drug
    python -m experiments.train --config=configs/drug_minilm.py:sentiment --workdir=/tmp/drug_s
    python -m experiments.train --config=configs/drug_minilm.py:smoke --workdir=/tmp/drug_smoke

Modes: '' = condition (topic) task, 12 classes (the demo); 'sentiment' = 3-class
rating; 'smoke' = tiny run for tests. FedOne: ``--config.server.algorithm=fedone``.
"""

import ml_collections


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """Returns the config; ``mode`` in '', 'sentiment', 'smoke'."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "drug_reviews"
  c.data.task = "condition"              # 'condition' (12 classes) | 'sentiment' (3 classes)
  c.data.min_train_reviews = 10          # condition: keep conditions with >= this many reviews
  c.data.num_clients = 5
  c.data.partition = "iid"               # 'iid' | 'dirichlet' | 'shards'
  c.data.dirichlet_alpha = 0.5
  c.data.shards_per_client = 2
  c.data.examples_per_client = 0         # 0 = keep every example of the partition
  c.data.test_examples = 0               # 0 = the whole test split
  c.data.partition_seed = 0

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.model = "all_minilm_l6_v2"
  c.blackbox.max_length = 64             # padded word pieces per input row ([CLS] ... [SEP])
  c.blackbox.budget_examples = 0         # training black-box examples allowed (0 = unlimited)

  c.task = ml_collections.ConfigDict()
  c.task.family = "text"
  c.task.verbalizer_template = "a review of a drug for {}"
  c.task.verbalizers = ()                # explicit per-class texts (overrides the template)
  c.task.temperature = 0.05              # softmax temperature of the cosine similarities

  c.prompt = ml_collections.ConfigDict()
  c.prompt.kind = "discrete"
  c.prompt.length = 5                    # L prompt tokens after [CLS]
  c.prompt.vocabulary = "frequent_words"  # 'frequent_words' | 'pmi_ngram' (BDPL)
  c.prompt.vocabulary_size = 150         # N candidate tokens per position

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "bdpl"
  c.zo.num_directions = 8                # I prompts sampled per step

  c.client = ml_collections.ConfigDict()
  c.client.optimizer = "adamw"           # BDPL: AdamW, then projection onto the simplex
  c.client.weight_decay = 0.1
  c.client.lr = 0.02                     # AdamW step on the probabilities
  c.client.lr_offset = 0.0
  c.client.lr_decay = 0.0
  c.client.local_steps = 4
  c.client.batch_size = 16

  c.server = ml_collections.ConfigDict()
  c.server.algorithm = "fedbbpt"         # 'fedbbpt' | 'fedone' (one client per round)
  c.server.optimizer = "sgd"             # FedAvg of probability matrices
  c.server.lr = 1.0
  c.server.momentum = 0.9
  c.server.cohort_size = 1               # 0 = every client every round

  c.train = ml_collections.ConfigDict()
  c.train.rounds = 8
  c.train.eval_every = 4
  c.train.eval_batch_size = 200

  c.baselines = ml_collections.ConfigDict()
  c.baselines.zero_shot = True
  c.baselines.local_only = False

  c.parallel = ml_collections.ConfigDict()
  c.parallel.backend = "vmap"            # 'vmap' | 'loop'

  if mode == "sentiment":
    c.data.task = "sentiment"
    c.task.verbalizers = ("a negative review", "a neutral review", "a positive review")
  elif mode == "smoke":
    c.data.num_clients = 3
    c.data.test_examples = 64
    c.blackbox.max_length = 24
    c.prompt.length = 3
    c.prompt.vocabulary_size = 30
    c.zo.num_directions = 4
    c.client.local_steps = 2
    c.client.batch_size = 8
    c.client.lr = 0.2
    c.server.cohort_size = 0
    c.train.rounds = 3
    c.train.eval_every = 1
    c.train.eval_batch_size = 64
  elif mode:
    raise ValueError(f"unknown config mode {mode!r} for configs/drug_minilm.py; "
                     "use '', 'sentiment' or 'smoke'")
  return c
