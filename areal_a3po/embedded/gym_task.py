"""A reasoning-gym task for the SmolLM2 recipes (``recipes/cpu_smollm2_*.yaml``).

reasoning-gym generates procedural tasks with their own scorers. This module fixes one task and
difficulty (:data:`TASK`, :data:`TASK_CONFIG`), chosen so that SmolLM2-135M-Instruct's pass rate
before training is clearly between 0 and 1 (measured: docs/benchmarks/smollm2/), and makes two
splits from disjoint seeds:

- training: ``reasoning_gym.create_dataset(TASK, size=n, seed=seed)``;
- held-out evaluation: the same with ``seed + EVAL_SEED_OFFSET``. reasoning-gym draws item ``i`` of a
  dataset from ``random.Random(seed + i)``, so the two splits use disjoint generator seeds as long
  as the training split has fewer than ``EVAL_SEED_OFFSET`` items (checked); questions that also
  occur in the training split are skipped (:func:`build_heldout_rows`).

Rows are chat prompts (``messages``; AReaL's RLVRWorkflow applies the tokenizer's chat template)
plus what the scorer needs to rebuild the reasoning-gym entry (``rg_seed``, ``rg_size``,
``rg_index``). The reward: the answer extracted from the decoded completion
(:func:`extract_answer`: the last number before the end-of-turn token) scored by the dataset's own
``score_answer(answer, entry)``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

TASK = "chain_sum"
# A sum or difference of two numbers of one or two digits. Measured before training (vLLM, 64
# held-out prompts, docs/benchmarks/smollm2/initial_pass_rate.json): greedy 0.14; sampled at
# T = 1.0 about 0.01 (the 135M model rambles), hence the recipes' temperature 0.7. Three terms:
# greedy 0.05. One-digit terms only: 200 distinct questions, no held-out split is left.
TASK_CONFIG: dict[str, Any] = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}
INSTRUCTION = " Reply with the final number only."
EVAL_SEED_OFFSET = 1_000_000
EVAL_SIZE = 64  # held-out prompts per evaluation
EVAL_POOL = 1024  # items drawn from the held-out seed, of which EVAL_SIZE unseen ones are used
END_OF_TURN = "<|im_end|>"

_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


@functools.lru_cache(maxsize=8)
def gym_dataset(seed: int, size: int):
    """The reasoning-gym dataset of :data:`TASK` with ``size`` items drawn from ``seed``."""
    import reasoning_gym

    return reasoning_gym.create_dataset(TASK, size=int(size), seed=int(seed), **TASK_CONFIG)


def eval_seed(seed: int) -> int:
    return int(seed) + EVAL_SEED_OFFSET


def build_rows(seed: int, size: int) -> list[dict[str, Any]]:
    """``size`` prompts of :data:`TASK` from ``seed``, one row each (see module doc)."""
    if size >= EVAL_SEED_OFFSET:
        raise ValueError(
            f"split of {size} items overlaps the held-out split's seeds (at most "
            f"{EVAL_SEED_OFFSET - 1}); lower total_train_steps or train_dataset.batch_size"
        )
    ds = gym_dataset(seed, size)
    return [
        {
            "messages": [{"role": "user", "content": ds[i]["question"] + INSTRUCTION}],
            "answer": ds[i]["answer"],
            "rg_seed": int(seed),
            "rg_size": int(size),
            "rg_index": i,
        }
        for i in range(size)
    ]


def build_heldout_rows(seed: int, train_rows: list[dict[str, Any]], size: int = EVAL_SIZE):
    """The held-out split: ``size`` items from :func:`eval_seed` whose question is not in training.

    Short sums repeat (two one-digit terms: 200 questions), so disjoint seeds alone would leave
    some training questions in the held-out split; they are skipped, in item order.
    """
    seen = {row["messages"][0]["content"] for row in train_rows}
    pool = build_rows(eval_seed(seed), EVAL_POOL)
    rows = [row for row in pool if row["messages"][0]["content"] not in seen][:size]
    if len(rows) < size:
        raise ValueError(f"only {len(rows)} held-out questions not in the training split")
    return rows


def build_hf_dataset(rows: list[dict[str, Any]]):
    from datasets import Dataset

    return Dataset.from_list(rows)


def prompt_lengths(tokenizer_path: str, rows) -> list[int]:
    """Token counts of the rows' prompts under the tokenizer's chat template (as RLVRWorkflow)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    out = []
    for row in rows:
        ids = tok.apply_chat_template(row["messages"], tokenize=True, add_generation_prompt=True)
        out.append(len(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return out


def extract_answer(completion: str) -> str | None:
    """The last number in the completion text before the end-of-turn token; None if there is none."""
    text = completion.split(END_OF_TURN, 1)[0]
    numbers = _NUMBER_RE.findall(text)
    return numbers[-1] if numbers else None


def score(completion: str, rg_seed: int, rg_size: int, rg_index: int) -> float:
    """reasoning-gym's own score of the answer extracted from ``completion``."""
    ds = gym_dataset(rg_seed, rg_size)
    return float(ds.score_answer(extract_answer(completion), ds[int(rg_index)]))


def reward_fn(prompt, completions, prompt_ids, completion_ids, **data) -> float:
    """AReaL reward signature ``(prompt, completions, prompt_ids, completion_ids, **row)``."""
    del prompt, prompt_ids, completion_ids
    return score(completions, data["rg_seed"], data["rg_size"], data["rg_index"])
