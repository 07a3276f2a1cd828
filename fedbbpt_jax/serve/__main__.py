"""Command line of the model service.

    python -m fedbbpt_jax.serve --model=efficientnet_lite0 --host=127.0.0.1 --port=8000 \\
        [--keys=keys.json] [--input_size=64] [--max_batch=64] [--max_request_bytes=N] [--warmup]
        [--body_timeout_s=30]
        [--ssl_certfile=cert.pem --ssl_keyfile=key.pem]   # HTTPS
    python -m fedbbpt_jax.serve --model=all_minilm_l6_v2 --max_length=64 --port=8001
    python -m fedbbpt_jax.serve --imports=my_models --model=my_cnn   # a model you registered
    python -m fedbbpt_jax.serve --model=clip --input_size=224 \\
        --weights_path=/models/clip-vit-base-patch16 \\
        --class_names=oxford_pets.txt --templates=blackvip:oxford_pets   # a zero-shot head

Without ``--keys`` the service is open (any or no bearer token; usage per token).
"""

from __future__ import annotations

import argparse
import logging
import sys

from fedbbpt_jax.core import ConfigError, import_plugins
from fedbbpt_jax.serve.app import BODY_TIMEOUT_S
from fedbbpt_jax.serve.models import ModelOptions, servable_models


def parse_args(argv: list[str]) -> argparse.Namespace:
  """Parses the service's options (after importing the ``--imports`` modules, whose
  registered models are then servable)."""
  pre = argparse.ArgumentParser(add_help=False)
  pre.add_argument("--imports", default="")
  known, _ = pre.parse_known_args(argv)
  parser = argparse.ArgumentParser(prog="python -m fedbbpt_jax.serve",
                                   description="Serve a frozen model over HTTP.")
  try:
    import_plugins(known.imports)
  except ConfigError as e:
    parser.error(str(e))
  parser.add_argument("--imports", default="",
                      help="your modules (comma-separated) that register models to serve")
  parser.add_argument("--model", required=True, choices=servable_models())
  parser.add_argument("--host", default="127.0.0.1",
                      help="interface to bind (default loopback only)")
  parser.add_argument("--port", type=int, default=8000)
  parser.add_argument("--keys", default="",
                      help="JSON file {key: budget in examples or null}; omit to run open")
  parser.add_argument("--input_size", type=int, default=64, help="side of square image inputs")
  parser.add_argument("--max_length", type=int, default=64,
                      help="padded token ids per row of a text model")
  parser.add_argument("--weights_path", default="",
                      help="an image model's weights ('' = its default; clip: a Hugging Face "
                      "CLIP folder or open_clip weights)")
  parser.add_argument("--class_names", default="",
                      help="zero-shot models: file of class names, one per line in label order")
  parser.add_argument("--templates", default="",
                      help="zero-shot models: 'blackvip:<set>', 'ensemble:<set>' or templates "
                      "separated by '|', each with one '{}'")
  parser.add_argument("--max_batch", type=int, default=64, help="most examples per request")
  parser.add_argument("--max_request_bytes", type=int, default=0,
                      help="body size limit (0 = a full float32 batch plus header)")
  parser.add_argument("--body_timeout_s", type=float, default=BODY_TIMEOUT_S,
                      help="seconds a request body may take to arrive (408 after)")
  parser.add_argument("--warmup", action="store_true",
                      help="compile every batch bucket before accepting requests")
  parser.add_argument("--ssl_certfile", default="",
                      help="PEM certificate (chain): serve HTTPS instead of HTTP")
  parser.add_argument("--ssl_keyfile", default="", help="PEM private key of --ssl_certfile")
  parser.add_argument("--log_level", default="warning")
  args = parser.parse_args(argv)
  if args.max_batch < 1:
    parser.error(f"--max_batch={args.max_batch} must be >= 1")
  if args.max_request_bytes < 0:
    parser.error(f"--max_request_bytes={args.max_request_bytes} must be >= 0")
  if not args.body_timeout_s > 0:
    parser.error(f"--body_timeout_s={args.body_timeout_s} must be > 0")
  if bool(args.ssl_certfile) != bool(args.ssl_keyfile):
    parser.error("--ssl_certfile and --ssl_keyfile go together (HTTPS needs both)")
  return args


def configure_logging(level: str) -> None:
  """One-line messages of the service's own logger (``fedbbpt_jax.serve``) on stderr."""
  handler = logging.StreamHandler()
  handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
  logger = logging.getLogger("fedbbpt_jax.serve")
  logger.addHandler(handler)
  logger.setLevel(logging.getLevelNamesMapping().get(level.upper(), logging.DEBUG))
  logger.propagate = False


def main(argv: list[str] | None = None) -> None:
  """Builds the model and the app, then serves until interrupted."""
  args = parse_args(sys.argv[1:] if argv is None else argv)
  import uvicorn  # pylint: disable=import-outside-toplevel

  from fedbbpt_jax.serve.app import create_app  # pylint: disable=import-outside-toplevel
  from fedbbpt_jax.serve.keys import KeyStore  # pylint: disable=import-outside-toplevel
  from fedbbpt_jax.serve.models import build_served_model  # pylint: disable=import-outside-toplevel

  configure_logging(args.log_level)
  keys = KeyStore.from_file(args.keys or None)
  options = ModelOptions(input_size=args.input_size, max_length=args.max_length,
                         weights_path=args.weights_path, class_names=args.class_names,
                         templates=args.templates)
  try:
    model = build_served_model(args.model, options)
  except (ValueError, FileNotFoundError) as e:
    raise SystemExit(f"python -m fedbbpt_jax.serve: error: {e}") from None
  app = create_app(model, keys, max_batch=args.max_batch,
                   max_request_bytes=args.max_request_bytes or None, warmup=args.warmup,
                   body_timeout_s=args.body_timeout_s)
  access = "open (no keys)" if keys.open else f"keys from {args.keys}"
  scheme = "https" if args.ssl_certfile else "http"
  print(f"serving {model.name} {list(model.input_shape)} on {scheme}://{args.host}:{args.port} "
        f"(max batch {args.max_batch}, {access})", flush=True)
  tls = ({"ssl_certfile": args.ssl_certfile, "ssl_keyfile": args.ssl_keyfile}
         if args.ssl_certfile else {})
  uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, **tls)


if __name__ == "__main__":
  main()
