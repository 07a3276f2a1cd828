"""Image family set-up of input-dependent prompts: the clients' mean encoder feature,
from each client's feature sum and count (``feature_sums``)."""

import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.data import ClientData
from fedbbpt_jax.tasks.image.build import mean_feature
from fedbbpt_jax.tasks.image.setup_statistics import FEATURE_SUMS, feature_sums
from fedbbpt_jax.tasks.local_setup import local_gather


def test_mean_feature_averages_every_clients_first_images():
  x = np.zeros((3, 4, 2), np.float32)
  x[0, :4] = [[1, 1], [2, 2], [30, 30], [40, 40]]  # only the first m = 2 count
  x[1, :1] = [[4, 10]]                             # one real example
  clients = ClientData(x=jnp.asarray(x), y=jnp.zeros((3, 4), jnp.int32),
                       num_examples=jnp.asarray([4, 1, 0], jnp.int32))
  gather = local_gather({FEATURE_SUMS: feature_sums(lambda images: images * 2.0, 2)}, clients)
  sent = gather(FEATURE_SUMS, {})
  assert [int(s["count"]) for s in sent] == [2, 1, 0]  # what each client sends: a sum, a count
  np.testing.assert_allclose(sent[0]["sum"], [6.0, 6.0])
  np.testing.assert_allclose(mean_feature(gather), 2.0 * np.array([7.0, 13.0]) / 3)
