"""Task families: each wires a dataset, a black box, a prompt generator and a loss together.

``protocol`` defines the ``Task`` protocol, the ``TaskBundle`` a family builds and the
``FAMILIES`` registry; importing this package registers the built-in families
(``image``, ``text``, ``glue``, ``instruction``), each a package of its own.
"""

from fedbbpt_jax.tasks import glue, image, instruction, text
from fedbbpt_jax.tasks.evaluation import Evaluator
from fedbbpt_jax.tasks.image import (LABEL_MAPPINGS, SEMANTIC_FASHION_MNIST, VisualReprogramming,
                                     fixed_mapping, frequency_mapping, prediction_counts)
from fedbbpt_jax.tasks.protocol import (FAMILIES, BuildOptions, Task, TaskBundle, TaskFamily,
                                        TaskRefresh, predictions, register_family,
                                        task_state, with_task_state)
from fedbbpt_jax.tasks.text import (SoftPromptTextClassification, TextClassification,
                                    review_pieces)

__all__ = ["BuildOptions", "Evaluator", "FAMILIES", "LABEL_MAPPINGS", "SEMANTIC_FASHION_MNIST",
           "SoftPromptTextClassification", "Task", "TaskBundle", "TaskFamily", "TaskRefresh",
           "TextClassification", "VisualReprogramming", "fixed_mapping", "frequency_mapping",
           "glue", "image", "instruction", "prediction_counts", "predictions",
           "register_family", "review_pieces", "task_state", "text", "with_task_state"]
