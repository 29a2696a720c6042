"""Entry scripts for the GPU recipes in ``recipes/`` (no AReaL checkout needed).

    python3 -m areal_a3po.entry.gsm8k_grpo --config RECIPE scheduler.type=local   # single-controller
    python3 -m areal.infra.launcher.local "$(python3 -m areal_a3po.entry gsm8k_grpo)" --config RECIPE ...

Each script is AReaL's own loop (``PPOTrainer`` + ``RLVRWorkflow``, a ``RolloutWorkflow``, so it
runs in every launch mode: single-controller local / Ray / Slurm and the SPMD launchers). AReaL's
SPMD launchers take a file path (torchrun runs it as a script, the Ray launcher loads it with
``spec_from_file_location`` and calls ``main(argv)``); ``python3 -m areal_a3po.entry NAME`` prints
that path. Importing this package does not import AReaL.
"""

from __future__ import annotations

from pathlib import Path

ENTRIES = ("gsm8k_grpo", "math_grpo")


def entry_path(name: str) -> str:
    """Absolute path of the entry script ``name`` (one of :data:`ENTRIES`)."""
    if name not in ENTRIES:
        raise ValueError(f"unknown entry script {name!r}; choose one of {', '.join(ENTRIES)}")
    return str(Path(__file__).resolve().parent / f"{name}.py")
