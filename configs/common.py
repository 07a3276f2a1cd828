"""Config blocks that every experiment family (image, text, GLUE) shares.

Each function returns a fresh ``ml_collections.ConfigDict`` holding one block's
fields, with each field's explanation written here once. The keyword arguments
are the block's fields: the defaults are the values the families share, and an
argument without a default is one every family sets itself. A family config
uses a block as a whole section or merges it into a section after its own
fields::

    from configs import common

    c.server = common.server(cohort_size=1)
    c.data.update(common.partition(num_clients=5))

The configs import this module as ``configs.common``: the repository root must be
on ``sys.path``, as it is for ``python -m experiments.train``, ``python -m pytest``
run from the root, and the sweeps' loader (``configs/`` stays a namespace package,
without ``__init__.py``).
"""


import ml_collections


def partition(*, num_clients: int, partition: str = "iid",  # pylint: disable=redefined-outer-name
              dirichlet_alpha: float = 0.5, shards_per_client: int = 2,
              examples_per_client: int = 0, test_examples: int = 0,
              partition_seed: int = 0) -> ml_collections.ConfigDict:
  """The client-partition fields of ``config.data`` (merged after the family's data fields)."""
  d = ml_collections.ConfigDict()
  d.num_clients = num_clients
  d.partition = partition                # 'iid' | 'dirichlet' (label skew) | 'shards'
  d.dirichlet_alpha = float(dirichlet_alpha)  # 'dirichlet': concentration (small = more skew)
  d.shards_per_client = shards_per_client  # 'shards': label-sorted shards per client
  d.examples_per_client = examples_per_client  # 0 = keep every example of the partition
  d.test_examples = test_examples        # fixed subset of the test split (0 = all of it)
  d.partition_seed = partition_seed      # the partition's randomness (config.seed leaves it)
  return d


def remote_blackbox(*, url: str = "", api_key_env: str = "FEDBBPT_API_KEY",
                    max_attempts: int = 5, backoff_seconds: float = 0.5,
                    timeout_seconds: float = 60.0,
                    max_concurrency: int = 8) -> ml_collections.ConfigDict:
  """The connection fields of ``config.blackbox`` for the model served as a real API.

  The service is ``python -m fedbbpt_jax.serve ...``; ``url=''`` queries the frozen
  local copy (the surrogate) instead.
  """
  b = ml_collections.ConfigDict()
  b.url = url                            # '' = the local copy; e.g. 'http://127.0.0.1:8000'
  b.api_key_env = api_key_env            # env var holding the key (config.json is on disk)
  b.max_attempts = max_attempts          # tries per request on 429/5xx/network errors
  b.backoff_seconds = float(backoff_seconds)  # first retry delay, doubled per retry
  b.timeout_seconds = float(timeout_seconds)  # per HTTP attempt
  b.max_concurrency = max_concurrency    # requests in flight at once
  return b


def client_schedule(*, lr: float, lr_offset: float = 0.0, lr_decay: float = 0.0,
                    local_steps: int, batch_size: int,
                    schedule: str = "step") -> ml_collections.ConfigDict:
  """The client step-size schedule, local steps and minibatch of ``config.client``.

  Merged after the family's optimizer fields; the step size at clock ``t`` is
  ``lr_t = lr / (t + lr_offset) ** lr_decay``, where ``t`` counts local steps
  (``schedule='step'``: ``t = r * local_steps + k + 1``) or rounds (``'round'``:
  ``t = r + 1`` through round r, whatever the number of local steps).
  """
  s = ml_collections.ConfigDict()
  s.lr = float(lr)
  s.lr_offset = float(lr_offset)         # stability offset o of the schedule
  s.lr_decay = float(lr_decay)           # exponent of the schedule (0 = constant step size)
  s.schedule = schedule                  # 'step' | 'round': what the clock t counts
  s.local_steps = local_steps            # client optimizer steps per round
  s.batch_size = batch_size              # minibatch of examples per local step
  # What a client uploads: 'dense' (its parameter delta, 4 x num_params bytes) or 'seeds'
  # (its key and candidate losses, 4 x local_steps x candidates bytes + the key; the server
  # replays the steps to the same delta). 'seeds': fedbbpt with spsa, spsa_gc, gaussian,
  # gaussian_antithetic, sphere or coordinate.
  s.upload = "dense"
  return s


