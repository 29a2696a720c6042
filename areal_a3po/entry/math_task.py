"""Task pieces of the DAPO-Math recipe: the JSONL loader and the reward.

They live in a module (not in the entry script) because single-controller workers import them by
name. The data format is the one AReaL's ``examples/math/boba_grpo.py`` reads: one JSON object per
line with a string ``prompt`` and a list ``solutions`` (docs/recipes.md converts DAPO-Math-17k).
Rows become AReaL's chat format (``messages``), so ``RLVRWorkflow``'s default prompt functions
apply the chat template, as for AReaL's GSM8K loader.
"""

from __future__ import annotations

import os
from typing import Any

from areal_a3po.entry import _areal_api

MAX_PROMPT_TOKENS = 1024  # boba_grpo.py's prompt-length filter; train_dataset.max_length overrides


def load_jsonl_dataset(path: str, tokenizer: Any, max_prompt_tokens: int | None = None) -> Any:
    """``{"prompt", "solutions"}`` JSONL -> HF dataset with ``messages`` and ``solutions``.

    Prompts longer than ``max_prompt_tokens`` tokens (default :data:`MAX_PROMPT_TOKENS`) are
    dropped, as boba_grpo.py does.
    """
    from datasets import load_dataset

    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"train_dataset.path={path!r} is not a file. Convert DAPO-Math-17k to JSONL first "
            "(docs/recipes.md, 'Preparing DAPO-Math-17k') and pass train_dataset.path=FILE; in "
            "SPMD mode every node reads it, so put it on shared storage."
        )
    data = load_dataset("json", split="train", data_files=path)
    missing = {"prompt", "solutions"} - set(data.column_names)
    if missing:
        raise ValueError(
            f"{path}: rows need a string 'prompt' and a list 'solutions'; missing "
            f"{sorted(missing)} (columns: {data.column_names}). See docs/recipes.md."
        )
    limit = MAX_PROMPT_TOKENS if max_prompt_tokens is None else max_prompt_tokens
    data = data.filter(lambda row: len(tokenizer.encode(row["prompt"])) <= limit)
    if data.num_rows == 0:
        raise ValueError(f"{path}: no prompt is within {limit} tokens (train_dataset.max_length)")
    data = data.map(lambda row: {"messages": [{"role": "user", "content": row["prompt"]}]})
    return data.remove_columns([c for c in data.column_names if c not in ("messages", "solutions")])


def reward_fn(
    prompt: Any,
    completions: str,
    prompt_ids: Any,
    completion_ids: Any,
    solutions: list[str],
    **kwargs: Any,
) -> float:
    """1.0 if the completion matches any of ``solutions`` under AReaL's math-verify grader."""
    worker = _areal_api.math_verify_worker()
    for solution in solutions:
        if worker.verify(str(completions), str(solution)) == 1.0:
            return 1.0
    return 0.0
