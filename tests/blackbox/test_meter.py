"""Query meter and budget."""

import jax.numpy as jnp
import pytest

from fedbbpt_jax.blackbox import QueryBudgetExceeded, QueryMeter, SurrogateBlackBox


def test_budget_stops_before_the_round_that_would_exceed_it():
  meter = QueryMeter(budget_examples=100)
  meter.add(bb_examples=60)
  meter.check_budget(40)
  with pytest.raises(QueryBudgetExceeded, match="blackbox.budget_examples"):
    meter.check_budget(41)
  with pytest.raises(KeyError):
    meter.add(tokens=3)


def test_surrogate_rejects_wrong_input_shapes():
  bb = SurrogateBlackBox("lin", lambda w, x: x.reshape(len(x), -1) @ w, jnp.ones((12, 2)),
                         (2, 2, 3), 2)
  assert bb(jnp.ones((5, 2, 2, 3))).shape == (5, 2)
  with pytest.raises(ValueError, match="lin"):
    bb(jnp.ones((5, 3, 3, 3)))
