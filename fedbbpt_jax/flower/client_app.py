"""The Flower ``ClientApp`` of a deployment (``fedbbpt_jax.flower.client_app:app``).

``train``: run this node's ``client_update`` for the round in the message (``node.py``);
``query``: answer which partition this node holds (discovery). The heavy imports (JAX,
the task families) happen inside the train handler, so that discovery stays cheap: a
SuperNode starts a fresh ClientApp process for every message.
"""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedbbpt_jax.flower import messages as M

app = ClientApp()


@app.train()
def train(message: Message, context: Context) -> Message:
  from fedbbpt_jax.flower.node import train_reply  # pylint: disable=import-outside-toplevel
  return train_reply(message, context.node_config)


@app.query()
def query(message: Message, context: Context) -> Message:
  """Discovery: which partition this node holds."""
  from fedbbpt_jax.flower.settings import node_settings  # pylint: disable=import-outside-toplevel
  node = node_settings(context.node_config)
  return Message(RecordDict({M.NODE: MetricRecord({M.PARTITION_ID: node.partition_id})}),
                 reply_to=message)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
  """Federated evaluation: the global model on this node's local test split (sums only)."""
  from fedbbpt_jax.flower.node_evaluation import evaluate_reply  # pylint: disable=import-outside-toplevel
  return evaluate_reply(message, context.node_config)
