"""The CLIP + BlackVIP sweep (``configs/sweeps/clip_blackvip.py``) and the configs it reads
(``configs/clip_blackvip.py``): BlackVIP's settings per benchmark, valid points, equal
training queries for every method of a benchmark."""

from configs import clip_blackvip
from experiments.sweep_points import load_sweep

# BlackVIP's docs/configuration.md, black-box columns: epochs, moms, gamma, spsa_c, p_eps.
PAPER = {"caltech101": (5000, 0.9, 0.2, 0.005, 0.2), "oxford_pets": (5000, 0.9, 0.1, 0.01, 1),
         "stanford_cars": (2500, 0.9, 0.2, 0.01, 0.3), "oxford_flowers": (5000, 0.5, 0.2, 0.02, 1),
         "food101": (5000, 0.9, 0.1, 0.01, 0.3), "fgvc_aircraft": (5000, 0.3, 0.1, 0.01, 0.5),
         "sun397": (1000, 0.5, 0.1, 0.01, 1), "dtd": (5000, 0.7, 0.2, 0.01, 0.3),
         "svhn": (5000, 0.9, 0.2, 0.005, 1), "eurosat": (5000, 0.9, 0.2, 0.005, 0.4),
         "resisc45": (5000, 0.95, 0.1, 0.01, 0.3), "clevr": (5000, 0.9, 0.2, 0.005, 1),
         "ucf101": (5000, 0.9, 0.1, 0.01, 0.3), "imagenet": (500, 0.9, 0.2, 0.005, 0.3)}


def _training_examples(config):
  """Black-box examples of the run's training rounds (every method's cost formula)."""
  steps, cands, batch = config.client.local_steps, 2 * config.zo.num_directions, \
      config.client.batch_size
  per_round = {"fedbbpt": config.data.num_clients * steps, "fedone": steps,
               "centralized": config.data.num_clients * steps}[config.server.algorithm]
  return config.train.rounds * per_round * cands * batch


def test_clip_blackvip_configs_carry_blackvips_settings():
  for benchmark, (epochs, beta, gamma, c, p_eps) in PAPER.items():
    config = clip_blackvip.get_config(benchmark)
    assert clip_blackvip.BENCHMARKS[benchmark].epochs == epochs
    assert (config.zo.momentum, config.zo.sigma_decay, config.zo.sigma, config.prompt.epsilon) \
        == (beta, gamma, c, p_eps), benchmark
    # SPSA_PARAMS [o=1.0, c, a=0.01, alpha=0.4, gamma]: a_t = a / (t + o)^alpha, c_t = c / t^gamma
    assert (config.client.lr, config.client.lr_offset, config.client.lr_decay) == (0.01, 1.0, 0.4)
    assert (config.zo.estimator, config.zo.num_directions, config.client.optimizer) == \
        ("spsa_gc", 5, "sgd")
    assert (config.blackbox.model, config.blackbox.input_size, config.blackbox.templates) == \
        ("clip", 224, f"blackvip:{benchmark}")
    assert (config.prompt.kind, config.prompt.encoder, config.data.shots) == ("blackvip", "vit", 16)
    assert config.task.label_mapping == "identity" and config.data.name == f"coop:{benchmark}"
    # the federated rounds spend BlackVIP's examples: epochs x max(1, N // 128) steps of
    # 10 passes of min(128, N) images, N = 16 x classes
    images = 16 * clip_blackvip.BENCHMARKS[benchmark].classes
    blackvip_examples = epochs * max(1, images // 128) * 10 * min(128, images)
    assert abs(_training_examples(config) / blackvip_examples - 1) < 0.02, benchmark


def test_clip_blackvip_sweep_is_valid_and_query_fair():
  points = load_sweep("configs/sweeps/clip_blackvip.py")
  assert len(points) == 14 * 3 * 3   # benchmarks x {fedbbpt, centralized, fedone} x seeds
  for benchmark in PAPER:
    mine = [p for p in points if p.name.startswith(benchmark + "_")]
    assert {p.config.seed for p in mine} == {1, 2, 3}
    assert all(p.config.data.shots_seed == p.config.seed for p in mine)
    costs = {p.name: _training_examples(p.config) for p in mine}
    assert len(set(costs.values())) == 1, costs
    fedbbpt = [p for p in mine if "_fedbbpt_" in p.name]
    assert all(p.config.baselines.zero_shot and p.config.baselines.local_only for p in fedbbpt)
    central = [p for p in mine if "_blackvip_centralized_" in p.name]
    assert all(p.config.server.pooled_clock == "global" for p in central)
