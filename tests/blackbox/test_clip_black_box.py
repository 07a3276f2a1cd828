"""CLIP as a zero-shot black box (``'clip'``): outputs, head, templates, weights, refusals.

The tiny CLIP of the golden checks (``tests/data/clip_tiny``, 32 px) with the golden texts
as its "class names" and the template ``'{}'`` answers ``transformers``' own
``logits_per_image`` (``scripts/golden/make_clip_golden.py``), from pixels in [0, 1] that
CLIP's normalisation maps to the golden inputs. Template ensembles are checked against an
independent mean of normalised text features; the template specs against BlackVIP's and
CoOp's lists.
"""

import os
import shutil

import jax
import numpy as np
import pytest

from fedbbpt_jax.blackbox.clip_zoo import head_text_features, load_clip_weights
from fedbbpt_jax.blackbox.zero_shot import (BLACKVIP_TEMPLATES, ENSEMBLE_TEMPLATES, ZeroShotHead,
                                            read_class_names, templates_from_spec,
                                            write_class_names)
from fedbbpt_jax.blackbox.zoo import make_image_classifier
from fedbbpt_jax.models import clip
from fedbbpt_jax.serve.models import ModelOptions, build_served_model
from tests.helpers.golden_compare import ATOL, DATA, max_error
from tests.helpers.tiny_clip import TINY_224, tiny_clip_224_tensors

TINY = os.path.join(DATA, "clip_tiny")
OPEN_CLIP = os.path.join(DATA, "clip_tiny_open_clip")


@pytest.fixture(scope="module")
def golden():
  return dict(np.load(os.path.join(TINY, "golden.npz")))


def test_clip_black_box_answers_transformers_logits_per_image(golden):
  texts = tuple(str(t) for t in golden["texts"][:4])   # no '_' in them: prompts as they are
  bb = make_image_classifier("clip", 32, TINY, head=ZeroShotHead(texts, ("{}",)))
  assert (bb.name, bb.input_shape, bb.output_size) == ("clip", (32, 32, 3), 4)
  pixels = golden["pixels"] * np.asarray(clip.CLIP_STD) + np.asarray(clip.CLIP_MEAN)
  with jax.default_matmul_precision("highest"):
    logits = np.asarray(jax.jit(bb)(pixels.astype(np.float32)))
  assert max_error(logits, golden["logits_per_image"][:, :4]) < ATOL
  # only the vision tower, its projection, the logit scale and the head's features are kept
  assert sorted(bb._variables["params"]) == ["logit_scale", "vision", "visual_projection"]
  assert bb._variables["text"].shape == (4, 16)


def test_clip_template_ensemble_is_the_renormalised_mean_of_normalised_features():
  config, params, tokenizer = load_clip_weights(TINY)
  names = ("tabby_cat", "golden retriever", "red fox")
  templates = ("a photo of a {}.", "art of the {}.", "{} texture.")
  features = head_text_features(params, config, tokenizer, ZeroShotHead(names, templates))
  embed = jax.jit(clip.text_embeds, static_argnums=1)
  per_template = []
  for t in templates:
    ids, mask = tokenizer([t.format(n.replace("_", " ")) for n in names])
    f = np.asarray(embed(params, config, ids, mask), np.float64)
    per_template.append(f / np.linalg.norm(f, axis=1, keepdims=True))
  mean = np.mean(per_template, axis=0)
  np.testing.assert_allclose(features, mean / np.linalg.norm(mean, axis=1, keepdims=True),
                             atol=1e-6)
  assert ZeroShotHead(names, templates).prompts()[0][0] == "a photo of a tabby cat."


def test_clip_template_specs_are_blackvips_and_coops_lists():
  assert templates_from_spec("blackvip:oxford_pets") == ("a photo of a {}, a type of pet.",)
  assert templates_from_spec("blackvip:dtd") == ("{} texture.",)
  assert templates_from_spec("blackvip:clevr") == ("This is a photo of {} objects",)
  assert templates_from_spec("blackvip:caltech101") == ("a photo of a {}.",)
  assert len(BLACKVIP_TEMPLATES) == 14
  assert templates_from_spec("ensemble:eurosat") == ENSEMBLE_TEMPLATES + (
      "a centered satellite photo of {}.",)
  assert templates_from_spec("ensemble:imagenet") == ENSEMBLE_TEMPLATES
  assert len(ENSEMBLE_TEMPLATES) == 7 and ENSEMBLE_TEMPLATES[0] == "itap of a {}."
  assert templates_from_spec("a {}.|a sketch of a {}.") == ("a {}.", "a sketch of a {}.")
  with pytest.raises(ValueError, match=r"templates 'blackvip:pets': 'pets' is not a set with a "
                                       r"BlackVIP template; sets: \['caltech101'"):
    templates_from_spec("blackvip:pets")
  with pytest.raises(ValueError, match=r"template 'a photo' must hold exactly one '\{\}'"):
    templates_from_spec("a photo")
  with pytest.raises(ValueError, match=r"template 'a \{\} or \{\}' must hold exactly one"):
    templates_from_spec("a {} or {}")


