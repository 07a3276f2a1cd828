"""``data.test_examples=0`` means the whole test split, and the summary line says so."""

import numpy as np

from configs.fmnist_effnet import get_config
from fedbbpt_jax.data import clients
from fedbbpt_jax.data.digits import load_digits_dataset
from fedbbpt_jax.tasks import FAMILIES, BuildOptions


def test_zero_keeps_every_row_and_is_described_as_the_whole_split():
  y = np.arange(50)
  for keep in (0, 50, 80):   # 0 (the docs: whole split) and anything at least as large
    _, kept = clients.test_subset(y, y, keep)
    np.testing.assert_array_equal(kept, y)
    line = clients.describe_test_subset("digits", len(kept), len(y))
    assert line == "digits test, all 50 examples"
  _, kept = clients.test_subset(y, y, 20)
  assert len(kept) == 20 and len(set(kept.tolist())) == 20
  assert clients.describe_test_subset("digits", len(kept), len(y)) == (
      "digits test, fixed subset of 20 of 50 (permutation seed 0)")


def test_the_image_family_reports_the_test_set_it_really_uses():
  split_size = len(load_digits_dataset()["test"][1])
  lines = {}
  for keep in (0, 60):
    config = get_config("smoke")
    config.data.test_examples = keep
    bundle = FAMILIES.get("image").build(config, BuildOptions())
    lines[keep] = (bundle.test_split, len(bundle.test_y))
  assert lines[0] == (f"digits test, all {split_size} examples", split_size)  # was "subset of"
  assert lines[60] == (f"digits test, fixed subset of 60 of {split_size} (permutation seed 0)",
                       60)