def dp(*, clip_norm: float = 1.0, noise_multiplier: float = 1.0, delta: float = 1e-5,
       accountant: str = "rdp", sampling: str = "poisson",
       target_epsilon: float = 0.0) -> ml_collections.ConfigDict:
  """The ``config.server.dp`` block: client-level DP, on when ``server.aggregator='dp_gaussian'``.

  DP-FedAvg: each client's update is clipped to global L2 norm ``clip_norm``, the clipped
  updates are summed (each client once), Gaussian noise of std ``noise_multiplier *
  clip_norm`` is added and the sum is divided by the (expected) cohort size; the (ε, δ) spent is
  accounted with dp_accounting and written to metrics.jsonl and summary.json.
  """
  d = ml_collections.ConfigDict()
  d.clip_norm = float(clip_norm)         # S: bound on each client's update norm (> 0)
  d.noise_multiplier = float(noise_multiplier)  # z: noise std = z * S (>= 0; -1 = calibrate z
  #                                        so that ε after train.rounds = target_epsilon)
  # δ of the reported (ε, δ). 1e-5 rather than 1/num_clients^1.1: with the simulations'
  # 3-10 clients that rule gives δ > 0.1, which guarantees nothing; δ must stay << 1/num_clients.
  d.delta = float(delta)
  d.accountant = accountant              # 'rdp' | 'pld' (pld: sampling='poisson' only)
  # 'poisson' (q = cohort / clients, add/remove-one) | 'fixed' (uniform cohort of exactly that
  # size, replace-one; rdp only). The simulation draws its cohorts this way too
  # (server.sampling '' follows it; another value must equal it).
  d.sampling = sampling
  d.target_epsilon = float(target_epsilon)  # stop before a round that would exceed it (0 = none)
  return d


def robust(*, trim_fraction: float = 0.1, norm_bound: float = 1.0, num_byzantine: int = 1,
           multi_krum_m: int = 0) -> ml_collections.ConfigDict:
  """The ``config.server.robust`` block: hyper-parameters of the robust aggregators."""
  r = ml_collections.ConfigDict()
  r.trim_fraction = float(trim_fraction)  # 'trimmed_mean': share cut at EACH end, in [0, 0.5)
  r.norm_bound = float(norm_bound)       # 'norm_bounded_mean': max global L2 norm of a delta
  r.num_byzantine = num_byzantine        # 'krum'/'multi_krum': f assumed (needs n - f - 2 >= 1)
  r.multi_krum_m = multi_krum_m          # 'multi_krum': clients averaged (0 = n - f)
  return r


def attack(*, kind: str = "none", fraction: float = 0.0, scale: float = 1.0,
           noise_std: float = 1.0) -> ml_collections.ConfigDict:
  """The ``config.attack`` section: Byzantine clients in simulation (off by default)."""
  a = ml_collections.ConfigDict()
  # 'none' | 'sign_flip' (upload -scale * delta) | 'scaled' (scale * delta) | 'gaussian'
  # (N(0, noise_std^2) noise) | 'label_flip' (train on labels num_classes - 1 - y)
  a.kind = kind
  a.fraction = float(fraction)           # share of clients that are malicious, fixed per seed
  a.scale = float(scale)                 # 'sign_flip' / 'scaled'
  a.noise_std = float(noise_std)         # 'gaussian'
  return a


def server(*, algorithm: str = "fedbbpt", optimizer: str = "sgd", lr: float = 1.0,
           momentum: float = 0.9, cohort_size: int = 0,
           aggregator: str = "weighted_mean", dropout: float = 0.0,
           sampling: str = "") -> ml_collections.ConfigDict:
  """The ``config.server`` section: the federated algorithm and the server optimizer."""
  s = ml_collections.ConfigDict()
  # 'fedbbpt' | 'fedone' (one client per round) | 'centralized' (pooled data, upper
  # reference) | 'fedbpt' (federated CMA-ES: image frame or text soft prompt, not GLUE;
  # needs --config.zo.estimator=cma_es)
  s.algorithm = algorithm
  # 'sgd' (FedAvg; of probability matrices for discrete prompts) | 'momentum' (FedAvgM) | 'adam'
  s.optimizer = optimizer
  s.lr = float(lr)
  s.momentum = float(momentum)
  s.cohort_size = cohort_size            # 0 = every client every round
  # How the cohort is drawn: 'fixed' (exactly cohort_size clients, uniformly) | 'poisson'
  # (each client joins independently with probability cohort_size / num_clients: cohorts
  # of varying size, fedbbpt only) | '' = server.dp.sampling when aggregator='dp_gaussian'
  # (the sampling the accountant assumes), else 'fixed'.
  s.sampling = sampling
  # How the server combines uploads: a name registered in federated.AGGREGATORS
  # ('weighted_mean' = FedAvg's example-weighted mean; robust: 'median' | 'trimmed_mean' |
  # 'norm_bounded_mean' | 'krum' | 'multi_krum', their settings in server.robust;
  # 'dp_gaussian' = DP-FedAvg, its settings in server.dp, fedbbpt only).
  s.aggregator = aggregator
  s.robust = robust()
  s.dp = dp()                            # read when aggregator='dp_gaussian'
  # Each sampled client fails to report with this probability (its update is ignored; its
  # queries are still spent). A round nobody reports in leaves the model unchanged.
  s.dropout = float(dropout)
  # 'centralized' only: its step-size clock ticks once per cohort of pooled steps ('client':
  # the clients' schedule) or once per pooled step ('global': shrinks cohort_size x faster).
  s.pooled_clock = "client"
  return s


