"""Federated BDPL on GLUE with a frozen RoBERTa masked LM as the black box (Fed-BBPT text).

The paper's text setting (docs/tracks/glue.md, docs/algorithms.md): RoBERTa-large scores
``<s> prompt template(texts) </s>`` at ``<mask>`` over the task's verbalizers;
every client learns BDPL's categorical prompt (L = 10 positions over N = 200
PMI n-gram candidates, I = 20 sampled prompts per step, AdamW + simplex
projection) on its k-shot data; the server averages the probability matrices.
Data follow BDPL's k-shot protocol with FedOne's federated form: the GLUE train
split is halved, ``k_shot * num_clients`` examples per class are drawn from
each half as train and dev, train is partitioned among the clients; test = the
GLUE validation split (MNLI: validation_matched, or ``data.test_split``).

Everything is read from local folders; nothing is downloaded. Launch::

    python -m experiments.train --config=configs/glue_roberta.py --workdir=/tmp/glue_sst2 \\
        --config.blackbox.model_dir=/models/roberta-large --config.data.tfds_dir=/data/tfds
    python -m experiments.train --config=configs/glue_roberta.py:mrpc --workdir=/tmp/glue_mrpc \\
        --config.blackbox.model_dir=/models/roberta-large --config.data.tfds_dir=/data/tfds
    # FedOne (one client per round): --config.server.algorithm=fedone

Modes: '' = SST-2 (the paper's setting); a GLUE task name (sst2, mrpc, rte,
qnli, mnli, qqp, cola) = the same on that task (pair tasks get max_length 256);
'smoke' = a tiny run for tests (point the two paths at tiny local folders).
"""

import ml_collections

from configs import common

GLUE_TASK_NAMES = ("cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2")
PAIR_TASKS = ("mnli", "mrpc", "qnli", "qqp", "rte")


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """Returns the config; ``mode`` in '', 'smoke' or a GLUE task name."""
  c = ml_collections.ConfigDict()
  c.seed = 42                            # BDPL's seed

  c.data = ml_collections.ConfigDict()
  c.data.name = "glue"
  c.data.task = "sst2"                   # sst2 | mrpc | rte | qnli | mnli | qqp | cola
  c.data.tfds_dir = ""                   # TFDS data_dir with glue/<task>/<version>/ (array_record)
  c.data.test_split = ""                 # '' = GLUE validation (MNLI: validation_matched)
  c.data.k_shot = 16                     # examples per class per client (BDPL 16-shot)
  c.data.k_shot_seed = 42                # halving of the train split and the k-shot draws
  # examples_per_client must stay 0: the k-shot protocol sets client sizes; the test split
  # is the GLUE validation split (test_examples = 0: all of it).
  c.data.update(common.partition(num_clients=10))

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.model = "roberta_mlm"
  c.blackbox.model_dir = ""              # config.json, tokenizer.json, model.safetensors (or .bin)
  c.blackbox.max_length = 128            # padded tokens per row: <s> prompt template(texts) </s>
  c.blackbox.budget_examples = 0         # training black-box examples allowed (0 = unlimited)

  c.task = ml_collections.ConfigDict()
  c.task.family = "glue"

  c.prompt = ml_collections.ConfigDict()
  c.prompt.kind = "discrete"
  c.prompt.length = 10                   # L (BDPL run.sh)
  c.prompt.vocabulary = "pmi_ngram"      # 'pmi_ngram' (BDPL) | 'frequent_words'
  c.prompt.vocabulary_size = 200         # N (BDPL run.sh)
  c.prompt.vocabulary_texts = "clients"  # 'clients' (their k-shot texts) | 'train_split' (BDPL)
  c.prompt.vocabulary_fill = True        # top up short PMI lists with frequent words

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "bdpl"
  c.zo.num_directions = 20               # I prompts sampled per step (BDPL)

  c.client = ml_collections.ConfigDict()
  c.client.optimizer = "adamw"           # BDPL: AdamW, clip 3, then simplex projection
  c.client.weight_decay = 0.1
  # lr: BDPL run.sh (the maintainer suggests 1e-3); lr_decay 0: BDPL's LR is constant;
  # local_steps 1: one pass over a 16-shot binary client = 1 batch.
  c.client.update(common.client_schedule(lr=1e-4, local_steps=1, batch_size=32))

  c.server = common.server()             # 'fedbpt' (CMA-ES) has no GLUE form
  # rounds: 40 x 10 clients x 1 step x 20 = 8,000 calls (BDPL api_limit).
  c.train = common.train(rounds=40, eval_every=5, eval_batch_size=64)
  c.baselines = common.baselines()
  c.parallel = common.parallel()
  c.decentralized = common.decentralized()  # server.algorithm='dfedsam' only
  c.attack = common.attack()              # Byzantine clients in simulation (off)

  if mode in GLUE_TASK_NAMES:
    c.data.task = mode
    if mode in PAIR_TASKS:
      c.blackbox.max_length = 256
  elif mode == "smoke":
    c.data.k_shot = 2
    c.data.num_clients = 2
    c.data.test_examples = 12
    c.blackbox.max_length = 24
    c.prompt.length = 3
    c.prompt.vocabulary = "frequent_words"
    c.prompt.vocabulary_size = 8
    c.zo.num_directions = 4
    c.client.local_steps = 2
    c.client.batch_size = 4
    c.client.lr = 0.05
    c.train.rounds = 3
    c.train.eval_every = 2
    c.train.eval_batch_size = 8
  elif mode:
    raise ValueError(f"unknown config mode {mode!r} for configs/glue_roberta.py; use '', "
                     f"'smoke' or a GLUE task name {list(GLUE_TASK_NAMES)}")
  return c
