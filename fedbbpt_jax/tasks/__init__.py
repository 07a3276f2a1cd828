"""Tasks wire a dataset's inputs, a black box, a prompt generator and a loss together."""

from fedbbpt_jax.tasks.label_mapping import (MAPPINGS, SEMANTIC_FASHION_MNIST, fixed_mapping,
                                             frequency_mapping, prediction_counts)
from fedbbpt_jax.tasks.soft_prompt_text import SoftPromptTextClassification
from fedbbpt_jax.tasks.text_classification import TextClassification, review_pieces
from fedbbpt_jax.tasks.visual_reprogramming import VisualReprogramming

__all__ = ["MAPPINGS", "SEMANTIC_FASHION_MNIST", "SoftPromptTextClassification",
           "TextClassification", "VisualReprogramming",
           "fixed_mapping", "frequency_mapping", "prediction_counts", "review_pieces"]
