"""Image family: visual reprogramming of a frozen image classifier (``task.family='image'``)."""

from fedbbpt_jax.tasks.image.build import LABEL_MAP_FILE, build_image_task
from fedbbpt_jax.tasks.image.config_check import check_image_config
from fedbbpt_jax.tasks.image.label_mapping import (SEMANTIC_FASHION_MNIST, fixed_mapping,
                                                   frequency_mapping, prediction_counts)
from fedbbpt_jax.tasks.image.mappings import LABEL_MAPPINGS
from fedbbpt_jax.tasks.image.visual_reprogramming import VisualReprogramming
from fedbbpt_jax.tasks.protocol import ROLES, register_family

register_family("image", check_image_config, build_image_task, roles=ROLES)

__all__ = ["LABEL_MAPPINGS", "LABEL_MAP_FILE", "SEMANTIC_FASHION_MNIST", "VisualReprogramming",
           "build_image_task", "check_image_config", "fixed_mapping", "frequency_mapping",
           "prediction_counts"]
