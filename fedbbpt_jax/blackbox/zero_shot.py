"""A zero-shot head: the classes a vision-language black box answers over, and their prompts.

A zero-shot classifier (CLIP) has no class list of its own: its provider embeds one text
per class and answers ``exp(logit_scale) * cosine(image feature, class text feature)``.
What a head is made of is written down here, once, for both sides of the API:

* ``class_names``: one name per label, in label order (the dataset's ``class_names``);
  an underscore becomes a space in the prompt, as CoOp's and BlackVIP's trainers do
  (``'american_bulldog'`` -> ``'american bulldog'``).
* ``templates``: prompts with one ``{}`` where the class name goes. Several templates
  are an ensemble: each class's text features are L2-normalised per template, averaged
  over the templates and normalised again (CLIP's prompt ensembling, as CoOp's
  ``ZeroshotCLIP2`` does).

``templates_from_spec`` reads the one-string form a config (``blackbox.templates``) and the
service (``--templates``) share:

* ``'blackvip:<set>'``: BlackVIP's template of a CoOp benchmark (``BLACKVIP_TEMPLATES``,
  BlackVIP's ``trainers/zsclip.py`` ``CUSTOM_TEMPLATES``), e.g. ``'blackvip:dtd'`` ->
  ``('{} texture.',)``;
* ``'ensemble:<set>'``: CoOp's seven-template ensemble (``ENSEMBLE_TEMPLATES``, the
  ImageNet templates CLIP's authors selected; CoOp's ``IMAGENET_TEMPLATES_SELECT``) plus
  the set's BlackVIP template, as CoOp's ``ZeroshotCLIP2`` adds the dataset's own
  template (ImageNet's is ``'a photo of a {}.'``, not added a second time);
* anything else: the templates themselves, separated by ``'|'``, e.g.
  ``'a photo of a {}.|a sketch of a {}.'``.

The provider deploys a zero-shot model for one head (``python -m fedbbpt_jax.serve
--model=clip --class_names=FILE --templates=SPEC``) and reports it in ``/v1/info``
(``zero_shot``: ``describe()``); a run checks that the served head is the one its dataset
and config ask for before sending a query (``blackbox/factory.py``).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Final, Sequence

ZERO_SHOT: Final[str] = "zero_shot"  # BLACK_BOXES tag: an image black box built for a head
GENERIC_TEMPLATE: Final[str] = "a photo of a {}."

# BlackVIP's per-dataset template (trainers/zsclip.py CUSTOM_TEMPLATES), by CoOp benchmark.
BLACKVIP_TEMPLATES: Final[dict[str, str]] = {
    "caltech101": GENERIC_TEMPLATE,
    "oxford_pets": "a photo of a {}, a type of pet.",
    "stanford_cars": GENERIC_TEMPLATE,
    "oxford_flowers": "a photo of a {}, a type of flower.",
    "food101": "a photo of {}, a type of food.",
    "fgvc_aircraft": "a photo of a {}, a type of aircraft.",
    "sun397": GENERIC_TEMPLATE,
    "dtd": "{} texture.",
    "svhn": "This is a photo of a {}",
    "eurosat": "a centered satellite photo of {}.",
    "resisc45": "This is a photo of a {}",
    "clevr": "This is a photo of {} objects",
    "ucf101": "a photo of a person doing {}.",
    "imagenet": GENERIC_TEMPLATE,
}
# CoOp's IMAGENET_TEMPLATES_SELECT: the seven of CLIP's 80 ImageNet templates its authors
# found best as a small ensemble.
ENSEMBLE_TEMPLATES: Final[tuple[str, ...]] = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)
SPEC_KINDS: Final[tuple[str, ...]] = ("blackvip", "ensemble")
SEPARATOR: Final[str] = "|"


def check_template(template: str) -> str:
  """``template`` if it holds exactly one ``{}`` and no other brace, else ValueError."""
  if not isinstance(template, str) or template.count("{}") != 1 or \
      template.replace("{}", "").count("{") + template.replace("{}", "").count("}"):
    raise ValueError(f"template {template!r} must hold exactly one '{{}}' (where the class "
                     "name goes) and no other brace")
  return template


def templates_from_spec(spec: str) -> tuple[str, ...]:
  """The templates a spec names (module docstring: ``'blackvip:<set>'``,
  ``'ensemble:<set>'``, or templates separated by ``'|'``).

  Raises:
    ValueError: an unknown set, an empty spec or a template without exactly one ``{}``.
  """
  if not isinstance(spec, str) or not spec:
    raise ValueError(f"templates {spec!r}: give 'blackvip:<set>', 'ensemble:<set>' or "
                     "templates separated by '|', each with one '{}'")
  kind, _, name = spec.partition(":")
  if kind in SPEC_KINDS and "{" not in spec:
    if name not in BLACKVIP_TEMPLATES:
      raise ValueError(f"templates {spec!r}: {name!r} is not a set with a BlackVIP template; "
                       f"sets: {sorted(BLACKVIP_TEMPLATES)} (or give the templates themselves, "
                       "separated by '|')")
    own = BLACKVIP_TEMPLATES[name]
    if kind == "blackvip":
      return (own,)
    return ENSEMBLE_TEMPLATES + (() if name == "imagenet" else (own,))
  return tuple(check_template(t) for t in spec.split(SEPARATOR))


def class_prompt(template: str, class_name: str) -> str:
  """The text of one class under one template (``'_'`` read as a space)."""
  return template.format(class_name.replace("_", " "))


@dataclasses.dataclass(frozen=True)
class ZeroShotHead:
  """The classes a zero-shot black box answers over, in label order, and their templates.

  Attributes:
    class_names: one non-empty name per label.
    templates: one or more templates (an ensemble), each with one ``{}``.
  """

  class_names: tuple[str, ...]
  templates: tuple[str, ...]

  def __post_init__(self):
    names, templates = tuple(self.class_names), tuple(self.templates)
    object.__setattr__(self, "class_names", names)
    object.__setattr__(self, "templates", templates)
    if len(names) < 2 or not all(isinstance(n, str) and n.strip() for n in names):
      raise ValueError(f"a zero-shot head needs at least 2 non-empty class names, got "
                       f"{list(names)[:5]}{' ...' if len(names) > 5 else ''}")
    if len(set(names)) != len(names):
      twice = sorted({n for n in names if names.count(n) > 1})
      raise ValueError(f"a zero-shot head's class names must be distinct; repeated: {twice}")
    if not templates:
      raise ValueError("a zero-shot head needs at least one template")
    for t in templates:
      check_template(t)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  def prompts(self) -> list[list[str]]:
    """``[template][class]`` texts to embed."""
    return [[class_prompt(t, c) for c in self.class_names] for t in self.templates]

  def describe(self) -> dict[str, Any]:
    """The head as JSON (``/v1/info``'s ``zero_shot``)."""
    return {"class_names": list(self.class_names), "templates": list(self.templates)}


def read_class_names(path: str) -> tuple[str, ...]:
  """Class names from a UTF-8 text file, one per line in label order (a final newline
  allowed; blank lines are refused, since a label would lose its place).

  Raises:
    FileNotFoundError: no such file.
    ValueError: a blank line, naming the file and the line number.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such class-name file (one class name per line, in "
                            "label order)")
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  if lines and lines[-1] == "":
    lines = lines[:-1]
  for number, line in enumerate(lines, start=1):
    if not line.strip():
      raise ValueError(f"{path}:{number}: blank line; the file holds one class name per "
                       "line, in label order")
  return tuple(line.rstrip("\r") for line in lines)


def write_class_names(path: str, class_names: Sequence[str]) -> None:
  """Writes ``class_names`` one per line (``read_class_names`` reads them back)."""
  if any("\n" in c or "\r" in c for c in class_names):
    raise ValueError("a class name holds a line break; it cannot be written one per line")
  with open(path, "w", encoding="utf-8") as f:
    f.write("".join(f"{c}\n" for c in class_names))
