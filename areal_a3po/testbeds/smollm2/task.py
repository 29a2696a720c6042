"""A reasoning-gym task for the SmolLM2 recipes (``recipes/cpu_smollm2_*.yaml``).

reasoning-gym generates procedural tasks with their own scorers. This module fixes one task and
difficulty (:data:`TASK`, :data:`TASK_CONFIG`), chosen so that SmolLM2-135M-Instruct's pass rate
before training is clearly between 0 and 1 (measured: docs/benchmarks/smollm2/), and makes two
splits from disjoint generator seeds:

- held-out evaluation (:func:`build_heldout_rows`): one set shared by every seed and arm, the
  first :data:`EVAL_SIZE` distinct questions of ``reasoning_gym.create_dataset(TASK,
  size=HELDOUT_POOL, seed=HELDOUT_SEED)``. It depends on no run setting, so every run is scored on
  the same prompts and the untrained model's score on them is one number
  (docs/benchmarks/smollm2/heldout_untrained.json);
- training (:func:`build_train_rows`): the first ``n`` items of ``create_dataset(TASK, seed=seed)``
  whose question is not in the held-out set. Short sums repeat (one-digit terms: 200 questions,
  half the items), so the items whose question is held out are skipped and more items are drawn
  in their place, in item order: the split keeps its size and never shows a held-out question.

reasoning-gym draws item ``i`` of a dataset from ``random.Random(seed + i)``, so the two splits use
disjoint generator seeds as long as the training split's items ``seed .. seed + drawn - 1`` stay
clear of ``HELDOUT_SEED .. HELDOUT_SEED + HELDOUT_POOL - 1`` (checked: :func:`build_rows`,
:func:`build_train_rows`).

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
# held-out prompts of the former per-seed split, seed 1's: docs/benchmarks/smollm2/
# initial_pass_rate.json): greedy 0.14; sampled at T = 1.0 about 0.01 (the 135M model rambles),
# hence the recipes' temperature 0.7. Three terms: greedy 0.05. One-digit terms only: 200 distinct
# questions, no held-out set is left. The shared held-out set holds one-digit sums in their share
# of the task (about half); the former split, filtered against 1024 training items, held almost
# none (9 of 64). Untrained greedy score on the shared set: 0.1406
# (docs/benchmarks/smollm2/heldout_untrained.json).
TASK_CONFIG: dict[str, Any] = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}
INSTRUCTION = " Reply with the final number only."
HELDOUT_SEED = 1_000_000  # reasoning-gym seed of the held-out set, far above any training seed
EVAL_SIZE = 64  # held-out prompts (distinct questions) per evaluation
HELDOUT_POOL = 2 * EVAL_SIZE  # items drawn from HELDOUT_SEED, of which the first distinct are used
END_OF_TURN = "<|im_end|>"

_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


@functools.lru_cache(maxsize=8)
def gym_dataset(seed: int, size: int):
    """The reasoning-gym dataset of :data:`TASK` with ``size`` items drawn from ``seed``."""
    import reasoning_gym

    return reasoning_gym.create_dataset(TASK, size=int(size), seed=int(seed), **TASK_CONFIG)


def _rows(seed: int, size: int, indices) -> list[dict[str, Any]]:
    ds = gym_dataset(seed, size)
    return [
        {
            "messages": [{"role": "user", "content": ds[i]["question"] + INSTRUCTION}],
            "answer": ds[i]["answer"],
            "rg_seed": int(seed),
            "rg_size": int(size),
            "rg_index": i,
        }
        for i in indices
    ]


def question(row: dict[str, Any]) -> str:
    """The prompt text of a row (what two rows must not share across the splits)."""
    return row["messages"][0]["content"]


def build_rows(seed: int, size: int) -> list[dict[str, Any]]:
    """``size`` prompts of :data:`TASK` from ``seed``, one row each, unfiltered (see module doc).

    Raises ValueError when the items' generator seeds ``seed .. seed + size - 1`` meet the held-out
    set's.
    """
    _check_clear_of_heldout(seed, size)
    return _rows(seed, size, range(int(size)))


def _check_clear_of_heldout(seed: int, size: int) -> None:
    low, high = HELDOUT_SEED, HELDOUT_SEED + HELDOUT_POOL  # the held-out items' seeds, [low, high)
    if int(seed) < high and low < int(seed) + int(size):
        raise ValueError(
            f"split of {size} items from seed {seed} (generator seeds {seed} to "
            f"{int(seed) + int(size) - 1}) overlaps the held-out split's seeds ({low} to "
            f"{high - 1}); use another seed, or lower total_train_steps or "
            "train_dataset.batch_size"
        )


def build_heldout_rows(size: int = EVAL_SIZE) -> list[dict[str, Any]]:
    """The held-out set shared by every seed and arm: the first ``size`` distinct questions drawn
    from :data:`HELDOUT_SEED` (a function of :data:`TASK_CONFIG` alone)."""
    rows, seen = [], set()
    for row in _rows(HELDOUT_SEED, HELDOUT_POOL, range(HELDOUT_POOL)):
        if question(row) not in seen:
            seen.add(question(row))
            rows.append(row)
    if len(rows) < size:
        raise ValueError(f"only {len(rows)} distinct questions in {HELDOUT_POOL} held-out items")
    return rows[:size]


def heldout_questions() -> frozenset[str]:
    return frozenset(question(row) for row in build_heldout_rows())


def heldout_digest(rows: list[dict[str, Any]] | None = None) -> str:
    """SHA-256 of the held-out prompts and answers, in order (default: :func:`build_heldout_rows`).

    Kept with every score measured on the set, so that a score of another set is never taken for
    it (``benchmarks/validity.py`` refuses a baseline whose digest differs).
    """
    import hashlib

    rows = build_heldout_rows() if rows is None else rows
    text = "\n".join(f"{question(r)}\t{r['answer']}" for r in rows)
    return hashlib.sha256(text.encode()).hexdigest()


def build_train_rows(seed: int, size: int) -> list[dict[str, Any]]:
    """The training split of ``seed``: its first ``size`` items whose question is not held out.

    Items are drawn in order; those whose question is in :func:`build_heldout_rows` are skipped and
    more are drawn instead, so the split has ``size`` rows. Every row's ``rg_size`` is the number of
    items drawn (the last kept index + 1), whose generator seeds are checked as in
    :func:`build_rows`.
    """
    if size < 1:
        raise ValueError(f"a training split needs at least one item, got size={size}")
    held = heldout_questions()
    drawn = int(size)
    while True:
        ds = gym_dataset(seed, drawn)
        keep = [i for i in range(drawn) if ds[i]["question"] + INSTRUCTION not in held]
        if len(keep) >= size:
            break
        drawn += 2 * (int(size) - len(keep)) + 16
    drawn = keep[size - 1] + 1
    _check_clear_of_heldout(seed, drawn)
    return _rows(seed, drawn, keep[:size])


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


def exact_reward_fn(prompt, completions, prompt_ids, completion_ids, **data) -> float:
    """1.0 for the exact answer, else 0.0: the multi-turn recipes' reward.

    reasoning-gym's scorer gives partial credit ``len(reference) / len(answer)`` to a wrong answer
    that contains the reference (``13`` for ``3``), and AReaL's ``MultiTurnWorkflow`` retries only
    while the reward is exactly 0.0, so every wrong answer must score 0.0 to get its feedback turn.
    """
    return float(reward_fn(prompt, completions, prompt_ids, completion_ids, **data) == 1.0)
