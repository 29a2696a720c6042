"""Entry script of the multi-turn SmolLM2 recipes (``recipes/cpu_smollm2_multiturn_*.yaml``).

    python3 -m areal_a3po.testbeds.smollm2.train_multiturn \\
        --config recipes/cpu_smollm2_multiturn_a3po.yaml scheduler.type=local

The single-turn entry (:mod:`areal_a3po.testbeds.smollm2.train`: config, model, splits, AReaL's
``PPOTrainer`` and evaluator) with another training workflow: AReaL's ``MultiTurnWorkflow``, as
:class:`~areal_a3po.testbeds.smollm2.workflow.FixedLengthMultiTurnWorkflow` (fixed-length turns,
one trajectory per CPU micro-batch). A wrong answer gets AReaL's feedback message and one retry
(:data:`MAX_TURNS`, as AReaL's ``examples/multi_turn_math``); a correct answer in the second turn
earns ``rollout.agent.turn_discount`` (AReaL's key for the multi-turn reward discount; the recipes
set 0.9, as that example). The reward is the exact-answer score
(:func:`areal_a3po.testbeds.smollm2.task.exact_reward_fn`: reasoning-gym's partial credit would stop
the retry). AReaL's evaluator is the single-turn twins' (one greedy answer per held-out prompt,
the task's reward), so ``eval-rollout/reward`` is comparable with theirs.
"""

from __future__ import annotations

import sys
from typing import Any

from areal_a3po.testbeds.smollm2 import train as single_turn

WORKFLOW = "areal_a3po.testbeds.smollm2.workflow.FixedLengthMultiTurnWorkflow"
REWARD_FN = f"{single_turn.TASK}.exact_reward_fn"
# Turns per trajectory: the first answer and one retry. With fixed-length turns no other count
# keeps one trajectory per micro-batch at this task's prompt and feedback lengths
# (check_lengths says why for a given config).
MAX_TURNS = 2


def workflow_kwargs(config) -> dict[str, Any]:
    """The training workflow's arguments (text and numbers: they travel to the rollout worker)."""
    return dict(
        reward_fn=REWARD_FN, gconfig=config.gconfig, tokenizer=config.tokenizer_path,
        max_turns=MAX_TURNS, turn_discount=config.rollout.agent.turn_discount,
    )  # fmt: skip


def check_turn_discount(config) -> None:
    """``rollout.agent.turn_discount`` in (0, 1] (AReaL's workflow refuses others, unnamed)."""
    discount = config.rollout.agent.turn_discount
    if not 0.0 < discount <= 1.0:
        raise ValueError(
            f"rollout.agent.turn_discount={discount}: must be in (0, 1] (the reward of a correct "
            "answer in turn t is multiplied by it t - 1 times)"
        )


def check_lengths(config, prompt_lens: list[int], feedback_len: int) -> None:
    """Every trajectory fits the model and one micro-batch, and no two fit one together.

    With fixed-length turns of ``gconfig.max_new_tokens`` tokens the shortest trajectory is one
    turn (prompt + max_new_tokens) and the longest :data:`MAX_TURNS` turns, each turn after the
    first behind an EOS (the workflow adds it after a turn cut by length) and the feedback message.
    The micro-batch rule is the single-turn entry's
    (:func:`~areal_a3po.testbeds.smollm2.train.micro_batch_problems`), and ``vllm.max_model_len``
    must hold the longest (the last turn's request is all of it).
    """
    new = config.gconfig.max_new_tokens
    longest = max(prompt_lens) + MAX_TURNS * new + (MAX_TURNS - 1) * (1 + feedback_len)
    what = (
        f"longest prompt {max(prompt_lens)} + {MAX_TURNS} turns of gconfig.max_new_tokens={new} "
        f"+ {MAX_TURNS - 1} x (EOS + feedback of {feedback_len} tokens)"
    )
    shortest = f"one turn: shortest prompt {min(prompt_lens)} + {new}"
    problems = single_turn.micro_batch_problems(
        config, longest, what, min(prompt_lens) + new, shortest
    )
    if config.vllm.max_model_len < longest:
        problems.append(
            f"vllm.max_model_len={config.vllm.max_model_len}: must be >= {longest} ({what})"
        )
    if problems:
        raise ValueError(
            "config does not fit the multi-turn SmolLM2 entry script: " + "; ".join(problems)
        )


def main(argv: list[str]) -> None:
    run = single_turn.prepare(argv)  # first: loopback mode is set before AReaL is imported

    from areal_a3po.testbeds.smollm2.workflow import FixedLengthMultiTurnWorkflow

    kwargs = workflow_kwargs(run.config)
    check_turn_discount(run.config)
    feedback_len = FixedLengthMultiTurnWorkflow(**kwargs).feedback_len
    check_lengths(run.config, run.prompt_lens, feedback_len)
    single_turn.train(run, WORKFLOW, kwargs)


if __name__ == "__main__":
    main(sys.argv[1:])
