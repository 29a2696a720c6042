"""The held-out evaluations of a resumed run fall on the steps of an uninterrupted one.

AReaL's own ``Evaluator`` (``areal.utils.evaluator``, its ``EvaluatorConfig`` and
``FinetuneSpec``) is driven through the steps in the trainer's order: AReaL (1.0.4, 2.0.0, main
cbff54d) saves the recover checkpoint before the evaluator's check of the step; the other order is
checked too, should a later AReaL check first. The checkpoint's
evaluator state is what ``RecoverHandler.dump`` receives from the plugin's wrapper
(``coupling.recover.evaluator_after_check``), through JSON as ``RecoverInfo`` writes
``evaluator_info.json``; a fresh evaluator loads it, as ``RecoverHandler.load`` does, and goes on.
The weights' checkpoint is not involved: nothing here trains.
"""

from __future__ import annotations

import inspect
import json

import pytest

from areal_a3po.coupling import recover

FREQ, STEPS, CHECKPOINT = 5, 20, 9  # evaluator.freq_steps; the SmolLM2 twins' 20 steps
EVERY_STEP = [0, 4, 9, 14, 19]  # eval_before_train, then every FREQ checks


def _evaluator():
    from areal.api.cli_args import EvaluatorConfig
    from areal.api.io_struct import FinetuneSpec
    from areal.utils.evaluator import Evaluator

    config = EvaluatorConfig(
        experiment_name="e", trial_name="t", fileroot="/unused", freq_steps=FREQ,
        eval_before_train=True,
    )  # fmt: skip
    return Evaluator(
        config, FinetuneSpec(total_train_epochs=1, dataset_size=256, train_batch_size=1)
    )


def _step_info(step: int):
    from areal.api.io_struct import StepInfo

    return StepInfo(epoch=0, epoch_step=step, global_step=step, steps_per_epoch=256)


def _run(evaluator, steps: range, order: str, fix: bool = True) -> tuple[list[int], dict]:
    """The trainer's loop: per step the checkpoint's evaluator state and the evaluator's check,
    in ``order``; the steps that evaluated and the state saved at CHECKPOINT (JSON)."""
    evaluated, saved = [], {}

    def checkpoint(step: int) -> None:
        info = _step_info(step)
        state = (recover.evaluator_after_check(evaluator, info) if fix else evaluator).state_dict()
        if step == CHECKPOINT:
            saved.update(json.loads(json.dumps(state)))

    for step in steps:
        if order == "checkpoint-first":
            checkpoint(step)
        evaluator.evaluate(lambda s=step: evaluated.append(s), 0, step, step)
        if order == "check-first":
            checkpoint(step)
    return evaluated, saved


@pytest.mark.parametrize("order", ["checkpoint-first", "check-first"])
def test_evaluator_resumed_from_checkpoint_evaluates_on_uninterrupted_steps(order):
    whole, saved = _run(_evaluator(), range(STEPS), order)
    assert whole == EVERY_STEP  # the copy handed to the checkpoint leaves the live one alone
    resumed = _evaluator()
    resumed.load_state_dict(saved)
    after, _ = _run(resumed, range(CHECKPOINT + 1, STEPS), order)
    assert [s for s in whole if s <= CHECKPOINT] + after == EVERY_STEP


def _installed_order() -> str:
    """The order of the installed AReaL's ``PPOTrainer.train``: checkpoint or evaluator first."""
    from areal.trainer.rl_trainer import PPOTrainer

    source = inspect.getsource(PPOTrainer.train)
    saves = ("self._save_recover_checkpoint(", "self._save_training_state(")  # main: the latter
    checkpoint = min(source.index(s) for s in saves if s in source)
    return "checkpoint-first" if checkpoint < source.index("self._evaluate(") else "check-first"


def test_evaluator_installed_areal_order_resumes_on_uninterrupted_steps():
    """The installed AReaL's own order, through the wrapper, evaluates on the uninterrupted steps
    after a resume; 1.0.4, 2.0.0 and main cbff54d all checkpoint first."""
    order = _installed_order()
    assert order == "checkpoint-first", "this AReaL checks first: the wrapper has nothing to do"
    whole, saved = _run(_evaluator(), range(STEPS), order)
    resumed = _evaluator()
    resumed.load_state_dict(saved)
    after, _ = _run(resumed, range(CHECKPOINT + 1, STEPS), order)
    assert whole == EVERY_STEP and [s for s in whole if s <= CHECKPOINT] + after == EVERY_STEP


def test_evaluator_state_saved_before_the_check_shifts_the_resumed_schedule():
    """Why the wrapper exists: AReaL's order alone evaluates early after a resume."""
    whole, saved = _run(_evaluator(), range(STEPS), "checkpoint-first", fix=False)
    assert whole == EVERY_STEP
    resumed = _evaluator()
    resumed.load_state_dict(saved)
    after, _ = _run(resumed, range(CHECKPOINT + 1, STEPS), "checkpoint-first", fix=False)
    assert after == [10, 15]


def test_dump_wrapper_hands_areal_the_evaluator_after_the_check():
    """The patched ``RecoverHandler.dump`` gives AReaL's dump, called as the trainer calls it
    (``rl_trainer._save_recover_checkpoint``), the copy; a checked evaluator goes as it is."""
    from areal.utils.recover import RecoverHandler

    got = {}
    original = inspect.unwrap(RecoverHandler.dump)

    def record(*args, **kwargs):
        bound = inspect.signature(original).bind(*args, **kwargs)
        got.update(bound.arguments)

    record.__signature__ = inspect.signature(original)
    dump = recover._wrap_dump(record)
    evaluator = _evaluator()
    for step in range(CHECKPOINT):
        evaluator.evaluate(lambda: None, 0, step, step)
    handler = object.__new__(RecoverHandler)
    handler.last_step_info = None
    dump(handler, {"default": None}, _step_info(CHECKPOINT), None, evaluator, None, None,
         tokenizer=None, processor=None)  # fmt: skip
    assert got["evaluator"] is not evaluator
    assert got["evaluator"].freq_ctl.step_ctl.total_steps == CHECKPOINT + 1
    assert evaluator.freq_ctl.step_ctl.total_steps == CHECKPOINT  # the live one is untouched
    evaluator.evaluate(lambda: None, 0, CHECKPOINT, CHECKPOINT)
    dump(handler, {"default": None}, _step_info(CHECKPOINT), None, evaluator, None, None)
    assert got["evaluator"] is evaluator
