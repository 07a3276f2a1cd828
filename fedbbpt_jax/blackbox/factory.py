"""Builds the configured black box: the local surrogate or the same model behind an API.

``make_blackbox`` for image configs (pixels), ``make_text_blackbox`` for text configs
(token ids); both check that a service serves the configured model and input shape.
"""

from __future__ import annotations

import os
from typing import Any

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.blackbox.chunked import ChunkedBlackBox
from fedbbpt_jax.blackbox.remote import RemoteBlackBox, RetryPolicy
from fedbbpt_jax.blackbox.text_zoo import make_text_encoder
from fedbbpt_jax.blackbox.zero_shot import ZeroShotHead
from fedbbpt_jax.blackbox.zoo import make_image_classifier


def api_key_from_env(env_var: str) -> str:
  """Returns the API key held in environment variable ``env_var`` ('' if unset or unnamed).

  Keys are read from the environment, never from the config: the config is written
  to ``workdir/config.json``, where a key would leak.
  """
  return os.environ.get(env_var, "") if env_var else ""


def make_blackbox(cfg: Any, head: ZeroShotHead | None = None) -> BlackBox:
  """Returns the black box of a config's ``blackbox`` section.

  ``cfg.url == ''`` (or no ``url`` field): the frozen local copy from
  ``make_image_classifier(cfg.model, cfg.input_size, cfg.weights_path, head)``, wrapped
  in a ``ChunkedBlackBox`` when ``cfg.chunk_size > 0``. Otherwise a ``RemoteBlackBox``
  for the service at ``cfg.url``, which must serve ``cfg.model`` at ``cfg.input_size``
  (and, for a zero-shot model, ``head``: the same class names and templates, which
  ``/v1/info`` reports); the service runs the very same function, so both give the same
  outputs.

  Args:
    cfg: the ``config.blackbox`` ConfigDict (fields ``model``, ``input_size``,
      ``weights_path``, ``url``, ``api_key_env``, ``wire_dtype``, ``max_attempts``,
      ``backoff_seconds``, ``timeout_seconds``, ``max_concurrency``).
    head: the zero-shot head of a zero-shot model (``zoo.is_zero_shot``), else None.

  Raises:
    ValueError: the service serves another model, input size or head (names the field).
    RemoteBlackBoxError: the service cannot be reached.
  """
  url = cfg.get("url", "")
  if not url:
    model = make_image_classifier(cfg.model, cfg.input_size, cfg.get("weights_path", "") or None,
                                  head=head)
    chunk = int(cfg.get("chunk_size", 0))
    return ChunkedBlackBox(model, chunk) if chunk else model
  blackbox = _remote(cfg, cfg.get("wire_dtype", "float32"), (cfg.input_size, cfg.input_size, 3),
                     f"config.blackbox.input_size={cfg.input_size}",
                     f"--input_size={cfg.input_size}")
  served = blackbox.info.get("zero_shot")
  wanted = head.describe() if head is not None else None
  if served != wanted:
    blackbox.close()
    raise ValueError(f"the service at {url} answers over {_head_words(served)}, and this run "
                     f"asks for {_head_words(wanted)} (the dataset's class names and "
                     f"config.blackbox.templates={cfg.get('templates', '')!r}); start the "
                     "service with the run's head: --class_names=FILE (one name per line, in "
                     "label order) --templates=...")
  return blackbox


def _head_words(head: dict | None) -> str:
  """A zero-shot head in a few words, for messages."""
  if head is None:
    return "its own classes (no zero-shot head)"
  names = head["class_names"]
  shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
  return f"{len(names)} classes ({shown}) with templates {head['templates']}"


def make_text_blackbox(cfg: Any) -> BlackBox:
  """Returns a text config's sentence encoder on token ids ``[N, cfg.max_length]``.

  ``cfg.url == ''`` (or no ``url`` field): the frozen local copy
  (``text_zoo.make_text_encoder``); otherwise the same model served at ``cfg.url``
  (``python -m fedbbpt_jax.serve --model=all_minilm_l6_v2 --max_length=...``), reached
  with token ids on an ``int32`` wire.

  Raises:
    ValueError: the service serves another model or row length (names the field).
  """
  url = cfg.get("url", "")
  if not url:
    return make_text_encoder(cfg.model, cfg.max_length)
  return _remote(cfg, "int32", (cfg.max_length,), f"config.blackbox.max_length={cfg.max_length}",
                 f"--max_length={cfg.max_length}")


def _remote(cfg: Any, wire_dtype: str, expected: tuple[int, ...], field: str,
            flag: str) -> BlackBox:
  """A ``RemoteBlackBox`` for ``cfg.url``, checked to serve ``cfg.model`` on ``expected`` inputs."""
  url = cfg.url
  retry = RetryPolicy(max_attempts=int(cfg.get("max_attempts", 5)),
                      backoff_seconds=float(cfg.get("backoff_seconds", 0.5)),
                      timeout_seconds=float(cfg.get("timeout_seconds", 60.0)))
  blackbox = RemoteBlackBox(url, api_key_from_env(cfg.get("api_key_env", "")),
                            wire_dtype=wire_dtype, retry=retry,
                            max_concurrency=int(cfg.get("max_concurrency", 8)))
  if blackbox.name != cfg.model:
    blackbox.close()
    raise ValueError(f"config.blackbox.model={cfg.model!r} but the service at {url} serves "
                     f"{blackbox.name!r}")
  if blackbox.input_shape != expected:
    blackbox.close()
    raise ValueError(f"{field} needs inputs {expected}, but the service at {url} takes "
                     f"{blackbox.input_shape} (start it with {flag})")
  return blackbox
