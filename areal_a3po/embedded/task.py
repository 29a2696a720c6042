"""Synthetic verifiable task for the embedded default: "which letter comes next?".

Prompt ``"c+1="``, answer ``"d"`` (cyclic over ``LETTERS``: ``"h+1="`` -> ``"a"``). The tokenizer is
character level, so the prompt is 4 tokens. The reward is 1.0 when the first generated token is
the answer, else 0.0; the rest of the completion (up to ``MAX_NEW_TOKENS``) is ignored. Rewards
are computed from token ids, not from decoded text.

Why this task: the answer is a single token from a small vocabulary (``len(VOCAB) + 2`` = 13 ids),
so the randomly initialised model (near-uniform next-token distribution) is right about
1/13 ~ 8% of the time from step 0 -- with 8 samples per prompt about half of the groups contain a
success, which gives GRPO a signal from the first step. Learning it needs a real input-dependent
mapping (an 8-way successor table read 3 positions back, not a constant answer), which the 2-layer
model picks up in a few tens of steps at a high learning rate.
"""

from __future__ import annotations

import random
from typing import Any

LETTERS = tuple("abcdefgh")
VOCAB = ("+", "1", "=", *LETTERS)  # characters; the tokenizer puts <pad> (0) and <eos> (1) in front
PROMPT_LEN = 4  # letter, "+", "1", "="
MAX_NEW_TOKENS = 3
# One sequence per micro-batch: two of the shortest sequences (PROMPT_LEN + 1) never fit in one.
MAX_SEQ_LEN = PROMPT_LEN + MAX_NEW_TOKENS
assert 2 * (PROMPT_LEN + 1) > MAX_SEQ_LEN


def successor(letter: str) -> str:
    return LETTERS[(LETTERS.index(letter) + 1) % len(LETTERS)]


def make_example(letter: str) -> dict[str, Any]:
    return {"prompt": f"{letter}+1=", "answer": successor(letter)}


def build_dataset(size: int, seed: int) -> list[dict[str, Any]]:
    """``size`` prompts, letters drawn uniformly with a fixed seed (balanced in each block of 8)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    while len(rows) < size:
        block = list(LETTERS)
        rng.shuffle(block)
        rows.extend(make_example(c) for c in block)
    return rows[:size]


def build_hf_dataset(size: int, seed: int):
    from datasets import Dataset

    return Dataset.from_list(build_dataset(size, seed))


# --- RLVRWorkflow hooks (passed to AReaL's workflow as import strings) --------------------------


def extract_prompt(data: dict[str, Any]) -> str:
    """``data_extract_prompt_fn``: the raw prompt text (no chat template for this tokenizer)."""
    return data["prompt"]


def get_input_ids(prompt: str, tokenizer, enable_thinking: bool = False) -> list[int]:
    """``get_input_ids_fn``: character-level encoding, no special tokens, no chat template."""
    del enable_thinking
    return list(tokenizer.encode(prompt, add_special_tokens=False))


def token_id(char: str) -> int:
    """Id of a task character: the tokenizer is ``SPECIAL_TOKENS + VOCAB`` in order (embedded.model)."""
    return 2 + VOCAB.index(char)


def reward_fn(prompt, completions, prompt_ids, completion_ids, answer=None, **kwargs) -> float:
    """1.0 if the first generated token is the answer token, else 0.0."""
    del prompt, completions, prompt_ids, kwargs
    if answer is None or not completion_ids:
        return 0.0
    return 1.0 if int(completion_ids[0]) == token_id(answer) else 0.0
