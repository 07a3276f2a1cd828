"""The models the service can serve: every black box registered for the runs.

The service has no registry of its own: a model registered in
``blackbox.BLACK_BOXES`` with the tag ``'image'`` (a classifier) or ``'text'`` (a sentence
encoder) is servable by its name, built by the very function that builds the local surrogate
(``make_image_classifier`` / ``make_text_encoder``), so remote and local outputs agree.
Image classifiers take float pixels in ``[0, 1]`` (or ``uint8`` levels on the wire) and
answer logits; sentence encoders take ``int32`` token ids ``(max_length,)`` and answer
unit-norm embeddings (output kind ``'embedding'``). A user's model is served by
registering it once, in a module the service imports:
``python -m fedbbpt_jax.serve --imports=my_models --model=my_cnn``. (Chat LLMs are served
by ``serve.chat``, from the same model names and files the instruction family loads.)

A zero-shot classifier (``'clip'``: tags ``'image'`` and ``'zero_shot'``) is deployed for
one head, as a provider deploys a classifier for a customer's label set: the service is
started with the class names (``--class_names=FILE``, one per line in label order) and the
templates (``--templates=SPEC``, ``blackbox.zero_shot.templates_from_spec``), embeds them
once at start-up, and reports them in ``/v1/info`` (``zero_shot``), where a run checks
them against its own dataset and config before its first query. Its logits are over those
classes (``output_size`` = the number of class names).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax.numpy as jnp

from fedbbpt_jax.blackbox.registry import BLACK_BOXES
from fedbbpt_jax.blackbox.text_zoo import make_text_encoder
from fedbbpt_jax.blackbox.zero_shot import ZeroShotHead, read_class_names, templates_from_spec
from fedbbpt_jax.blackbox.zoo import is_zero_shot, make_image_classifier


@dataclasses.dataclass(frozen=True)
class ModelOptions:
  """Command-line options a builder may read (each model uses the ones it needs).

  Attributes:
    input_size: side of square image inputs.
    max_length: padded token ids per row of a text model.
    weights_path: an image model's weights ('' = the model's default).
    class_names: a zero-shot model's class-name file (one name per line, label order).
    templates: a zero-shot model's templates (``templates_from_spec``).
  """

  input_size: int = 64
  max_length: int = 64
  weights_path: str = ""
  class_names: str = ""
  templates: str = ""


@dataclasses.dataclass(frozen=True)
class ServedModel:
  """A frozen model as the service exposes it.

  Attributes:
    name: registry name, reported by ``/v1/info``.
    input_shape: one input without the batch axis.
    input_dtype: dtype the model computes on (``'float32'``).
    wire_dtypes: dtypes accepted on the wire (``'uint8'`` = pixel levels / 255).
    output_kind: ``'logits'`` or ``'embedding'``.
    output_size: size of one output vector.
    forward: jittable ``[N, *input_shape] -> [N, output_size]``.
    id_range: for token-id inputs, ``(low, high)``: every id must be in ``[low, high)``
      (a 400 otherwise); None for pixel inputs.
    pixel_range: for float pixel inputs, ``(low, high)``: every value must be in
      ``[low, high]`` (a 400 otherwise, never clipped); None = any finite value.
    zero_shot: a zero-shot model's head (``ZeroShotHead.describe()``: class names and
      templates), reported by ``/v1/info``; None for the others.
  """

  name: str
  input_shape: tuple[int, ...]
  input_dtype: str
  wire_dtypes: tuple[str, ...]
  output_kind: str
  output_size: int
  forward: Callable[[jnp.ndarray], jnp.ndarray]
  id_range: tuple[int, int] | None = None
  pixel_range: tuple[float, float] | None = None
  zero_shot: dict | None = None


def servable_models() -> tuple[str, ...]:
  """Every name the service can serve: the black boxes registered for the runs
  (``BLACK_BOXES`` entries tagged ``'image'`` or ``'text'``)."""
  return tuple(sorted(set(BLACK_BOXES.names("image")) | set(BLACK_BOXES.names("text"))))


def build_served_model(name: str, options: ModelOptions = ModelOptions()) -> ServedModel:
  """Builds a servable model (``servable_models``): the image classifier or sentence
  encoder of that name the runs use.

  Raises:
    ValueError: ``name`` is not servable (lists the known names).
  """
  if name in BLACK_BOXES.names("image"):
    return served_image_classifier(name, options)
  if name in BLACK_BOXES.names("text"):
    return served_text_encoder(name, options)
  raise ValueError(f"unknown model {name!r}; the service knows {list(servable_models())}")


def served_image_classifier(model: str, options: ModelOptions) -> ServedModel:
  """Serves an image classifier: float pixels in ``[0, 1]`` -> logits.

  Args:
    model: a name registered in ``BLACK_BOXES`` with the tag ``'image'``.
    options: the service's options (``input_size``, ``weights_path``; a zero-shot model's
      ``class_names`` and ``templates``); pixels travel as ``float32`` or as ``uint8``
      levels.

  Raises:
    ValueError: a zero-shot model without class names or templates, or head options for
      a model with its own classes.
  """
  head = None
  if is_zero_shot(model):
    if not options.class_names or not options.templates:
      raise ValueError(f"--model={model} answers over a zero-shot head: give --class_names=FILE "
                       "(one class name per line, in label order) and --templates=SPEC "
                       "('blackvip:<set>', 'ensemble:<set>' or templates separated by '|')")
    head = ZeroShotHead(read_class_names(options.class_names),
                        templates_from_spec(options.templates))
  elif options.class_names or options.templates:
    raise ValueError(f"--class_names and --templates are for zero-shot models; --model={model} "
                     "has its own classes")
  blackbox = make_image_classifier(model, options.input_size, options.weights_path or None,
                                   head=head)
  return ServedModel(name=blackbox.name, input_shape=blackbox.input_shape, input_dtype="float32",
                     wire_dtypes=("float32", "uint8"), output_kind="logits",
                     output_size=blackbox.output_size, forward=blackbox,
                     pixel_range=(0.0, 1.0),
                     zero_shot=head.describe() if head is not None else None)


def served_text_encoder(model: str, options: ModelOptions) -> ServedModel:
  """Serves a sentence encoder: ``int32`` token ids -> unit-norm embeddings.

  Args:
    model: a name registered in ``BLACK_BOXES`` with the tag ``'text'``.
    options: the service's options (``max_length`` ids per row, each in the vocabulary).
  """
  blackbox = make_text_encoder(model, options.max_length)
  return ServedModel(name=blackbox.name, input_shape=blackbox.input_shape, input_dtype="int32",
                     wire_dtypes=("int32",), output_kind="embedding",
                     output_size=blackbox.output_size, forward=blackbox,
                     id_range=(0, blackbox.vocab_size))
