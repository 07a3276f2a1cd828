"""The provider service over HTTPS (``--ssl_certfile/--ssl_keyfile``): a client that trusts
the CA (``SSL_CERT_FILE``) is served; one that does not is refused by certificate
verification, with an error naming the URL."""

import datetime
import ipaddress

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fedbbpt_jax.blackbox import RemoteBlackBox, RemoteBlackBoxError, RetryPolicy
from fedbbpt_jax.serve.process import LOOPBACK, ServiceProcess


def _name(common):
  return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_server_cert(directory):
  """A throw-away CA and a certificate for 127.0.0.1 signed by it (PEM files)."""
  now = datetime.datetime.now(datetime.timezone.utc)
  ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
  ca = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256()))
  cert = (x509.CertificateBuilder().subject_name(_name(LOOPBACK)).issuer_name(ca.subject)
          .public_key(key.public_key()).serial_number(2)
          .not_valid_before(now - datetime.timedelta(minutes=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.SubjectAlternativeName(
              [x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
          .sign(ca_key, hashes.SHA256()))
  paths = {name: str(directory / f"{name}.pem") for name in ("ca", "cert", "key")}
  with open(paths["ca"], "wb") as f:
    f.write(ca.public_bytes(serialization.Encoding.PEM))
  with open(paths["cert"], "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
  with open(paths["key"], "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
  return paths


def test_https_service_serves_clients_that_trust_its_ca(tmp_path, monkeypatch):
  paths = make_ca_and_server_cert(tmp_path)
  x = np.random.default_rng(0).uniform(size=(4, 32, 32, 3)).astype(np.float32)
  with ServiceProcess(input_size=32, max_batch=16,
                      tls=(paths["cert"], paths["key"], paths["ca"])) as service:
    assert service.url.startswith("https://")
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with pytest.raises(RemoteBlackBoxError, match=r"https://127\.0\.0\.1:\d+/v1/info failed: "
                       r"no HTTP response: .*CERTIFICATE_VERIFY_FAILED"):
      RemoteBlackBox(service.url, retry=RetryPolicy(max_attempts=1))
    monkeypatch.setenv("SSL_CERT_FILE", paths["ca"])
    trusting = RemoteBlackBox(service.url)
    outputs = trusting.predict(x)
    np.testing.assert_array_equal(trusting.predict(x[::-1]), outputs[::-1])
  assert outputs.shape == (4, 1000) and np.isfinite(outputs).all()
  assert trusting.meter.examples_sent == 8
