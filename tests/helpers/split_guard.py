"""The datasets the loopback tests deploy, as a server that holds no training data has them.

``guard()`` (what the server's plugin ``tests.helpers.server_plugins`` calls on import,
through the run config ``imports``) re-registers the image datasets the tests deploy
(``digits``, ``fashion_mnist``) and the drug reviews with loaders whose training split raises
``TrainingDataRead`` when anything asks for it; the test split (a server-side test set)
and the class names are there. The nodes import their own plugins, with the real
loaders. (``digits`` is scikit-learn's in-memory dataset: its loader splits it, then
hands out the test split alone; ``fashion_mnist`` reads the test split's IDX files only.)
"""

from fedbbpt_jax.data import DATASETS, register_dataset
from fedbbpt_jax.data.registry import TEXT
from fedbbpt_jax.data.fashion_mnist import read_idx_split


class TrainingDataRead(RuntimeError):
  """The server asked for training data it must not hold."""


class TrainSplitGuarded(dict):
  """A dataset mapping whose ``"train"`` entry raises ``TrainingDataRead``."""

  def __getitem__(self, key):
    if key == "train":
      raise TrainingDataRead("the server read the training split: a deployment's server "
                             "holds no training data")
    return super().__getitem__(key)


def without_train_split(load):
  """``load`` with every entry but the training split handed on."""

  def loader(data_cfg):
    full = load(data_cfg)
    return TrainSplitGuarded({k: v for k, v in full.items() if k != "train"})

  return loader


class TextsGuarded:
  """A text dataset whose training texts and labels raise ``TrainingDataRead``."""

  def __init__(self, data):
    self._data = data

  def __getattr__(self, name):
    if name.startswith("train"):
      raise TrainingDataRead(f"the server read the dataset's {name}: a deployment's server "
                             "holds no training data")
    return getattr(self._data, name)


def guard() -> dict:
  """Registers the guarded loaders; returns the ones they replace (to restore them)."""
  replaced = {name: DATASETS.get(name) for name in ("digits", "fashion_mnist", "drug_reviews")}
  register_dataset("digits", without_train_split(replaced["digits"]), overwrite=True)
  register_dataset("fashion_mnist", lambda cfg: TrainSplitGuarded(
      test=read_idx_split(cfg.source_dir, "test")), overwrite=True)
  text = replaced["drug_reviews"]
  register_dataset("drug_reviews", lambda cfg: TextsGuarded(text(cfg)), kind=TEXT,
                   overwrite=True, reads=DATASETS.reads("drug_reviews"))
  return replaced


def unguard(replaced: dict) -> None:
  """Puts the loaders ``guard`` replaced back."""
  for name, loader in replaced.items():
    register_dataset(name, loader, kind=next(iter(DATASETS.tags(name))), overwrite=True,
                     reads=DATASETS.reads(name))
