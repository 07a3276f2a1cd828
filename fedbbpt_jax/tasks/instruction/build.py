"""Builds the instruction family's ``TaskBundle`` (``task.family='instruction'``), so that
``experiments.train`` runs federated instruction optimisation with every algorithm,
estimator, aggregator, DP setting, checkpoint/resume and sweep of the generic layers.

Data flow: the task's examples (a rule task generated offline, or an instruction-induction
JSON file) -> the first ``task.exemplars`` are the generator's demonstrations (never
trained or tested on) -> the next ``data.train_examples`` are split over the clients
(``data.partition``, IID; every example's label is 1, "answered right") -> the last
``data.test_examples`` are the test set. The prompt kind (``prompt.kind``, a
``prompts.PROMPTS`` entry tagged ``'instruction'``, see ``prompt_kinds``) builds the
generator ``z -> instruction`` and the prompt's start and projection (``soft_instruction``:
the open LLM of ``generator.*``, ``{"z": zeros(d)}``, i.e. training starts from the
zero-shot instruction, and every step projected back into ``[-1, 1]^d``); the black-box
LLM (``llm.*``: an OpenAI-compatible endpoint, or a local model, the same copy when it is
the generator's model) is built once.

Roles (``BuildOptions.role``): the family has no set-up from client data (the exemplars are
the server's public demonstrations), so a deployment's server holds the exemplars and the
test examples only, and a node those and its own training examples (``held_examples``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from fedbbpt_jax.data import client_data, client_parts, label_histograms, size_only_clients
from fedbbpt_jax.prompts import PROMPTS
from fedbbpt_jax.tasks.instruction.execution_task import InstructionExecution
from fedbbpt_jax.tasks.instruction.llm_blackbox import InstructionBlackBox
from fedbbpt_jax.tasks.instruction.llms import chat_llm, load_task
from fedbbpt_jax.tasks.instruction.prompt_kinds import InstructionSetup
from fedbbpt_jax.tasks.protocol import NODE, SERVER, SIMULATION, BuildOptions, TaskBundle


def task_examples(config: Any) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
  """``(name, examples, true definition)`` of ``config.task``, exactly as many as needed."""
  t, d = config.task, config.data
  need = t.exemplars + d.train_examples + d.test_examples
  task = load_task(config, need, d.task_seed,
                   "task.exemplars + data.train_examples + data.test_examples")
  return task.name, task.examples[:need], task.definition


def held_examples(examples: tuple, config: Any, options: BuildOptions) -> tuple:
  """The examples this process holds: every one (a simulation); the exemplars and the test
  examples, with the training examples withheld as None (a deployment's server); those and
  the node's own training examples (a node). The task itself is generated, or read from
  its file, in full (the reproduction convenience: a node drops what is not its own)."""
  if options.role == SIMULATION:
    return examples
  t, d = config.task, config.data
  train = np.arange(t.exemplars, t.exemplars + d.train_examples)
  own: set[int] = set()
  if options.role == NODE:
    parts = client_parts(np.ones(len(train), np.int32), d)
    own = {int(i) for i in train[parts[options.partition_id]]}
  return tuple(e if not t.exemplars <= i < t.exemplars + d.train_examples or i in own else None
               for i, e in enumerate(examples))


def build_instruction_task(config: Any, options: BuildOptions) -> TaskBundle:
  """The bundle (see the module docstring)."""
  t, d = config.task, config.data
  name, examples, definition = task_examples(config)
  exemplars = examples[:t.exemplars]
  prompted = PROMPTS.get(config.prompt.kind, "prompt.kind", "instruction")(
      InstructionSetup(config=config, exemplars=tuple(exemplars)))
  generator, dim = prompted.generator, prompted.generator.intrinsic_dim
  blackbox = InstructionBlackBox(generator, chat_llm(config, "llm"),
                                 held_examples(examples, config, options), t.scorer,
                                 demos=exemplars[:t.demos], max_tokens=config.llm.max_tokens)
  blackbox = options.wrap(blackbox)
  train_x = np.arange(t.exemplars, t.exemplars + d.train_examples, dtype=np.int32)
  train_y = np.ones(len(train_x), np.int32)
  test_x = np.arange(t.exemplars + d.train_examples, len(examples), dtype=np.int32)
  parts = client_parts(train_y, d)  # (every label is 1: the parts depend on the sizes only)
  if options.role == SERVER:
    clients, histograms = size_only_clients(options.client_sizes, train_x[:0]), None
  else:
    if options.role == NODE:
      parts = [parts[options.partition_id]]
    clients = options.clients(client_data(train_x, train_y, parts), 2)
    histograms = label_histograms(train_y, parts, 2)
  task = InstructionExecution(blackbox, dim)
  inner = blackbox if isinstance(blackbox, InstructionBlackBox) else blackbox.inner

  def counters() -> dict[str, int]:  # carried over a resume by the loop
    return {"llm_requests": inner.llm_requests, "generations": generator.generations}

  def cache_state() -> dict:  # saved with every checkpoint: a resume repeats no work
    return {"instructions": generator.cache_state(), "scores": inner.cache_state()}

  def load_cache_state(state: dict) -> None:
    generator.load_cache_state(state.get("instructions", {}))
    inner.load_cache_state(state.get("scores", []))

  def describe(params) -> dict:
    z = np.zeros(dim, np.float32) if params is None else np.asarray(params["z"])
    return {"task": name, "true_definition": definition,
            "instruction": inner.instruction(z), "zero_shot_instruction": inner.instruction(
                np.zeros(dim, np.float32)), **counters()}

  return TaskBundle(
      task=task, blackbox=blackbox, clients=clients, test_x=test_x,
      test_y=np.ones(len(test_x), np.int32),
      init_prompt=prompted.init_prompt,
      label_histograms=histograms,
      test_split=f"{name}: examples {test_x[0]}-{test_x[-1]} ({len(test_x)}), after "
                 f"{t.exemplars} exemplars and {d.train_examples} training examples",
      project=prompted.project,
      describe=describe, counters=counters, cache_state=cache_state,
      load_cache_state=load_cache_state,
      client_count=int(d.num_clients) if options.role == NODE else 0)
