"""Embedded default: AReaL's real asynchronous GRPO loop on this CPU machine, end to end.

Per arm (a value of ``actor.prox_logp_method``): a vLLM CPU server running AReaL's own server module
(through :mod:`areal_a3po.vllm_cpu`), and AReaL's ``PPOTrainer`` with ``RLVRWorkflow`` and an FSDP
actor, asynchronous rollouts (``max_head_offpolicyness``) and disk weight updates after every step,
on a tiny Qwen2 model and tokenizer built in code (:mod:`.model`) and a synthetic verifiable task
(:mod:`.task`). Stats go to AReaL's StatsLogger with tensorboard enabled, one run dir per arm.

    from areal_a3po.embedded import run_default
    run_dirs = run_default("runs/embedded", steps=30, staleness=2, seed=1,
                           providers=["recompute", "a3po"])

Importing this package is cheap; AReaL, torch and vLLM are only imported by the child processes.
"""

from __future__ import annotations

__all__ = [
    "CI_STEPS",
    "DEFAULT_STALENESS",
    "DEFAULT_STEPS",
    "default_providers",
    "run_arm",
    "run_default",
    "run_reduced",
]

_RUNNER_NAMES = set(__all__)


def __getattr__(name):  # lazy: keeps `import areal_a3po.embedded` free of omegaconf/tqdm imports
    if name in _RUNNER_NAMES:
        from areal_a3po.embedded import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
