"""scikit-learn's bundled 8x8 digits, shaped like the Fashion-MNIST loader.

The digits set (1797 images, 10 classes) ships inside scikit-learn, so it is
available offline and small enough for fast end-to-end tests.
"""

from __future__ import annotations

import numpy as np

# Pixel values in the bundled set range over 0..16.
_MAX_PIXEL = 16


def load_digits_dataset(
    test_fraction: float = 0.25,
    seed: int = 0,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Loads the 8x8 digits with a deterministic stratified train/test split.

  Args:
    test_fraction: Fraction of the examples put in the test split, in
      ``(0, 1)``.
    seed: Seed of the split; the same seed gives the same split.

  Returns:
    ``{'train': (images, labels), 'test': (images, labels)}`` with images
    uint8 ``[n, 8, 8]`` rescaled from 0..16 to 0..255 and labels int32
    ``[n]``.

  Raises:
    ValueError: If ``test_fraction`` is not strictly between 0 and 1.
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(
        f"test_fraction must be in (0, 1), got {test_fraction}."
    )
  # Imported here: scikit-learn takes seconds to import and only this
  # function needs it.
  # pylint: disable=g-import-not-at-top
  from sklearn.datasets import load_digits
  from sklearn.model_selection import train_test_split
  # pylint: enable=g-import-not-at-top

  digits = load_digits()
  images = np.rint(digits.images * (255.0 / _MAX_PIXEL)).astype(np.uint8)
  labels = digits.target.astype(np.int32)
  x_train, x_test, y_train, y_test = train_test_split(
      images,
      labels,
      test_size=test_fraction,
      random_state=seed,
      stratify=labels,
  )
  return {"train": (x_train, y_train), "test": (x_test, y_test)}