def test_clip_head_refuses_what_has_no_class_order(tmp_path):
  with pytest.raises(ValueError, match=r"distinct; repeated: \['cat'\]"):
    ZeroShotHead(("cat", "dog", "cat"), ("{}",))
  with pytest.raises(ValueError, match="at least 2 non-empty class names"):
    ZeroShotHead(("cat",), ("{}",))
  path = str(tmp_path / "names.txt")
  write_class_names(path, ("abyssinian", "american_bulldog", "café crème"))
  assert read_class_names(path) == ("abyssinian", "american_bulldog", "café crème")
  (tmp_path / "gap.txt").write_text("cat\n\ndog\n")
  with pytest.raises(ValueError, match=r"gap.txt:2: blank line"):
    read_class_names(str(tmp_path / "gap.txt"))


def test_clip_black_box_refuses_a_wrong_size_missing_weights_or_head():
  head = ZeroShotHead(("cat", "dog"), ("a photo of a {}.",))
  with pytest.raises(ValueError, match=r"config.blackbox.input_size=224: the CLIP in .*clip_tiny "
                                       r"takes 32x32 pixels .* config.blackbox.input_size=32"):
    make_image_classifier("clip", 224, TINY, head=head)
  with pytest.raises(ValueError, match=r"needs its weights: set config.blackbox.weights_path"):
    make_image_classifier("clip", 224, None, head=head)
  with pytest.raises(ValueError, match=r"answers over a zero-shot head"):
    make_image_classifier("clip", 32, TINY)
  with pytest.raises(FileNotFoundError, match=r"/nonexistent/clip: no such file or folder"):
    make_image_classifier("clip", 224, "/nonexistent/clip", head=head)
  with pytest.raises(ValueError, match=r"image model 'efficientnet_lite0' has its own classes"):
    make_image_classifier("efficientnet_lite0", 32, head=head)


def test_clip_from_open_clip_weights_needs_a_tokenizer_beside_them(tmp_path, golden):
  head = ZeroShotHead(tuple(str(t) for t in golden["texts"][:2]), ("{}",))
  shutil.copytree(OPEN_CLIP, tmp_path / "oc")
  with pytest.raises(FileNotFoundError, match=r"open_clip weights carry no tokenizer; put "
                                              r"CLIP's tokenizer.json"):
    make_image_classifier("clip", 32, str(tmp_path / "oc"), head=head)
  shutil.copy(os.path.join(TINY, "tokenizer.json"), tmp_path / "oc")
  from_open_clip = make_image_classifier("clip", 32, str(tmp_path / "oc"), head=head)
  from_hf = make_image_classifier("clip", 32, TINY, head=head)
  x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
  np.testing.assert_allclose(jax.jit(from_open_clip)(x), jax.jit(from_hf)(x), atol=1e-5)


def test_clip_service_builder_needs_the_head_only_clip_takes(tmp_path):
  with pytest.raises(ValueError, match=r"--model=clip answers over a zero-shot head: give "
                                       r"--class_names=FILE"):
    build_served_model("clip", ModelOptions(input_size=224, weights_path=TINY_224))
  with pytest.raises(ValueError, match=r"--class_names and --templates are for zero-shot models; "
                                       r"--model=efficientnet_lite0 has its own classes"):
    build_served_model("efficientnet_lite0", ModelOptions(templates="blackvip:dtd"))


def test_clip_tiny_224_folder_is_what_its_generator_writes():
  stored = load_clip_weights(TINY_224)
  assert (stored[0].vision.image_size, stored[0].vision.patch_size) == (224, 16)
  from fedbbpt_jax.models.checkpoint_files import read_weights_file  # pylint: disable=import-outside-toplevel
  on_disk = read_weights_file(os.path.join(TINY_224, "model.safetensors"))
  fresh = tiny_clip_224_tensors()
  assert sorted(on_disk) == sorted(fresh)
  assert all(np.array_equal(on_disk[k], fresh[k]) for k in fresh)
