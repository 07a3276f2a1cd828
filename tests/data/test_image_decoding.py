"""CLIP's evaluation preprocessing: sizes and crop offsets worked out by hand, pixels from PIL."""

import io

import numpy as np
import pytest
from PIL import Image

from fedbbpt_jax.data.image_decoding import (ImageDecodeError, clip_resize_crop, decode_image,
                                             decode_rows, to_unit_float)
from tests.helpers.tiny_image_sets import image_bytes


def test_landscape_png_resized_bicubic_on_the_short_side_then_centre_cropped():
  data, pixels = image_bytes(np.random.default_rng(0), width=300, height=200)
  # Shorter side 200 -> 224, longer int(224 * 300 / 200) = 336; crop left round(112 / 2) = 56.
  expected = np.asarray(Image.fromarray(pixels).resize((336, 224), Image.Resampling.BICUBIC))
  out = decode_image(data, 224)
  assert out.dtype == np.uint8 and out.shape == (224, 224, 3)
  np.testing.assert_array_equal(out, expected[:, 56:280])


def test_portrait_jpeg_matches_pil_decoding_and_int_truncation_of_the_long_side():
  data, _ = image_bytes(np.random.default_rng(1), width=30, height=47, fmt="JPEG")
  decoded = np.asarray(Image.open(io.BytesIO(data)))  # PIL's own JPEG decoding
  # 30 -> 16, 47 -> int(16 * 47 / 30) = int(25.07) = 25; top round(9 / 2) = round(4.5) = 4.
  expected = np.asarray(Image.fromarray(decoded).resize((16, 25), Image.Resampling.BICUBIC))
  np.testing.assert_array_equal(decode_image(data, 16), expected[4:20])


def test_no_resize_when_the_short_side_fits_and_ties_in_the_crop_round_to_even():
  rng = np.random.default_rng(2)
  pixels = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
  # (9 - 8) / 2 = 0.5 rounds to 0 (torchvision's int(round(.))): columns 0..7.
  np.testing.assert_array_equal(clip_resize_crop(Image.fromarray(pixels), 8), pixels[:, :8])
  pixels = rng.integers(0, 256, (11, 8, 3), dtype=np.uint8)
  # (11 - 8) / 2 = 1.5 rounds to 2: rows 2..9.
  np.testing.assert_array_equal(clip_resize_crop(Image.fromarray(pixels), 8), pixels[2:10])


def test_grayscale_becomes_three_equal_channels_and_unit_floats_divide_by_255():
  data, pixels = image_bytes(np.random.default_rng(3), width=12, height=12, mode="L")
  out = decode_image(data, 12)
  np.testing.assert_array_equal(out, np.repeat(pixels[..., None], 3, axis=-1))
  unit = to_unit_float(out)
  assert unit.dtype == np.float32
  np.testing.assert_allclose(unit, out / 255.0, rtol=1e-7)
  assert unit.max() <= 1.0 and unit.min() >= 0.0


def test_undecodable_bytes_name_the_image():
  with pytest.raises(ImageDecodeError, match=r"^/data/x\.jpg: cannot decode the image"):
    decode_image(b"not an image", 8, "/data/x.jpg")


def test_decode_rows_keeps_the_rows_order_across_chunks_and_threads():
  rng = np.random.default_rng(4)
  encoded = [image_bytes(rng, 10 + i, 10)[0] for i in range(7)]
  fetched = []

  def fetch(rows):
    fetched.append(list(rows))
    return [encoded[r] for r in rows]

  out = decode_rows(fetch, [6, 0, 3, 5, 1], 10, chunk_size=2, workers=3)
  assert fetched == [[6, 0], [3, 5], [1]]
  for i, r in enumerate([6, 0, 3, 5, 1]):
    np.testing.assert_array_equal(out[i], decode_image(encoded[r], 10))
  with pytest.raises(ImageDecodeError, match="row 1 of a split"):
    decode_rows(lambda rows: [b"junk"] * len(rows), [1], 10,
                describe=lambda r: f"row {r} of a split")
