"""The instruction track's LLM throughput on SmolLM2-135M-Instruct (offline), side by side:

1. greedy generation with the key/value cache (``models.llama.greedy_generate``: one
   prefill, then one position per token) against recomputing the whole sequence for every
   new token (what a cache-free loop does), same prompts, same tokens out;
2. the OpenAI-compatible chat service answering 16 concurrent clients (``ChatClient``,
   16 threads, real HTTP on loopback) with request batching (``--max_batch=16``) and
   without (``--max_batch=1``).

    python benchmarks/bench_llm.py        # also part of `make bench`
"""

from __future__ import annotations

import os
import sys
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fedbbpt_jax.blackbox.llm_local import LocalChatLLM  # noqa: E402
from fedbbpt_jax.blackbox.llm_remote import ChatClient  # noqa: E402
from fedbbpt_jax.models import llama  # noqa: E402
from fedbbpt_jax.models.causal_lm import SMOLLM2, bundled_path  # noqa: E402
from fedbbpt_jax.models.gguf_file import read_gguf  # noqa: E402
from fedbbpt_jax.serve.chat import create_chat_app  # noqa: E402
from fedbbpt_jax.serve.keys import KeyStore  # noqa: E402
from fedbbpt_jax.serve.process import LOOPBACK, free_port  # noqa: E402

PROMPT = 64
NEW = 16


def best_of(fn, repeats=3) -> float:
  fn()  # compile
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


def recompute_generate(params, config, embeds, mask, new):
  """Greedy decoding without a cache: the whole buffer through the model for every token."""
  b, t, d = embeds.shape
  buffer = jnp.concatenate([embeds, jnp.zeros((b, new, d), embeds.dtype)], 1)
  live = jnp.concatenate([mask, jnp.zeros((b, new), bool)], 1)
  out = jnp.zeros((b, new), jnp.int32)

  def step(i, carry):
    buffer, live, out = carry
    logits = llama.full_logits(params, config, buffer, live)[:, t + i - 1]
    token = jnp.argmax(logits, -1).astype(jnp.int32)
    buffer = buffer.at[:, t + i].set(llama.embed_tokens(params, token))
    return buffer, live.at[:, t + i].set(True), out.at[:, i].set(token)

  return jax.lax.fori_loop(0, new, step, (buffer, live, out))[2]


def generation(params, config) -> None:
  cached = jax.jit(llama.greedy_generate, static_argnums=(1, 4))
  plain = jax.jit(recompute_generate, static_argnums=(1, 4))
  print(f"greedy generation, prompt {PROMPT} tokens, {NEW} new tokens (tokens out / s):")
  print("| batch | KV cache | recompute | speed-up | same tokens |")
  print("|---|---|---|---|---|")
  rng = np.random.default_rng(0)
  for batch in (1, 8, 32):
    ids = jnp.asarray(rng.integers(100, 40000, (batch, PROMPT)), jnp.int32)
    embeds, mask = llama.embed_tokens(params, ids), jnp.ones((batch, PROMPT), bool)
    a = np.asarray(cached(params, config, embeds, mask, NEW))
    b = np.asarray(plain(params, config, embeds, mask, NEW))
    same = float((a == b).mean())
    t_cached = best_of(lambda: cached(params, config, embeds, mask, NEW).block_until_ready())
    if batch <= 8:
      t_plain = best_of(lambda: plain(params, config, embeds, mask, NEW).block_until_ready(), 1)
      print(f"| {batch} | {batch * NEW / t_cached:.0f} | {batch * NEW / t_plain:.0f} | "
            f"{t_plain / t_cached:.1f}x | {100 * same:.0f}% |")
    else:
      print(f"| {batch} | {batch * NEW / t_cached:.0f} | not run (slow) | | |")


def service(llm: LocalChatLLM) -> None:
  import uvicorn  # pylint: disable=import-outside-toplevel
  clients, each = 16, 2
  conversations = [[{"role": "user", "content": f"Write the first letter of the word "
                                                f"number {i}: {w}"}]
                   for i, w in enumerate(["apple", "river", "candle", "table"] * 8)]
  print(f"chat service, {clients} concurrent clients x {each} requests, 12 tokens each "
        "(requests / s):")
  print("| service | requests / s | batches |")
  print("|---|---|---|")
  rates = {}
  for max_batch in (1, 16):
    app = create_chat_app(llm, KeyStore(None), max_batch=max_batch)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
      time.sleep(0.05)
    client = ChatClient(f"http://{LOOPBACK}:{port}", model=llm.name, api_key_env="",
                        max_concurrency=clients)
    client.complete(conversations[:clients], 12)  # compile every batch shape once
    start_batches = app.state.batcher.batches
    start = time.perf_counter()
    for _ in range(each):
      client.complete(conversations[:clients], 12)
    elapsed = time.perf_counter() - start
    rates[max_batch] = clients * each / elapsed
    print(f"| max_batch={max_batch} | {rates[max_batch]:.1f} | "
          f"{app.state.batcher.batches - start_batches} |")
    client.close()
    server.should_exit = True
    thread.join(timeout=10)
  print(f"batching speed-up: {rates[16] / rates[1]:.1f}x")


def main() -> None:
  meta, tensors = read_gguf(bundled_path(SMOLLM2))
  config = llama.LlamaConfig.from_gguf(meta, tied="output.weight" not in tensors)
  params = llama.gguf_params(tensors, config)
  generation(params, config)
  service(LocalChatLLM(SMOLLM2))


if __name__ == "__main__":
  main()
