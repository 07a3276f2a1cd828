"""The Flower ``ClientApp`` of a deployment (``fedbbpt_jax.flower.client_app:app``).

``train``: run this node's ``client_update`` for the round in the message (``node.py``),
in the node's long-lived worker process (``worker.py``) unless the node config says
``worker=false``;
``evaluate``: score the global model on this node's local test split
(``node_evaluation.py``), through the same worker;
``query``: answer which partition this node holds and how many training examples it has
(discovery);
``query.setup``: compute a set-up statistic on this node's own data (``node_setup.py``),
through the worker like training. The heavy imports (JAX,
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
  """Training: through the node's long-lived worker (``worker_client.py``), or here."""
  from fedbbpt_jax.flower import worker_client  # pylint: disable=import-outside-toplevel
  return worker_client.train_reply(message, context.node_config)


@app.query()
def query(message: Message, context: Context) -> Message:
  """Discovery: which partition this node holds."""
  from fedbbpt_jax.flower.settings import node_settings  # pylint: disable=import-outside-toplevel
  node = node_settings(context.node_config)
  return Message(RecordDict({M.NODE: MetricRecord({M.PARTITION_ID: node.partition_id})}),
                 reply_to=message)


@app.query("setup")
def setup(message: Message, context: Context) -> Message:
  """A set-up statistic of this node's own data, through the node's worker, or here."""
  from fedbbpt_jax.flower import worker_client  # pylint: disable=import-outside-toplevel
  return worker_client.setup_reply(message, context.node_config)


@app.evaluate()
def evaluate(message: Message, context: Context) -> Message:
  """Federated evaluation: the global model on this node's local test split (sums only),
  through the node's worker like training, or here."""
  from fedbbpt_jax.flower import worker_client  # pylint: disable=import-outside-toplevel
  return worker_client.evaluate_reply(message, context.node_config)
