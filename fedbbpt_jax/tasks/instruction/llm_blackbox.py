"""The instruction track's black box for the generic round program: ``(z, example) -> score``.

A row of the input is ``[z_1 .. z_d, example index]``: the prompt generator's point and
the task example it is applied to. The host side turns each distinct ``z`` into its
instruction (the prompt kind's generator, e.g. ``prompts.InstructionGenerator``: the open
LLM, cached by ``z``), asks the black-box LLM the example under that instruction (one
batched ``complete`` for every pair it has not answered before; degenerate instructions
score 0 without a query), and returns the example's execution score. So the federated
zero-order machinery of ``train`` (any estimator, algorithm, aggregator, DP, checkpoints,
sweeps) optimises the instruction exactly as it optimises a visual or text prompt.

Jitted code reaches the host through ``jax.pure_callback(..., vmap_method="expand_dims")``
(one host call per compiled step, all clients and candidates stacked), as the remote
image/text black box does; a callback never raises: it records the first error (e.g. a
spent token budget, an unreachable endpoint), returns NaN and skips later calls until
``raise_pending_error`` raises it on the host (the train loop calls it after every step,
before anything is written).

Counting. ``train``'s meter counts rows (every ``(z, example)`` pair a step asks for,
the budget unit of ``blackbox.budget_examples``); ``llm_requests`` counts the requests
actually sent (pairs answered before are cached), and the black-box LLM's own meter
(``ChatClient.meter``) the tokens.
"""

from __future__ import annotations

import threading
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.blackbox import BlackBox
from fedbbpt_jax.blackbox.llm_local import ChatLLM
from fedbbpt_jax.prompts.instruction_generator import InstructionSource
from fedbbpt_jax.tasks.instruction.execution import execution_messages
from fedbbpt_jax.tasks.instruction.scorers import SCORERS, degenerate


class InstructionBlackBox(BlackBox):
  """``[N, d + 1]`` rows of ``(z, example index)`` -> ``[N, 1]`` execution scores.

  Args:
    generator: point -> instruction (the prompt kind's, e.g. the open LLM with its
      exemplars and projection).
    llm: the black-box LLM (``ChatLLM``: local, or an OpenAI-compatible endpoint).
    examples: the task's ``(input, expected output)`` pairs (indexed by the rows); None
      for an example this process does not hold (scoring it raises).
    scorer: a name in ``scorers.SCORERS``.
    demos: few-shot demonstrations in every execution request.
    max_tokens: answer length limit.
  """

  def __init__(self, generator: InstructionSource, llm: ChatLLM,
               examples: Sequence[tuple[str, str]], scorer: str,
               demos: Sequence[tuple[str, str]] = (), max_tokens: int = 16):
    self.generator, self.llm = generator, llm
    self.examples, self.demos, self.max_tokens = tuple(examples), tuple(demos), max_tokens
    self.score_fn = SCORERS[scorer]
    self.name = f"instruction:{getattr(llm, 'name', 'llm')}"
    self.input_shape = (generator.intrinsic_dim + 1,)
    self.output_size = 1
    self.scores: dict[tuple[str, int], float] = {}
    self.llm_requests = 0
    self._lock = threading.Lock()
    self._pending_error: Exception | None = None

  def cache_state(self) -> list[list]:
    """The scores asked so far as JSON: ``[[instruction, example index, score], ...]``."""
    with self._lock:
      return [[text, i, score] for (text, i), score in self.scores.items()]

  def load_cache_state(self, state: list[list]) -> None:
    """Adds a ``cache_state`` to the scores (a resumed run asks none of them again)."""
    with self._lock:
      self.scores.update({(str(text), int(i)): float(score) for text, i, score in state})

  def instruction(self, z: np.ndarray) -> str:
    return self.generator.generate(np.asarray(z, np.float32)[None])[0]

  def predict(self, inputs: np.ndarray) -> np.ndarray:
    """Scores ``[..., 1]`` of rows ``[..., d + 1]`` (host side, eager)."""
    lead = inputs.shape[:-1]
    flat = np.asarray(inputs, np.float32).reshape(-1, self.input_shape[0])
    if not len(flat):
      return np.zeros(lead + (1,), np.float32)
    index = np.rint(flat[:, -1]).astype(np.int64)
    if index.min() < 0 or index.max() >= len(self.examples):
      raise IndexError(f"example index {int(index.max())} outside the task's "
                       f"{len(self.examples)} examples")
    withheld = sorted({int(i) for i in index if self.examples[i] is None})
    if withheld:
      raise ValueError(f"examples {withheld} are another party's training examples: this "
                       "process does not hold them (a deployment's server holds none, a "
                       "node only its own)")
    instructions = self.generator.generate(flat[:, :-1])
    todo = []
    for text, i in dict.fromkeys(zip(instructions, index.tolist())):
      if (text, i) in self.scores:
        continue
      if degenerate(text, self.generator.exemplars) is not None:
        self.scores[(text, i)] = 0.0
      else:
        todo.append((text, i))
    if todo:
      answers = self.llm.complete([execution_messages(t, self.examples[i][0], self.demos)
                                   for t, i in todo], self.max_tokens)
      self.llm_requests += len(todo)
      for (text, i), answer in zip(todo, answers):
        self.scores[(text, i)] = float(self.score_fn(answer.text, self.examples[i][1]))
    out = np.asarray([self.scores[(t, i)] for t, i in zip(instructions, index.tolist())],
                     np.float32)
    return out.reshape(lead + (1,))

  def _host_callback(self, inputs: np.ndarray) -> np.ndarray:
    nan = np.full(inputs.shape[:-1] + (1,), np.nan, np.float32)
    with self._lock:
      if self._pending_error is not None:
        return nan
      try:
        return self.predict(inputs)
      except Exception as e:  # pylint: disable=broad-except
        self._pending_error = e
        return nan

  def raise_pending_error(self) -> None:
    with self._lock:
      error, self._pending_error = self._pending_error, None
    if error is not None:
      raise error

  def _outputs(self, inputs: jnp.ndarray) -> jnp.ndarray:
    if not isinstance(inputs, jax.core.Tracer):
      return jnp.asarray(self.predict(np.asarray(inputs)))
    result = jax.ShapeDtypeStruct((inputs.shape[0], 1), jnp.float32)
    return jax.pure_callback(self._host_callback, result, inputs.astype(jnp.float32),
                             vmap_method="expand_dims")

  def __repr__(self) -> str:
    return (f"InstructionBlackBox({self.name}, d={self.input_shape[0] - 1}, "
            f"{len(self.examples)} examples, {self.llm_requests} LLM requests)")


def instruction_rows(z: jnp.ndarray, example_index: jnp.ndarray) -> jnp.ndarray:
  """Black-box rows ``[B, d + 1]`` for one point ``z [d]`` and examples ``[B]``."""
  b = example_index.shape[0]
  return jnp.concatenate([jnp.broadcast_to(z.astype(jnp.float32), (b, z.shape[-1])),
                          example_index.astype(jnp.float32)[:, None]], axis=1)

