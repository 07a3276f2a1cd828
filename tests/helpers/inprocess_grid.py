"""A Flower ``Grid`` that delivers messages to the real ``ClientApp`` in this process.

The server's whole loop (``server_app.run_deployment``) runs against it unchanged: node
ids, discovery queries, training messages and replies are real Flower objects; only
the transport is a function call (``push_messages`` delivers at once,
``pull_messages`` hands out the replies, ``send_and_receive`` does both). ``down``
holds partitions whose node is connected but never answers (a dead node before its
heartbeat expires); ``node_configs`` adds entries to a partition's node config. A
ClientApp that raises answers an error reply, built as Flower's SuperNode runtime
builds it (``client_reply``).
"""

from flwr.app import Context, Error, Message, RecordDict
from flwr.common.constant import ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from fedbbpt_jax.flower.client_app import app as client_app


def client_reply(message, context):
  """The real ClientApp's reply to ``message``; if it raises, the error reply a SuperNode
  sends instead (flwr 1.42, ``flwr/supernode/runtime/run_clientapp.py``: code
  ``CLIENT_APP_RAISED_EXCEPTION``, reason ``"<class '...'>:<'message'>"``)."""
  try:
    return client_app(message, context)
  except Exception as ex:  # pylint: disable=broad-except
    reason = str(type(ex)) + ":<'" + str(ex) + "'>"
    return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason),
                   reply_to=message)


class InProcessGrid(Grid):

  def __init__(self, workdir, partitions, down=(), node_configs=None):
    self.nodes = {1000 + p: p for p in partitions}  # node id -> partition id
    self.workdir, self.down = workdir, set(down)
    self.node_configs = dict(node_configs or {})
    self.sent = []  # (message type, partition) of every message delivered
    self.replies = {}  # message id -> reply not yet pulled
    self.pulled = []  # the message ids each pull_messages call asked for
    self.waits = []  # (message type, timeout) of each send_and_receive

  def set_run(self, run):
    self._run = run

  @property
  def run(self):
    return self._run

  def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
    return Message(content, dst_node_id=dst_node_id, message_type=message_type,
                   group_id=group_id, ttl=ttl)

  def get_node_ids(self):
    return list(self.nodes)

  def push_messages(self, messages):
    """Delivers every message at once; the replies wait for ``pull_messages``."""
    ids = []
    for message in messages:
      message.metadata.__dict__["_message_id"] = message.object_id  # as Grid.push_messages
      ids.append(message.metadata.message_id)
      node = message.metadata.dst_node_id
      pid = self.nodes[node]
      self.sent.append((message.metadata.message_type, pid))
      if pid in self.down:
        continue
      context = Context(run_id=TaskIdentity.run_id, node_id=node,
                        node_config={"partition-id": pid,
                                     "workdir": f"{self.workdir}/node{pid}",
                                     **self.node_configs.get(pid, {})},
                        state=RecordDict(), run_config={})
      reply = client_reply(message, context)
      reply.metadata.__dict__["_src_node_id"] = node
      self.replies[message.metadata.message_id] = reply
    return ids

  def pull_messages(self, message_ids):
    """The replies that came for ``message_ids`` (each handed out once)."""
    self.pulled.append(set(message_ids))
    return [self.replies.pop(i) for i in list(message_ids) if i in self.replies]

  def send_and_receive(self, messages, *, timeout=None):
    """Every reply at once: a node that is ``down`` is not waited for. Records
    ``(message type, timeout)`` in ``waits``."""
    messages = list(messages)
    if messages:
      self.waits.append((messages[0].metadata.message_type, timeout))
    return self.pull_messages(self.push_messages(messages))
