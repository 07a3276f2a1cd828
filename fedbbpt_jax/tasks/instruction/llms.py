"""The instruction track's models and task from a config, shared by the host-side searches
(``experiment``, section ``blackbox``) and the task family (``build``, section ``llm``):

* ``load_model(path, field)``: a local causal LM (a name registered in
  ``blackbox.BLACK_BOXES`` with the tag ``'llm'``, a ``.gguf`` file or a model folder),
  loaded once per process (sweeps and baselines reuse it), a missing one a ``ConfigError``
  naming ``field``;
* ``chat_llm(config, section, generator_lm)``: the black-box LLM of ``config.<section>``:
  an OpenAI-compatible endpoint (``url``), or a local model (the generator's own copy
  when it is the same model);
* ``load_task(config, need, seed)``: the rule task or instruction-induction JSON file of
  ``config.task`` with at least ``need`` examples.
"""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM
from fedbbpt_jax.blackbox.llm_remote import ChatClient
from fedbbpt_jax.core import ConfigError
from fedbbpt_jax.blackbox.llm_zoo import load_llm
from fedbbpt_jax.models.causal_lm import CausalLM
from fedbbpt_jax.tasks.instruction.rule_tasks import (InductionTask, load_induction_json,
                                                      rule_task)

_MODELS: dict[str, CausalLM] = {}


def load_model(path: str, field: str) -> CausalLM:
  if path not in _MODELS:
    try:
      _MODELS[path] = load_llm(path)
    except FileNotFoundError as e:
      raise ConfigError(f"config.{field}={path!r}: {e}") from e
  return _MODELS[path]


def chat_llm(config: Any, section: str, generator_lm: CausalLM | None = None):
  s = config[section]
  if s.url:
    return ChatClient(s.url, model=s.model, api_key_env=s.api_key_env,
                      budget_tokens=s.budget_tokens,
                      max_concurrency=s.get("max_concurrency", 8))
  if not s.model_path:
    raise ConfigError(f"config.{section}.url and config.{section}.model_path are both empty: "
                      "name an OpenAI-compatible endpoint or a local model")
  if generator_lm is not None and s.model_path == config.generator.model_path:
    return LocalChatLLM(generator_lm, max_batch=s.max_batch)
  return LocalChatLLM(load_model(s.model_path, f"{section}.model_path"), max_batch=s.max_batch)


def load_task(config: Any, need: int, seed: int, what: str) -> InductionTask:
  """``config.task``'s task; ``what`` names the fields that add up to ``need``."""
  t = config.task
  task = (load_induction_json(t.json_path, scorer=t.scorer) if t.json_path
          else rule_task(t.name, need, seed=seed))
  if len(task.examples) < need:
    raise ConfigError(f"task {task.name!r} has {len(task.examples)} examples; the config needs "
                      f"{need} ({what})")
  return task
