"""The controller side of ``hybrid``: which steps run the real recompute (no AReaL import).

Each step the trainer asks ``PPOActorConfig.should_compute_prox_logp()`` once; for ``hybrid`` that
asks :meth:`Calibrator.decide`. Every process that decides also sees the step's reduced statistics
(the trainer exports them every step, on every rank), and :func:`observe` feeds them back, so all
ranks take the same decision. Workers never decide: their loss trains on the recompute exactly when
the batch carries it, so controller and workers agree on which steps have ground truth.

    step s recomputes  <=>  s % calibration_interval == 0  or  escalated
    after a recompute step: escalated = error(fallback vs recompute) > error_threshold
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from areal_a3po import keys
from areal_a3po.config import A3POConfig

_LIVE: weakref.WeakSet[Calibrator] = weakref.WeakSet()


@dataclass(eq=False)
class Calibrator:
    options: A3POConfig
    step: int = -1
    escalated: bool = False
    last_error: float | None = None
    decisions: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        _LIVE.add(self)

    @property
    def error_key(self) -> str:
        name = keys.provider_key(self.options.fallback, self.options.error_metric)
        return f"{keys.PROX_SCOPE}/{name}/avg"  # matches the full key and the worker-local one

    def decide(self) -> bool:
        """Called once per training step: run the recompute this step?"""
        self.step += 1
        recompute = self.escalated or self.step % self.options.calibration_interval == 0
        self.decisions.append(recompute)
        return recompute

    def observe(self, stats: dict[str, float]) -> None:
        """Reduced statistics of a step; acts only on those of a recompute (calibration) step."""
        error = next((v for k, v in stats.items() if k.endswith(self.error_key)), None)
        if error is None:
            return
        self.last_error = float(error)
        self.escalated = self.last_error > self.options.error_threshold


def observe(stats: dict[str, float]) -> None:
    """Feed one export of reduced statistics to every calibrator of this process."""
    for calibrator in list(_LIVE):
        calibrator.observe(stats)
