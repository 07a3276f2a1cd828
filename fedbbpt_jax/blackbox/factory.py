"""Builds the configured black box: the local surrogate or the same model behind an API."""

from __future__ import annotations

import os
from typing import Any

from fedbbpt_jax.blackbox.base import BlackBox
from fedbbpt_jax.blackbox.remote import RemoteBlackBox, RetryPolicy
from fedbbpt_jax.blackbox.zoo import make_image_classifier


def api_key_from_env(env_var: str) -> str:
  """Returns the API key held in environment variable ``env_var`` ('' if unset or unnamed).

  Keys are read from the environment, never from the config: the config is written
  to ``workdir/config.json``, where a key would leak.
  """
  return os.environ.get(env_var, "") if env_var else ""


def make_blackbox(cfg: Any) -> BlackBox:
  """Returns the black box of a config's ``blackbox`` section.

  ``cfg.url == ''`` (or no ``url`` field): the frozen local copy from
  ``make_image_classifier(cfg.model, cfg.input_size)``. Otherwise a ``RemoteBlackBox``
  for the service at ``cfg.url``, which must serve ``cfg.model`` at ``cfg.input_size``;
  the service runs the very same function, so both give the same outputs.

  Args:
    cfg: the ``config.blackbox`` ConfigDict (fields ``model``, ``input_size``, ``url``,
      ``api_key_env``, ``wire_dtype``, ``max_attempts``, ``backoff_seconds``,
      ``timeout_seconds``, ``max_concurrency``).

  Raises:
    ValueError: the service serves another model or input size (names the field).
    RemoteBlackBoxError: the service cannot be reached.
  """
  url = cfg.get("url", "")
  if not url:
    return make_image_classifier(cfg.model, cfg.input_size)
  retry = RetryPolicy(max_attempts=int(cfg.get("max_attempts", 5)),
                      backoff_seconds=float(cfg.get("backoff_seconds", 0.5)),
                      timeout_seconds=float(cfg.get("timeout_seconds", 60.0)))
  blackbox = RemoteBlackBox(url, api_key_from_env(cfg.get("api_key_env", "")),
                            wire_dtype=cfg.get("wire_dtype", "float32"), retry=retry,
                            max_concurrency=int(cfg.get("max_concurrency", 8)))
  expected = (cfg.input_size, cfg.input_size, 3)
  if blackbox.name != cfg.model:
    blackbox.close()
    raise ValueError(f"config.blackbox.model={cfg.model!r} but the service at {url} serves "
                     f"{blackbox.name!r}")
  if blackbox.input_shape != expected:
    blackbox.close()
    raise ValueError(f"config.blackbox.input_size={cfg.input_size} needs inputs {expected}, but "
                     f"the service at {url} takes {blackbox.input_shape} (start it with "
                     f"--input_size={cfg.input_size})")
  return blackbox
