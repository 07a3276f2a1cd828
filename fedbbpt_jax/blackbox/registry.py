"""Every black-box model by name: one registry, ``BLACK_BOXES``, tagged by what it is.

The tag says what a run or a service does with the model, and so what the entry is:

* ``'image'``: ``build(input_size, weights_path=None) -> BlackBox``, a frozen classifier on
  ``[N, S, S, 3]`` pixels in [0, 1] (``blackbox.zoo``; the image family, the provider service);
* ``'text'``: ``SentenceEncoderEntry(load, tokenizer)``, a frozen sentence encoder on token ids
  (``blackbox.text_zoo``; the text family, the provider service);
* ``'llm'``: ``load() -> CausalLM``, a chat LLM (``blackbox.llm_zoo``; the instruction family,
  the chat service).

A config names a model by ``blackbox.model`` (or the instruction family's model paths), and
each family looks it up with its tag: a name registered with another tag is refused with
the names that fit. The provider service serves every ``'image'`` and ``'text'`` entry, the
chat service every ``'llm'`` entry. Users register their own in a module loaded with
``--imports`` (docs/extending.md)::

    BLACK_BOXES.register("my_classifier", build_my_classifier, tags=("image",))
"""

from __future__ import annotations

from typing import Any

from fedbbpt_jax.core import Registry

BLACK_BOXES: Registry[Any] = Registry("black-box model", home="fedbbpt_jax.blackbox.BLACK_BOXES")
