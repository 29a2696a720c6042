"""The CPU testbeds ``a3po compare`` can run (``--testbed``), one folder each.

- :mod:`.tiny` (the default): ``recipes/cpu_tiny_*.yaml``, a 2-layer Qwen2 built in code on the
  synthetic alphabet task.
- :mod:`.smollm2`: ``recipes/cpu_smollm2_*.yaml``, SmolLM2-135M-Instruct on a reasoning-gym task,
  single-turn (``smollm2``) and answered with feedback and a retry (``smollm2-multiturn``).

Each folder holds its model, task, entry script and its :class:`~.testbed.Testbed` record
(recipes, model builder, expected times). Shared by both: :mod:`.entry` (what the entry scripts
add to AReaL's loop), :mod:`.stamped_dir` (model directories built once), :mod:`.vllm_cpu` (the
CPU vLLM bridge) and :mod:`.local_actor` (AReaL's FSDPPPOActor on one rank in this process, for the
benches and tests). Importing this package is cheap: torch, AReaL and vLLM are imported only by the
functions that build or train.
"""

from __future__ import annotations

from areal_a3po.testbeds import smollm2, tiny
from areal_a3po.testbeds.testbed import Testbed

TESTBEDS: dict[str, Testbed] = {
    bed.name: bed for bed in (tiny.TESTBED, smollm2.TESTBED, smollm2.MULTITURN_TESTBED)
}
DEFAULT_TESTBED = tiny.TESTBED.name


def get(name: str) -> Testbed:
    """The testbed called ``name``; ValueError naming the choices for any other."""
    try:
        return TESTBEDS[name]
    except KeyError:
        raise ValueError(f"testbed must be one of {sorted(TESTBEDS)}, got {name!r}") from None


__all__ = ["DEFAULT_TESTBED", "TESTBEDS", "Testbed", "get"]
