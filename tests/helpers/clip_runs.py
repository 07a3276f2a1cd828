"""The CLIP + BlackVIP runs of the tests: ``configs/clip_blackvip.py:tiny`` on a tiny CoOp folder.

``tiny_pets(tmp_path)`` writes an Oxford Pets folder in CoOp's layout (3 classes, random
PNGs of 20-40 px; ``tiny_image_sets.write_split_json``) and ``tiny_clip_config`` points
the tiny config at it: the 224 px tiny CLIP (``tests/data/clip_tiny_224``) as the black
box, the tiny MAE as BlackVIP's encoder, 2 shots per class on 2 clients, one round.
"""

import pathlib

import ml_collections

from configs import clip_blackvip
from tests.helpers.overrides import with_overrides
from tests.helpers.tiny_image_sets import write_split_json

PETS = ("abyssinian", "american_bulldog", "beagle")
COUNTS = {"train": [3, 3, 4], "val": [3, 4, 3], "test": [2, 3, 2]}


def tiny_pets(folder: pathlib.Path) -> str:
  """CoOp's ``DATASET.ROOT`` holding a tiny ``oxford_pets``; returns the root."""
  write_split_json(folder / "oxford_pets", "split_zhou_OxfordPets.json", "images", PETS, COUNTS)
  return str(folder)


def tiny_clip_config(root: str, cache_dir: str, **overrides) -> ml_collections.ConfigDict:
  """``configs/clip_blackvip.py:tiny`` reading ``root`` (decoded images cached in
  ``cache_dir``), with ``a__b=v`` overrides."""
  config = clip_blackvip.get_config("tiny")
  config.data.root = root
  config.data.cache_dir = cache_dir
  return with_overrides(config, **overrides)


def counted_clip_run(algorithm: str, tmp_path: pathlib.Path, baselines: bool):
  """Runs the tiny CLIP config with ``algorithm`` (and the zero-shot and local-only
  baselines when ``baselines``), its black box wrapped in ``CountingBlackBox``; returns
  ``(config, summary, counting black box)``."""
  from fedbbpt_jax.blackbox.counting import CountingBlackBox  # pylint: disable=import-outside-toplevel
  from fedbbpt_jax.train import run  # pylint: disable=import-outside-toplevel
  config = tiny_clip_config(tiny_pets(tmp_path / "data"), str(tmp_path / "cache"),
                            server__algorithm=algorithm, baselines__zero_shot=baselines,
                            baselines__local_only=baselines)
  wrapped = []
  summary = run(config, str(tmp_path / "run"), log=lambda s: None,
                wrap_blackbox=lambda bb: wrapped.append(CountingBlackBox(bb)) or wrapped[-1])
  assert len(wrapped) == 1
  return config, summary, wrapped[0]


def expected_clip_traffic(algorithm: str, config: ml_collections.ConfigDict, summary: dict,
                          baselines: bool) -> dict:
  """What must have reached CLIP, from the run's own records (``summary``) and config:
  ``{'examples', 'calls'}``. No setup query (identity label mapping); a training call is
  one step's candidates x minibatch; an evaluation call one chunk of the test set; the
  baselines (with ``baselines``): zero-shot on the test set, and every client training
  alone then evaluated."""
  counters = summary["query_counters"]
  n_test, n_clients = summary["test_examples"], summary["num_clients"]
  k = config.client.local_steps
  activations = counters["client_activations"]
  steps = activations * k * (summary["cohort_size"] if algorithm == "centralized" else 1)
  chunks = -(-n_test // config.train.eval_batch_size)
  local_only = summary.get("local_only_black_box_queries", 0) if baselines else 0
  return {"examples": (counters["bb_examples"] + counters["eval_bb_examples"]
                       + (n_test + local_only + n_clients * n_test if baselines else 0)),
          "calls": steps + chunks + ((1 + n_clients) * chunks + n_clients * k if baselines
                                     else 0)}


def clip_service_process(folder: pathlib.Path, max_batch: int = 8):
  """A ``ServiceProcess`` serving the 224 px tiny CLIP for the tiny pets head (class names
  written to ``folder``, BlackVIP's pets template), keys ``clip-key`` and ``run-key``."""
  import json  # pylint: disable=import-outside-toplevel

  import jax  # pylint: disable=import-outside-toplevel

  from fedbbpt_jax.blackbox.zero_shot import write_class_names  # pylint: disable=import-outside-toplevel
  from fedbbpt_jax.serve.process import ServiceProcess  # pylint: disable=import-outside-toplevel
  from tests.helpers.tiny_clip import TINY_224  # pylint: disable=import-outside-toplevel
  (folder / "keys.json").write_text(json.dumps({"clip-key": None, "run-key": None}))
  write_class_names(str(folder / "pets.txt"), PETS)
  cache = jax.config.jax_compilation_cache_dir or ""
  return ServiceProcess(model="clip", input_size=224, max_batch=max_batch,
                        keys_path=str(folder / "keys.json"),
                        extra_args=(f"--weights_path={TINY_224}",
                                    f"--class_names={folder / 'pets.txt'}",
                                    "--templates=blackvip:oxford_pets"),
                        env={"JAX_COMPILATION_CACHE_DIR": cache,
                             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"})
