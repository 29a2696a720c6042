"""The tiny testbed (the default): ``recipes/cpu_tiny_*.yaml``, seconds per step.

A 2-layer Qwen2 built in code (:mod:`.model`) on the synthetic alphabet task (:mod:`.task`),
fixed-length completions (:mod:`.workflow`), entry script :mod:`.train`.
"""

from __future__ import annotations

import os

from areal_a3po.testbeds.testbed import Testbed


def build_model(model_root: str, seed: int) -> str:
    """The tiny model and tokenizer of ``seed`` under ``model_root`` (built once)."""
    from areal_a3po.testbeds.tiny import model, task

    return model.build_model_dir(
        os.path.join(model_root, f"tiny-seed{seed}"), list(task.VOCAB), seed
    )


# Measured there, 2026-11: launch to first step ~100 s incl. the first batch, stop ~10 s; a step
# ~3.5 s free-running, ~4 s at the cap, where generation no longer overlaps training.
TESTBED = Testbed(
    name="tiny",
    recipe_prefix="cpu_tiny",
    entry_module="areal_a3po.testbeds.tiny.train",
    build_model=build_model,
    summary="2-layer model, synthetic task",
    default_steps=30,
    expected_start_s=110.0,
    expected_step_s={"free": 3.5, "cap": 4.0},
    start_limit_s=480.0,  # workers, vLLM, first rollouts
    step_limit_s=90.0,
)
