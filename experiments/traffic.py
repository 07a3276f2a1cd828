"""Bytes per round of dense and seed-and-scalar uploads, for the frame, the coordinator
and the BDPL prompt, as counted in the metrics and as they travel in Flower records.

    python -m experiments.traffic            # prints the table (docs/seed_uploads.md)

For each setting the experiment is built (no training), and one client's upload is
shaped with ``jax.eval_shape`` of the algorithm's ``client_update``:

* ``payload``: what ``upload_bytes`` counts per client (the delta, or key + losses);
* ``wire``: the bytes of the ``ArrayRecord`` a Flower node sends (every array of the
  upload, the example count and metrics included, each with its ``.npy`` header);
* ``download``: what one client receives for one round: the broadcast (the global
  generator) with ``download='dense'``; with the Flower run config's ``download='seeds'``
  the round's record (the cohort's keys, losses, counts, ids and report flags), which a
  node that took part in the previous round replays (a node absent for k rounds gets
  k records; its first message holds the whole server state).

Round totals multiply by the cohort.
"""

from __future__ import annotations

import tempfile

import jax
import numpy as np

from configs import drug_minilm, fmnist_effnet
from fedbbpt_jax.federated.algorithms.algorithm import payload_of, tree_bytes
from fedbbpt_jax.flower.codec import to_array_record
from fedbbpt_jax.train.build import build_experiment

SETTINGS = (
    ("frame (image demo)", fmnist_effnet.get_config, {}),
    ("coordinator (image)", fmnist_effnet.get_config, {"prompt.kind": "coordinator"}),
    ("BDPL prompt (text demo)", drug_minilm.get_config, {}),
)


def client_traffic(config) -> tuple[int, int, int, int, int, int]:
  """``(params, payload, wire, dense download, seed download, cohort)``: bytes of one
  client in one round (the seed download only with seed uploads, else 0)."""
  with tempfile.TemporaryDirectory() as workdir:
    exp = build_experiment(config, workdir=workdir)
  received = exp.algorithm.broadcast(exp.algorithm.init(exp.init_params))
  upload = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), exp.upload_structure())
  payload = tree_bytes(payload_of(upload))
  wire = sum(len(a.data) for a in to_array_record(upload).values())
  params = sum(int(np.size(a)) for a in jax.tree.leaves(exp.init_params))
  cohort = exp.cohort_size
  seed_download = 0
  if hasattr(upload, "key_data"):  # one RoundRecord: keys, losses, counts, ids, flags
    seed_download = cohort * (tree_bytes((upload.key_data, upload.losses, upload.num_examples))
                              + 4 + 1)
  return params, payload, wire, tree_bytes(received), seed_download, cohort


def main() -> None:
  print("| prompt | params | upload | payload / client | wire / client | payload / round | "
        "download / client (dense) | download / client (seeds, every round) |")
  print("|---|---|---|---|---|---|---|---|")
  for name, get_config, overrides in SETTINGS:
    for upload in ("dense", "seeds"):
      config = get_config()
      config.baselines.local_only = False
      for field, value in {**overrides, "client.upload": upload}.items():
        section, key = field.split(".")
        config[section][key] = value
      params, payload, wire, download, seed_download, cohort = client_traffic(config)
      seeds = f"{seed_download:,} B" if seed_download else "-"
      print(f"| {name} | {params:,} | {upload} | {payload:,} B | {wire:,} B | "
            f"{payload * cohort:,} B | {download:,} B | {seeds} |", flush=True)


if __name__ == "__main__":
  main()
