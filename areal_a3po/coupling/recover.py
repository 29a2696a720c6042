"""``areal.utils.recover``: the plugin's small state beside AReaL's recover checkpoint.

AReaL's ``RecoverInfo`` has a fixed set of fields (step, saver, evaluator, stats logger,
dataloader, checkpoint frequency; areal 1.0.4 ``areal/utils/recover.py:40-50``, the same in 2.0.0
and main cbff54d) and no hook for extra state, so the plugin keeps its own file in AReaL's
``recover_info`` directory:

* ``RecoverHandler.dump``: when AReaL has written a checkpoint of global step g (it sets
  ``last_step_info`` to that step), the calibrators' state goes to ``a3po_state.json`` there
  (atomic: temporary file, fsync, rename). AReaL checkpoints before it exports step g's statistics
  (``rl_trainer.py:797`` before ``:854``; 2.0.0 ``:809`` before ``:866``; main cbff54d
  ``_save_training_state`` at ``:900`` before ``:959``), so the file is written again once they
  were observed (:func:`after_observe`, called by :mod:`.stats`).
* ``RecoverHandler.load``: when AReaL resumes from step g, every ``hybrid`` calibrator continues at
  g + 1 with the saved state, or re-derives it (:func:`areal_a3po.calibration.resume` says which).
* ``RecoverHandler.dump`` also gets the evaluator as it is once step g's check has run
  (:func:`evaluator_after_check`): AReaL checkpoints before that check too (``:797`` before
  ``:815``; 2.0.0 ``:809`` before ``:827``; main cbff54d ``:900`` before ``:920``), so the state it
  saves is one check behind and a resumed run would evaluate on other steps than an uninterrupted
  one (with ``evaluator.freq_steps: 5``, resumed from step 9: at 10 and 15, not 14 and 19).

Of the providers only ``hybrid`` has state across steps; the others need none (token lags come
from the weight versions AReaL restores). Written on rank 0 / the controller only, like AReaL's
own files.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import json
import os
import tempfile
import weakref
from types import ModuleType
from typing import Any

from areal_a3po import calibration
from areal_a3po.coupling import gate

STATE_FILE = "a3po_state.json"

_PENDING: tuple[str, int] | None = None  # (file, global step) awaiting step g's statistics
_ANNOUNCED: weakref.WeakSet = weakref.WeakSet()  # resumed calibrators whose outcome was logged


def write_state(path: str, global_step: int) -> None:
    """Atomically write the live calibrators' state for the checkpoint of ``global_step``."""
    payload = {
        "global_step": global_step,
        "calibrators": [cal.state_dict() for cal in calibration.live()],
    }
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{STATE_FILE}.", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(payload, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with _suppress_os_error():
            os.unlink(tmp)
        raise


def read_state(path: str) -> tuple[dict[str, Any], ...] | None:
    """The saved calibrator states, or None (with a warning naming the file) if unreadable."""
    try:
        with open(path) as fh:
            payload = json.load(fh)
        states = payload["calibrators"]
        if not isinstance(states, list):
            raise TypeError("'calibrators' is not a list")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        gate.logger().warning(f"ignoring unreadable plugin state {path}: {exc}")
        return None
    return tuple(states)


def after_observe() -> None:
    """After each export: log how resumed calibrators continued; rewrite the pending state file
    once the checkpointed step's statistics were observed."""
    global _PENDING
    for cal in calibration.live():
        if cal.resumed is not None and cal not in _ANNOUNCED:
            _ANNOUNCED.add(cal)
            gate.logger().info(f"hybrid calibration {cal.resumed}")
    if _PENDING is None:
        return
    path, step = _PENDING
    cals = calibration.live()
    if cals and all(cal.observed_step >= step for cal in cals):
        _PENDING = None
        if all(cal.step == step for cal in cals):  # still the checkpointed step
            write_state(path, step)


class _suppress_os_error:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is not None and issubclass(exc_type, OSError)


def _writes_here() -> bool:
    import torch.distributed as dist

    return not dist.is_initialized() or dist.get_rank() == 0


def _state_path(handler) -> str:
    cfg = handler.config
    root = handler.recover_info_path(cfg.experiment_name, cfg.trial_name, cfg.fileroot)
    return os.path.join(root, STATE_FILE)


def evaluator_after_check(evaluator: Any, step_info: Any) -> Any:
    """``evaluator`` (AReaL's ``Evaluator``) as it is once the check of ``step_info``'s step g ran.

    The trainer checks once per global step (0, 1, ..., g), so an evaluator that has counted g
    checks has step g's still to come: then a copy that has made it (through AReaL's own
    ``Evaluator.evaluate``, with nothing to evaluate), else the evaluator itself.
    """
    if evaluator.freq_ctl.step_ctl.total_steps != step_info.global_step:
        return evaluator  # checked already, or not checked every step (no held-out set)
    after = copy.copy(evaluator)
    after.freq_ctl = dataclasses.replace(evaluator.freq_ctl)  # fresh counters ...
    after.load_state_dict(evaluator.state_dict())  # ... holding the evaluator's state
    after.evaluate(lambda: None, step_info.epoch, step_info.epoch_step, step_info.global_step)
    return after


def _wrap_dump(dump):
    signature = inspect.signature(dump)

    @functools.wraps(dump)
    def wrapped(self, engine, step_info, *args, **kwargs):
        global _PENDING
        bound = signature.bind(self, engine, step_info, *args, **kwargs)
        bound.arguments["evaluator"] = evaluator_after_check(
            bound.arguments["evaluator"], step_info
        )
        out = dump(*bound.args, **bound.kwargs)
        if self.last_step_info is step_info and calibration.live() and _writes_here():
            path = _state_path(self)
            write_state(path, step_info.global_step)
            _PENDING = (path, step_info.global_step)
            after_observe()  # already observed (statistics exported before the checkpoint)
        return out

    return wrapped


def _wrap_load(load):
    @functools.wraps(load)
    def wrapped(self, *args, **kwargs):
        info = load(self, *args, **kwargs)
        if info is None:
            calibration.resume(None)
            return info
        path = _state_path(self)
        saved = read_state(path)
        point = calibration.ResumePoint(info.last_step_info.global_step, saved or ())
        calibration.resume(point)
        gate.logger().info(
            f"resuming after global step {point.global_step}: plugin state "
            + (f"{path} ({len(saved)} calibrator(s))" if saved is not None else "none saved")
        )
        return info

    return wrapped


def patch(module: ModuleType) -> None:
    handler = module.RecoverHandler
    handler.dump = _wrap_dump(handler.dump)
    handler.load = _wrap_load(handler.load)
    target = "areal.utils.recover.RecoverHandler."
    gate.record(
        target + "dump",
        f"hybrid's calibration state saved beside it ({STATE_FILE}); the evaluator's state "
        "saved as of after the checkpointed step's check",
    )
    gate.record(target + "load", "hybrid's calibration continues at the checkpointed step")
