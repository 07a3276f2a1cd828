"""Input-dependent prompt generators against the frame prompt, 3 seeds.

    python -m experiments.sweep --sweep=configs/sweeps/image_prompts.py --workdir=/tmp/image_prompts
    python -m experiments.report /tmp/image_prompts --out=/tmp/image_prompts

The demo's setting (``configs/fmnist_effnet.py``: 5 clients, 10 rounds, SPSA-GC, ILM
re-mapping) with the same query budget for every generator; only ``prompt.kind`` and
the frozen client-side encoder change:

* ``frame``: the demo's input-independent frame (192 floats);
* ``frame_mixture``: 4 frames mixed per image by a gate on encoder features, with
  the pretrained EfficientNet-Lite0 trunk (1,088 floats) or fixed random
  convolutions (800 floats) as the encoder;
* ``coordinator``: the BlackVIP-style decoder on the pretrained trunk (17,808 floats)
  or on fixed random features (8,592 floats), painting the same frame region.

Local-only is off (not part of this comparison); zero-shot is scored per point.
"""

from typing import Any

SEEDS = (0, 1, 2)
VARIANTS = {
    "frame": {},
    "mixture_pretrained": {"prompt.kind": "frame_mixture",
                           "prompt.encoder": "efficientnet_lite0"},
    "mixture_random": {"prompt.kind": "frame_mixture", "prompt.encoder": "random"},
    "coordinator_pretrained": {"prompt.kind": "coordinator",
                               "prompt.encoder": "efficientnet_lite0"},
    "coordinator_random": {"prompt.kind": "coordinator", "prompt.encoder": "random"},
}


def get_sweep() -> list[dict[str, Any]]:
  """Returns 15 points: 5 generators x seeds 0, 1, 2."""
  return [{"config": "configs/fmnist_effnet.py",
           "overrides": {**overrides, "baselines.local_only": False, "seed": seed},
           "name": f"{name}_s{seed}"}
          for name, overrides in VARIANTS.items() for seed in SEEDS]
