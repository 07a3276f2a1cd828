"""Chat LLMs by name: ``LLM_MODELS`` maps a model name to ``load() -> CausalLM``.

The instruction family (``generator.model_path``, ``llm.model_path``) and the chat service
(``python -m fedbbpt_jax.serve.chat --model=...``) take a registered name, or else a path
(a ``.gguf`` file or a model folder, read by ``models.causal_lm.load_causal_lm``). The
bundled SmolLM2-135M-Instruct is registered here; users register their own loader the same
way, in a module loaded with ``--imports``::

    LLM_MODELS.register("my-llm", lambda: load_causal_lm("/models/my-llm.gguf"))
"""

from __future__ import annotations

from typing import Callable

from fedbbpt_jax.core import Registry
from fedbbpt_jax.models.causal_lm import SMOLLM2, CausalLM, load_causal_lm

LLM_MODELS: Registry[Callable[[], CausalLM]] = Registry(
    "chat LLM", home="fedbbpt_jax.blackbox.llm_zoo.LLM_MODELS")
LLM_MODELS.register(SMOLLM2, lambda: load_causal_lm(SMOLLM2))


def load_llm(name_or_path: str) -> CausalLM:
  """The LLM registered as ``name_or_path``, or the model file or folder at that path.

  Raises:
    FileNotFoundError: neither a registered name nor a readable model (lists the names).
  """
  if name_or_path in LLM_MODELS:
    return LLM_MODELS.get(name_or_path)()
  try:
    return load_causal_lm(name_or_path)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"{e}; registered LLMs: {list(LLM_MODELS.names())}, "
                            f"{LLM_MODELS.how_to_register(name_or_path)}") from e
