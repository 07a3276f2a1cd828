"""The records a deployment's messages carry, by name (the wire protocol, both sides).

Train message (server -> node), ``RecordDict``:
  ``GLOBAL``: ``ArrayRecord`` of the broadcast (the global generator);
  ``RUN``: ``ConfigRecord`` with ``config-json`` (the experiment config), ``round``
  (0-based round index), ``refresh-round`` (the round before which the task in force
  was re-derived, -1 = none) and one ``file:<name>`` bytes entry per set-up file the
  server derived (e.g. the image label mapping and the ILM refresh in force), so a node
  spends no query on set-up and runs exactly the server's task.
  With the run config's ``download='seeds'`` (``seed_download.py``) a message carries,
  instead of ``GLOBAL``, either ``STATE`` (the whole server state: a (re)sync) or
  ``HISTORY`` (the recorded rounds since the node's state, ``RUN`` then holding
  ``state-round`` and ``params-check``).
Train reply (node -> server):
  ``UPLOAD``: ``ArrayRecord`` of the client's upload pytree (``ClientOutput`` or
  ``SeedUpload``), checked against the server's expected structure;
  ``REPORT``: ``MetricRecord`` with ``partition-id``, ``num-examples``, the query-meter
  increments of its activation and ``train-seconds``.
Query message (server -> node, discovery): empty; reply ``NODE`` with ``partition-id``.
Evaluate message (server -> every connected node, ``train.evaluation`` 'federated' or
'both', after the rounds it tests): ``GLOBAL`` (the global model,
``algorithm.model(state)``) and ``RUN`` as in a train message; reply ``TEST_SUMS``: a
``MetricRecord`` with ``partition-id``, ``num-examples``, ``loss-sum``, the ``[C, C]``
confusion matrix sparse (``confusion-cells``: flat indices ``true * C + predicted`` of its
non-zero cells, ``confusion-counts``) and ``eval-seconds`` (``evaluation_wire.py``).
Set-up request (server -> every connected node, message type ``query.setup``, while the
server derives the task's set-up, ``tasks/local_setup.py``): ``RUN`` as in a train
message (before training: the config only) plus ``statistic`` (its name), and
``REQUEST``: an ``ArrayRecord`` of the request's arrays; reply ``STATS``: an
``ArrayRecord`` of the statistic's arrays, and ``REPORT`` with ``partition-id`` and
``setup-seconds``.
"""

GLOBAL, RUN, UPLOAD, REPORT, NODE = "global", "run", "upload", "report", "node"
STATE, HISTORY, STATE_ROUND, PARAMS_CHECK = "state", "history", "state-round", "params-check"
CONFIG_JSON, ROUND, REFRESH_ROUND, FILE_PREFIX = "config-json", "round", "refresh-round", "file:"
PARTITION_ID = "partition-id"
TRAIN, QUERY, EVALUATE = "train", "query", "evaluate"
TEST_SUMS = "test-sums"
SETUP, STATISTIC, REQUEST, STATS = "query.setup", "statistic", "request", "stats"
