"""Instruction optimisation (InstructZero-style) for a black-box LLM: federated, local-only
or centralized BO over the soft prompt of an open generator LLM.

    python -m experiments.instruct --config=configs/instruction.py \\
        --config.generator.model_dir=/models/gpt2 --config.blackbox.url=http://127.0.0.1:8100 \\
        --workdir=/tmp/instruct
    python -m experiments.instruct --config=configs/instruction.py:smoke \\
        --config.generator.model_dir=DIR --config.blackbox.model_dir=DIR --workdir=/tmp/smoke

No causal LM ships offline with this project: point ``generator.model_dir`` (and
``blackbox.model_dir``, or ``blackbox.url`` for an OpenAI-compatible endpoint) at local
GPT-2 family folders (``config.json``, ``model.safetensors``, ``tokenizer.json``).
"""

import ml_collections


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """``mode='smoke'``: a tiny run for tests (any tiny model folder)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = "federated"                 # 'federated' | 'local_only' | 'bo' (centralized)

  c.task = ml_collections.ConfigDict()
  c.task.name = "first_word_letter"      # a rule task (rule_tasks.RULES) ...
  c.task.json_path = ""                  # ... or an instruction-induction JSON file
  c.task.scorer = "exact_match"          # 'exact_match' | 'contains' | 'f1'
  c.task.exemplars = 5                   # demonstrations shown to the generator
  c.task.examples_per_client = 10        # scored examples per client
  c.task.num_clients = 3
  c.task.test_examples = 50

  c.generator = ml_collections.ConfigDict()
  c.generator.model_dir = ""             # GPT-2 family folder (required)
  c.generator.intrinsic_dim = 10
  c.generator.num_soft_tokens = 5
  c.generator.max_new_tokens = 32
  c.generator.projection_seed = 0

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.url = ""                    # OpenAI-compatible endpoint, or '' = model_dir
  c.blackbox.model = "local-gpt2"        # the model id sent to the endpoint
  c.blackbox.api_key_env = "FEDBBPT_LLM_API_KEY"
  c.blackbox.model_dir = ""              # local black-box LLM folder (when url is '')
  c.blackbox.max_tokens = 16
  c.blackbox.budget_tokens = 0           # 0 = unlimited

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "spsa"
  c.zo.num_directions = 1
  c.zo.sigma = 0.2
  c.zo.lr = 0.5

  c.train = ml_collections.ConfigDict()
  c.train.rounds = 5
  c.train.local_steps = 2

  c.bo = ml_collections.ConfigDict()
  c.bo.initial = 25
  c.bo.iterations = 5
  c.bo.batch = 25

  if mode == "smoke":
    c.task.exemplars = 2
    c.task.examples_per_client = 3
    c.task.num_clients = 2
    c.task.test_examples = 4
    c.task.scorer = "contains"
    c.generator.intrinsic_dim = 4
    c.generator.num_soft_tokens = 2
    c.generator.max_new_tokens = 4
    c.blackbox.max_tokens = 3
    c.train.rounds = 2
    c.bo.initial = 4
    c.bo.iterations = 1
    c.bo.batch = 2
  elif mode:
    raise ValueError(f"unknown config mode {mode!r} for configs/instruction.py; use '' or "
                     "'smoke'")
  return c
