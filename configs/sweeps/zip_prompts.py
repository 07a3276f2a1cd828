"""ZIP's two ideas against the demo's frame, 3 seeds, at the demo's budget.

    python -m experiments.sweep --sweep=configs/sweeps/zip_prompts.py --workdir=/tmp/zip_prompts
    python -m experiments.report /tmp/zip_prompts --out=/tmp/zip_prompts

The demo's setting (``configs/fmnist_effnet.py``: 5 clients, 10 rounds, 69,000 queries,
ILM re-mapping, its step sizes) with only the prompt and the estimator changed:

* ``frame``: the demo (192 floats, SPSA-GC);
* ``intrinsic_gc``: ``intrinsic_frame`` (a 16 x 16 x 3 pattern from a rank-2 matrix in
  intrinsic dimension 48: 56 floats), SPSA-GC;
* ``intrinsic_clip``: the same with ZIP's estimator, SPSA clipped to norm sqrt(n);
* ``intrinsic_gc_clip`` and ``frame_gc_clip``: SPSA-GC clipped, on either prompt.

Local-only is off (not part of this comparison); zero-shot is scored per point. The seeds
of a variant run as one vmapped program.
"""

from typing import Any

SEEDS = (0, 1, 2)
INTRINSIC = {"prompt.kind": "intrinsic_frame", "prompt.frame_resolution": 16}
VARIANTS = {
    "frame": {},
    "intrinsic_gc": INTRINSIC,
    "intrinsic_clip": {**INTRINSIC, "zo.estimator": "spsa_clip"},
    "intrinsic_gc_clip": {**INTRINSIC, "zo.estimator": "spsa_gc_clip"},
    "frame_gc_clip": {"zo.estimator": "spsa_gc_clip"},
}


def get_sweep() -> list[dict[str, Any]]:
  """Returns 15 points: 5 variants x seeds 0, 1, 2."""
  return [{"config": "configs/fmnist_effnet.py",
           "overrides": {**overrides, "baselines.local_only": False, "seed": seed},
           "name": f"{name}_s{seed}"}
          for name, overrides in VARIANTS.items() for seed in SEEDS]
