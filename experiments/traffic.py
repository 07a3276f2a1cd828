"""Bytes per round of dense and seed-and-scalar uploads, for the frame, the coordinator
and the BDPL prompt, as counted in the metrics and as they travel in Flower records.

    python -m experiments.traffic            # prints the table (docs/seed_uploads.md)

For each setting the experiment is built (no training), and one client's upload is
shaped with ``jax.eval_shape`` of the algorithm's ``client_update``:

* ``payload``: what ``upload_bytes`` counts per client (the delta, or key + losses);
* ``wire``: the bytes of the ``ArrayRecord`` a Flower node sends (every array of the
  upload, the example count and metrics included, each with its ``.npy`` header);
* ``download``: the broadcast (the global generator) per client.

Round totals multiply by the cohort (every client, every round, in these configs).
"""

from __future__ import annotations

import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from configs import drug_minilm, fmnist_effnet
from fedbbpt_jax.federated.algorithm import tree_bytes
from fedbbpt_jax.flower.codec import to_array_record
from fedbbpt_jax.train.build import build_experiment

SETTINGS = (
    ("frame (image demo)", fmnist_effnet.get_config, {}),
    ("coordinator (image)", fmnist_effnet.get_config, {"prompt.kind": "coordinator"}),
    ("BDPL prompt (text demo)", drug_minilm.get_config, {}),
)


def client_traffic(config) -> tuple[int, int, int, int, int]:
  """``(params, payload, wire, download, cohort)`` bytes of one client in one round."""
  with tempfile.TemporaryDirectory() as workdir:
    exp = build_experiment(config, workdir=workdir)
  received = exp.algorithm.broadcast(exp.algorithm.init(exp.init_params))
  one = jax.tree.map(lambda a: a[0], exp.clients)
  like = jax.eval_shape(exp.algorithm.client_update, received, one, jax.random.key(0),
                        exp.hparams, jnp.int32(0))
  upload = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), like)
  payload = tree_bytes(upload.payload() if hasattr(upload, "payload") else upload)
  wire = sum(len(a.data) for a in to_array_record(upload).values())
  params = sum(int(np.size(a)) for a in jax.tree.leaves(exp.init_params))
  return params, payload, wire, tree_bytes(received), exp.cohort_size


def main() -> None:
  print("| prompt | params | upload | payload / client | wire / client | payload / round | "
        "download / round |")
  print("|---|---|---|---|---|---|---|")
  for name, get_config, overrides in SETTINGS:
    for upload in ("dense", "seeds"):
      config = get_config()
      config.baselines.local_only = False
      for field, value in {**overrides, "client.upload": upload}.items():
        section, key = field.split(".")
        config[section][key] = value
      params, payload, wire, download, cohort = client_traffic(config)
      print(f"| {name} | {params:,} | {upload} | {payload:,} B | {wire:,} B | "
            f"{payload * cohort:,} B | {download * cohort:,} B |", flush=True)


if __name__ == "__main__":
  main()