def train(*, rounds: int, eval_every: int, eval_batch_size: int) -> ml_collections.ConfigDict:
  """The ``config.train`` section: the round loop and evaluation."""
  t = ml_collections.ConfigDict()
  t.rounds = rounds
  t.eval_every = eval_every              # test every this many rounds (and after the last)
  t.eval_batch_size = eval_batch_size
  # 'central' (the server's test set) | 'federated' (every client scores the global model
  # on its local test split and sends sums: fed_test_* columns) | 'both'
  t.evaluation = "central"
  t.init_noise = 0.0                     # relative noise on the initial prompt parameters
  #                                        (robustness check: 1e-6 is another CPU's rounding)
  return t


def baselines(*, zero_shot: bool = True, local_only: bool = False) -> ml_collections.ConfigDict:
  """The ``config.baselines`` section, computed on the run's data, partition and seed."""
  b = ml_collections.ConfigDict()
  b.zero_shot = zero_shot                # score the untrained prompt
  b.local_only = local_only              # train every client alone (same queries as the run)
  return b


def parallel(*, backend: str = "vmap", cpu_devices: int = 0,
             cohort_chunk: int = 0) -> ml_collections.ConfigDict:
  """The ``config.parallel`` section: how the clients of a round run."""
  p = ml_collections.ConfigDict()
  # 'vmap' | 'shard' (over devices) | 'loop' (less memory: one client at a time)
  p.backend = backend
  p.cpu_devices = cpu_devices            # CPU devices to expose (0 = JAX default, 1)
  # Poisson cohorts (server.sampling): members run in vmapped chunks of this many clients
  # (0 = about the square root of the cohort's capacity); memory grows with it.
  p.cohort_chunk = cohort_chunk
  return p


def decentralized(*, topology: str = "ring", gossip_steps: int = 1, rho: float = 0.05,
                  order: str = "train_then_mix") -> ml_collections.ConfigDict:
  """The ``config.decentralized`` section, read by ``server.algorithm='dfedsam'`` only."""
  d = ml_collections.ConfigDict()
  # A name in federated.TOPOLOGIES: 'ring' | 'torus' | 'grid' | 'exponential' | 'k_regular'
  # | 'erdos_renyi' | 'fully_connected'.
  d.topology = topology
  d.gossip_steps = gossip_steps          # Q mixing steps per round (1 = DFedSAM, > 1 = -MGS)
  d.rho = float(rho)                     # zero-order SAM radius (0 = DFedAvg)
  d.order = order                        # 'train_then_mix' (paper) | 'mix_then_train'
  d.weights = "metropolis_hastings"      # | 'sample_weighted' (row-stochastic, by examples)
  d.time_varying = False                 # redraw a random topology every round
  d.rows = 0                             # torus/grid shape (0 = the most square)
  d.cols = 0
  d.degree = 4                           # k_regular
  d.edge_probability = 0.5               # erdos_renyi
  d.topology_seed = 0                    # random topologies' seed
  return d


def bo(*, initial: int = 25, batch: int = 25, fit_steps: int = 100,
       score_vectors: str = "clients", max_points: int = 1000,
       score_noise: float = 0.0) -> ml_collections.ConfigDict:
  """The ``config.bo`` section, read by ``server.algorithm='fed_bo'`` / ``'centralized_bo'``
  only (Bayesian optimisation of a small prompt, e.g. the instruction family's ``z``)."""
  b = ml_collections.ConfigDict()
  b.initial = initial                    # Sobol design points (a multiple of bo.batch)
  b.batch = batch                        # points evaluated per round
  b.fit_steps = fit_steps                # Adam steps of the GP's hyper-parameter fit
  b.score_vectors = score_vectors        # fed_bo's kernel input: per-client means | 'examples'
  b.max_points = max_points              # the server's record of evaluated points (its size)
  # std of Gaussian noise each client adds to every score it uploads (its mean losses, and its
  # per-example losses with score_vectors='examples'); 0 = exact scores. A perturbation of
  # what leaves a client, not accounted as DP (the scores are not clipped).
  b.score_noise = float(score_noise)
  return b
