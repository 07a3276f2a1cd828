"""The instruction track (InstructZero-style), in progress: rule-defined and JSON tasks,
scorers, soft prompt -> instruction on a local causal LM, and instruction scoring by a
black-box LLM. Not yet a registered task family (the federated loop and the BO
baseline come next); import the submodules.
"""
