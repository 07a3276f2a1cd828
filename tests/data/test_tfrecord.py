"""TFRecord files read by index without TensorFlow."""

import pytest

from fedbbpt_jax.data.tfrecord import TfRecordFiles
from tests.helpers.tiny_image_sets import masked_crc32c, write_tfrecord


def test_the_test_writer_frames_records_with_tensorflows_crc():
  # CRC-32C check value of "123456789" is 0xE3069283; masked: rotate right 15, add constant.
  crc = 0xE3069283
  assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_records_of_several_files_by_global_index_in_any_order(tmp_path):
  write_tfrecord(tmp_path / "a", [b"zero", b"", b"two" * 100])
  write_tfrecord(tmp_path / "b", [b"three", b"four"])
  records = TfRecordFiles([tmp_path / "a", tmp_path / "b"])
  assert len(records) == 5
  assert records.get([4, 0, 2, 1, 3, 0]) == [b"four", b"zero", b"two" * 100, b"", b"three",
                                             b"zero"]
  assert records.get([]) == []


def test_a_truncated_file_is_named(tmp_path):
  write_tfrecord(tmp_path / "a", [b"zero", b"one"])
  data = (tmp_path / "a").read_bytes()
  (tmp_path / "a").write_bytes(data[:-3])  # records of 12 + 4 + 4 and 12 + 3 + 4 bytes, 3 cut
  with pytest.raises(ValueError, match=rf"^{tmp_path}/a: record at byte 20 claims 3 bytes, past "
                                       r"the end of the file \(36 bytes\)$"):
    TfRecordFiles([tmp_path / "a"])
  (tmp_path / "a").write_bytes(data[:25])
  with pytest.raises(ValueError, match=rf"{tmp_path}/a: truncated record header at byte 20"):
    TfRecordFiles([tmp_path / "a"])
