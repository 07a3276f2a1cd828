"""Text family (``task.family='text'``): a discrete or soft prompt for a black-box encoder."""

from fedbbpt_jax.tasks.protocol import ROLES, register_family
from fedbbpt_jax.tasks.text.build import build_text_task, verbalizer_texts
from fedbbpt_jax.tasks.text.config_check import check_text_config
from fedbbpt_jax.tasks.text.prompt_kinds import class_embeddings, nearest_tokens
from fedbbpt_jax.tasks.text.soft_prompt_text import SoftPromptTextClassification
from fedbbpt_jax.tasks.text.text_classification import TextClassification, review_pieces

register_family("text", check_text_config, build_text_task, roles=ROLES)

__all__ = ["SoftPromptTextClassification", "TextClassification",
           "build_text_task", "check_text_config", "class_embeddings", "nearest_tokens",
           "review_pieces", "verbalizer_texts"]
