"""PNG plots of a run: test accuracy against rounds and against black-box queries.

Matplotlib is imported when a plot is drawn (with the ``Agg`` backend), not with this
module: the training loop imports it, and so does every process that only builds an
experiment (e.g. a deployed node's process per message), which then skips a second or
more of start-up.
"""

from __future__ import annotations


def plot_accuracy(rows: list[dict], path: str, zero_shot: float | None = None,
                  local_only: float | None = None, title: str = "",
                  method: str = "Fed-BBPT") -> None:
  """Writes a two-panel PNG: accuracy vs round and vs training black-box examples.

  The server's test accuracy (``test_accuracy``) and, where the clients tested the model
  (``train.evaluation``), the federated accuracy (``fed_test_accuracy``) with the band
  between the worst and the best client's.
  """
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  central = [r for r in rows if r.get("test_accuracy") is not None]
  federated = [r for r in rows if r.get("fed_test_accuracy") is not None]
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, key, label in ((axes[0], "round", "round"),
                         (axes[1], "bb_examples", "black-box examples queried (training)")):
    if central:
      ax.plot([r[key] for r in central], [100 * r["test_accuracy"] for r in central],
              marker="o", label=f"{method} (global generator)")
    if federated:
      xs = [r[key] for r in federated]
      # Dashed, hollow markers: the pooled curve often lies on the central one (the
      # splits together are the central test set).
      ax.plot(xs, [100 * r["fed_test_accuracy"] for r in federated], marker="s", ls="--",
              markerfacecolor="none", color="tab:green",
              label="federated (clients' test splits, pooled)")
      ax.fill_between(xs, [100 * r["fed_test_client_accuracy_min"] for r in federated],
                      [100 * r["fed_test_client_accuracy_max"] for r in federated],
                      color="tab:green", alpha=0.15, label="worst to best client")
    if zero_shot is not None:
      ax.axhline(100 * zero_shot, color="gray", ls="--", label="zero-shot")
    if local_only is not None:
      ax.axhline(100 * local_only, color="tab:red", ls=":", label="local-only (mean)")
    ax.set_xlabel(label)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
  axes[0].legend(loc="best")
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
