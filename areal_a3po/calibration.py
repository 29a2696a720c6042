"""The controller side of ``hybrid``: which steps run the real recompute (no AReaL import).

Each step the trainer asks ``PPOActorConfig.should_compute_prox_logp()`` once; for ``hybrid`` that
asks :meth:`Calibrator.decide`. Every process that decides also sees the step's reduced statistics
(the trainer exports them every step, on every rank), and :func:`observe` feeds them back, so all
ranks take the same decision. Workers never decide: their loss trains on the recompute exactly when
the batch carries it, so controller and workers agree on which steps have ground truth.

    step s recomputes  <=>  s % calibration_interval == 0  or  escalated
    after a recompute step: escalated = error(fallback vs recompute) > error_threshold

Across a resume (AReaL's recover, :mod:`areal_a3po.coupling.recover`): :meth:`Calibrator.state_dict`
is saved beside AReaL's recover checkpoint of global step g, and :func:`resume` makes every
calibrator of the new process continue at g + 1. The step always comes from AReaL's checkpoint (the
schedule follows the global step). ``escalated`` and the last error are restored when the saved
state is that of step g after its statistics were observed; otherwise (no saved state, other
options, or a kill between AReaL's checkpoint and the export of step g's statistics on a
calibration step) they are re-derived: step g + 1 recomputes, and its error sets ``escalated``
again. A recompute is always correct, so the re-derivation costs one forward, never accuracy.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from areal_a3po import keys
from areal_a3po.config import A3POConfig

_LIVE: weakref.WeakSet[Calibrator] = weakref.WeakSet()
STATE_FORMAT = 1


@dataclass(frozen=True)
class ResumePoint:
    """Where a resumed process continues: after AReaL's checkpoint of ``global_step``."""

    global_step: int
    saved: tuple[dict[str, Any], ...] = ()  # Calibrator.state_dict() of the checkpointed run


_RESUME: ResumePoint | None = None


def options_fingerprint(options: A3POConfig) -> dict[str, Any]:
    """The options a saved decision state depends on (a change invalidates ``escalated``)."""
    return {
        "fallback": options.fallback,
        "error_metric": options.error_metric,
        "calibration_interval": int(options.calibration_interval),
        "error_threshold": float(options.error_threshold),
    }


@dataclass(eq=False)
class Calibrator:
    options: A3POConfig
    step: int = -1  # the global step of the last decision
    escalated: bool = False
    last_error: float | None = None
    observed_step: int = -1  # the step whose exported statistics were last observed
    decisions: list[bool] = field(default_factory=list)  # this process's decisions, in order
    resumed: str | None = None  # how the state was resumed (None: a fresh run)

    def __post_init__(self) -> None:
        _LIVE.add(self)
        if _RESUME is not None:
            self.resume_at(_RESUME)

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
        self.observed_step = self.step
        error = next((v for k, v in stats.items() if k.endswith(self.error_key)), None)
        if error is None:
            return
        self.last_error = float(error)
        self.escalated = self.last_error > self.options.error_threshold

    def state_dict(self) -> dict[str, Any]:
        """JSON-able decision state (saved beside AReaL's recover checkpoint)."""
        return {
            "format": STATE_FORMAT,
            "options": options_fingerprint(self.options),
            "step": self.step,
            "recomputed": bool(self.decisions[-1]) if self.decisions else None,
            "observed_step": self.observed_step,
            "escalated": self.escalated,
            "last_error": self.last_error,
        }

    def resume_at(self, point: ResumePoint) -> str:
        """Continue after the checkpoint of ``point.global_step``; returns what was done."""
        g = point.global_step
        self.step, self.observed_step, self.decisions = g, g, []
        self.escalated, self.last_error = True, None
        state = _matching_state(point.saved, self.options)
        if state is None:
            why = "no saved state for these actor.a3po options"
        elif state["step"] != g:
            why = f"the saved state is of step {state['step']}, AReaL's checkpoint of step {g}"
        elif state["observed_step"] != g and state["recomputed"]:
            why = f"step {g} was a calibration step whose error was not saved before the stop"
        else:  # complete: step g observed, or step g did not recompute (nothing to observe)
            self.escalated, self.last_error = bool(state["escalated"]), state["last_error"]
            self.resumed = (
                f"restored at global step {g}: escalated={self.escalated}, "
                f"last_error={self.last_error}; next step {g + 1}"
            )
            return self.resumed
        if state is not None and state["step"] == g:
            self.last_error = state["last_error"]
        self.resumed = f"re-derived at global step {g} ({why}): step {g + 1} recomputes"
        return self.resumed


def _matching_state(saved, options: A3POConfig) -> dict[str, Any] | None:
    want = options_fingerprint(options)
    for state in saved:
        if (
            isinstance(state, dict)
            and state.get("format") == STATE_FORMAT
            and state.get("options") == want
        ):
            return state
    return None


def observe(stats: dict[str, float]) -> None:
    """Feed one export of reduced statistics to every calibrator of this process."""
    for calibrator in list(_LIVE):
        calibrator.observe(stats)


def live() -> list[Calibrator]:
    """The calibrators of this process (those whose configs are alive)."""
    return list(_LIVE)


def resume(point: ResumePoint | None) -> list[str]:
    """Set where this process continues (None: a fresh run); applies to live and later calibrators."""
    global _RESUME
    _RESUME = point
    if point is None:
        return []
    return [cal.resume_at(point) for cal in list(_LIVE)]
