"""Config overrides for tests, written as keyword arguments with ``__`` between levels."""

import ml_collections


def with_overrides(config: ml_collections.ConfigDict, **overrides) -> ml_collections.ConfigDict:
  """Sets ``config.a.b = v`` for every ``a__b=v`` and returns ``config``.

  Example: ``with_overrides(get_config("smoke"), train__rounds=2, client__lr=0.1)``.
  """
  for dotted, value in overrides.items():
    node = config
    *parents, leaf = dotted.split("__")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config
