"""Chat LLMs by name: ``BLACK_BOXES`` entries with the tag ``'llm'``, ``load() -> CausalLM``.

The instruction family (``generator.model_path``, ``llm.model_path``) and the chat service
(``python -m fedbbpt_jax.serve.chat --model=...``) take a registered name, or else a path
(a ``.gguf`` file or a model folder, read by ``models.causal_lm.load_causal_lm``). The
bundled SmolLM2-135M-Instruct is registered here; users register their own loader the same
way, in a module loaded with ``--imports``::

    BLACK_BOXES.register("my-llm", lambda: load_causal_lm("/models/my-llm.gguf"), tags=("llm",))
"""

from __future__ import annotations

from fedbbpt_jax.blackbox.registry import BLACK_BOXES
from fedbbpt_jax.models.causal_lm import SMOLLM2, CausalLM, load_causal_lm

BLACK_BOXES.register(SMOLLM2, lambda: load_causal_lm(SMOLLM2), tags=("llm",))


def load_llm(name_or_path: str) -> CausalLM:
  """The LLM registered as ``name_or_path``, or the model file or folder at that path.

  Raises:
    FileNotFoundError: neither a registered name nor a readable model (lists the names).
  """
  if name_or_path in BLACK_BOXES.names("llm"):
    return BLACK_BOXES.get(name_or_path, tag="llm")()
  try:
    return load_causal_lm(name_or_path)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"{e}; registered LLMs: {list(BLACK_BOXES.names('llm'))}, "
                            f"{BLACK_BOXES.how_to_register(name_or_path, 'llm')}") from e
