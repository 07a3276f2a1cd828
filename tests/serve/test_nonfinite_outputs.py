"""A model that answers NaN or inf is never billed: the app in-process on a toy model.

The toy model is ``log(pixels)``: a row holding a 0 pixel gives ``-inf``, so a valid
request (every pixel in [0, 1]) can still make the model answer non-finite outputs.
The real EfficientNet service cannot be made to do that with valid pixels, hence the
toy model and ``fastapi.testclient`` (no process, no network).
"""

import jax.numpy as jnp
import numpy as np
from fastapi.testclient import TestClient

from fedbbpt_jax.blackbox.wire import NPY_CONTENT_TYPE, decode_array, encode_array
from fedbbpt_jax.serve import KeyStore, ServedModel, create_app

LOG_MODEL = ServedModel(name="log_model", input_shape=(3,), input_dtype="float32",
                        wire_dtypes=("float32", "uint8"), output_kind="logits", output_size=3,
                        forward=jnp.log, pixel_range=(0.0, 1.0))


def client(budget=None):
  return TestClient(create_app(LOG_MODEL, KeyStore({"key": budget}), max_batch=4))


def post(http, array):
  return http.post("/v1/predict", content=encode_array(array),
                   headers={"Authorization": "Bearer key", "Content-Type": NPY_CONTENT_TYPE})


def test_non_finite_outputs_are_an_error_naming_the_rows_and_are_not_charged():
  http = client(budget=5)
  x = np.asarray([[0.5, 0.25, 1.0], [0.5, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]],
                 np.float32)
  r = post(http, x)
  assert r.status_code == 500, r.text
  assert r.json() == {"error": "non_finite_output", "message":
                      "the model answered NaN or inf for 2 of 4 inputs (rows [1, 3]); "
                      "nothing was charged", "rows": [1, 3]}
  usage = http.get("/v1/usage", headers={"Authorization": "Bearer key"}).json()
  assert (usage["used"], usage["remaining"], usage["requests"]) == (0, 5, 0)
  r = post(http, x[[0, 2]])                      # the finite rows alone are answered, charged
  assert r.status_code == 200, r.text
  np.testing.assert_allclose(decode_array(r.content), np.log(x[[0, 2]]), rtol=1e-6)
  usage = http.get("/v1/usage", headers={"Authorization": "Bearer key"}).json()
  assert (usage["used"], usage["remaining"], usage["requests"]) == (2, 3, 1)


def test_info_reports_the_accepted_input_range():
  info = client().get("/v1/info").json()
  assert (info["pixel_range"], info["id_range"]) == ([0.0, 1.0], None)
  r = post(client(), np.asarray([[0.5, 1.0000001, 0.5]], np.float32))
  assert r.status_code == 400 and r.json()["error"] == "out_of_range", r.text
  assert r.json()["message"] == ("float32 pixels must be in [0, 1]; got values in [0.5, 1.0000001] "
                                 "(1 of 3 outside)")
