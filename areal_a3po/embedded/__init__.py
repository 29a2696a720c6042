"""Embedded default: AReaL's real asynchronous GRPO loop on this CPU machine, end to end.

The setting lives in the CPU recipe twins ``recipes/cpu_tiny_{recompute,a3po}.yaml``: a tiny
Qwen2 model and tokenizer built in code (:mod:`.model`), a synthetic verifiable task (:mod:`.task`),
vLLM CPU rollouts (through :mod:`.vllm_cpu`), an FSDP actor on gloo, asynchronous rollouts and disk
weight updates. :mod:`.train` is the recipes' entry script; :mod:`.runner` runs each twin with
AReaL's local scheduler for ``a3po compare``:

    from areal_a3po.embedded import run_default
    results = run_default("runs/embedded", steps=30, staleness=2, seed=1,
                          providers=["recompute", "a3po-step", "a3po"])

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
]

_RUNNER_NAMES = set(__all__)


def __getattr__(name):  # lazy: keeps `import areal_a3po.embedded` free of yaml/tqdm imports
    if name in _RUNNER_NAMES:
        from areal_a3po.embedded import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
