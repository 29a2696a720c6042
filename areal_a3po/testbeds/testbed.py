"""One CPU testbed as ``a3po compare --testbed`` runs it: recipe twins, model, expected times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Testbed:
    """A testbed's recipes, model builder and times (measured on the 2-core development machine)."""

    name: str
    recipe_prefix: str  # recipes/<prefix>_{recompute,a3po}.yaml
    entry_module: str  # the twins' entry script (``python3 -m <entry_module>`` in their headers)
    build_model: Callable[[str, int], str]  # (model root, seed) -> actor.path
    summary: str  # what it trains on, for ``--testbed``'s help
    default_steps: int
    # Expected time of one arm (printed before a study): start-up, and a step per pace.
    expected_start_s: float
    expected_step_s: dict[str, float]
    # Overall bound of one arm: start-up plus a per-step allowance (generous: a loaded machine).
    start_limit_s: float
    step_limit_s: float

    def arm_limit_s(self, steps: int) -> float:
        """The time an arm of ``steps`` steps may take before it is stopped."""
        return self.start_limit_s + steps * self.step_limit_s

    def expected_s(self, steps: int, pace: str) -> float:
        """Rough wall time of one arm of ``steps`` steps at ``pace``."""
        return self.expected_start_s + steps * self.expected_step_s[pace]
