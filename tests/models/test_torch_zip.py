"""The zip-format torch reader: a file ``torch.save`` wrote (``tests/data/torch_zip``, by
``scripts/golden/make_clip_golden.py``) gives back its tensors' values, views resolved;
other files are refused with the cause named, and unpickling runs no foreign code."""

import os
import zipfile

import numpy as np
import pytest

from fedbbpt_jax.models.torch_zip import load_torch_state_dict, load_torch_zip_state_dict
from tests.helpers.golden_compare import DATA


def test_torch_zip_reader_materialises_views_and_dtypes():
  folder = os.path.join(DATA, "torch_zip")
  state = load_torch_zip_state_dict(os.path.join(folder, "views.pt"))
  expected = np.load(os.path.join(folder, "expected.npz"))
  assert list(state) == ["transposed", "offset", "shared", "half", "long", "double"]
  for name, array in state.items():
    assert array.dtype == expected[name].dtype and array.flags.c_contiguous, name
    np.testing.assert_array_equal(array, expected[name])
  np.testing.assert_array_equal(load_torch_state_dict(os.path.join(folder, "views.pt"))["long"],
                                [-2, -1, 0, 1])


def test_torch_zip_reader_refuses_other_files(tmp_path):
  other = tmp_path / "model.safetensors"
  other.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}" + b" " * 14)
  with pytest.raises(ValueError, match="model.safetensors: not a zip-format torch file"):
    load_torch_zip_state_dict(str(other))
  with pytest.raises(ValueError, match="model.safetensors: cannot read the magic number"):
    load_torch_state_dict(str(other))   # not a zip: read as a legacy file
  bad = tmp_path / "bad.bin"
  with zipfile.ZipFile(bad, "w") as z:
    z.writestr("archive/data.pkl", b"\x80\x02cos\nsystem\nq\x00.")
  with pytest.raises(ValueError, match=r"bad.bin: cannot read archive/data.pkl .*unsupported "
                                       r"global os.system"):
    load_torch_zip_state_dict(str(bad))
