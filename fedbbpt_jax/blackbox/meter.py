"""Host-side query meter and budget (docs/algorithms.md, "Query accounting")."""

from __future__ import annotations

import dataclasses

COUNTERS = ("bb_calls", "bb_examples", "candidates", "client_activations",
            "eval_bb_examples", "generator_calls")


class QueryBudgetExceeded(RuntimeError):
  """Raised before a round whose queries would exceed the configured budget."""


@dataclasses.dataclass
class QueryMeter:
  """Accumulates black-box query counters across rounds.

  Attributes:
    budget_examples: training ``bb_examples`` allowed in total (0 = unlimited).
    counts: running totals of every counter in ``COUNTERS``.
  """

  budget_examples: int = 0
  counts: dict[str, int] = dataclasses.field(
      default_factory=lambda: {name: 0 for name in COUNTERS})

  def add(self, **counts: int) -> None:
    for name, value in counts.items():
      if name not in self.counts:
        raise KeyError(f"unknown query counter {name!r}; known: {list(self.counts)}")
      self.counts[name] += int(value)

  def check_budget(self, next_examples: int) -> None:
    """Raises ``QueryBudgetExceeded`` if ``next_examples`` more would pass the budget."""
    if self.budget_examples and self.counts["bb_examples"] + next_examples > self.budget_examples:
      raise QueryBudgetExceeded(
          f"query budget spent: {self.counts['bb_examples']} of {self.budget_examples} "
          f"black-box examples used, the next round needs {next_examples} "
          "(config field blackbox.budget_examples)")

  def state_dict(self) -> dict[str, int]:
    return dict(self.counts)

  def load_state_dict(self, counts: dict[str, int]) -> None:
    self.counts.update({k: int(v) for k, v in counts.items()})
