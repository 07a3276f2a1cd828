"""GLUE family: BDPL discrete prompts for a black-box RoBERTa masked LM (``task.family='glue'``)."""

from fedbbpt_jax.tasks.glue.build import build_glue_task
from fedbbpt_jax.tasks.glue.config_check import check_glue_config, check_glue_paths
from fedbbpt_jax.tasks.glue.masked_lm_classification import MaskedLMClassification
from fedbbpt_jax.tasks.glue.prompt_setup import GlueSetup, glue_vocabulary, whole_word_ids
from fedbbpt_jax.tasks.protocol import register_family

register_family("glue", check_glue_config, build_glue_task)

__all__ = ["GlueSetup", "MaskedLMClassification", "build_glue_task", "check_glue_config",
           "check_glue_paths", "glue_vocabulary", "whole_word_ids"]
