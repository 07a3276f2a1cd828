"""Deployment on Flower: the same pure functions as simulation, on separate machines.

* ``client_app.app``: the ``ClientApp`` (a node runs ``client_update`` on its partition);
* ``server_app.app``: the ``ServerApp`` (sampling, aggregation, server step, evaluation,
  checkpoints and resume, all through ``train``'s run records);
* ``strategy.FedBBPTStrategy``: the round logic as a Flower ``Strategy``;
* ``codec``: pytrees <-> ``ArrayRecord`` with named, checked keys;
* ``settings``: run config, node config, the experiment config on the wire;
* ``worker``, ``worker_client``, ``worker_protocol``: a node's long-lived worker process that
  keeps the built experiment and its compiled client step between rounds (a SuperNode
  starts a fresh ClientApp process per message), how the ClientApp finds, starts and asks
  it, and what they send each other;
* ``loopback``: a SuperLink, SuperNodes and the provider service as local processes.

This package sits above ``train`` (it drives runs); nothing below imports it. Importing
it does not import JAX-heavy modules: import the submodules.
"""
