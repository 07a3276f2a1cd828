"""Image family set-up of input-dependent prompts: the clients' mean encoder feature."""

import jax.numpy as jnp
import numpy as np

from fedbbpt_jax.data import ClientData
from fedbbpt_jax.tasks.image.build import mean_client_feature


def test_mean_client_feature_averages_every_clients_first_images():
  x = np.zeros((3, 4, 2), np.float32)
  x[0, :4] = [[1, 1], [2, 2], [30, 30], [40, 40]]  # only the first m = 2 count
  x[1, :1] = [[4, 10]]                             # one real example
  clients = ClientData(x=jnp.asarray(x), y=jnp.zeros((3, 4), jnp.int32),
                       num_examples=jnp.asarray([4, 1, 0], jnp.int32))
  got = mean_client_feature(lambda images: images * 2.0, clients, m=2)
  np.testing.assert_allclose(got, 2.0 * np.array([7.0, 13.0]) / 3)
