"""Synthetic verifiable task for the embedded default: "continue the alphabet".

Prompt: three consecutive letters of the cyclic alphabet ``LETTERS`` (``"fgh"``); the ideal
completion continues it (``"abcdefghabcdefgh"``, ``MAX_NEW_TOKENS`` letters). The tokenizer is
character level (vocabulary ``<pad>``, ``<eos>``, ``a``..``h``), so every letter is one token.

Reward (verifiable, from token ids only): the fraction of the ``MAX_NEW_TOKENS`` positions whose
token is the successor of the token before it (the first one is judged against the last prompt
letter), counted up to the first non-letter token (``<pad>``/``<eos>`` end the completion).
Partial credit everywhere: a random model scores about 0.03-0.06 on average and almost every group
of 8 samples has a nonzero spread, so GRPO gets a signal from the first step; the rule (a fixed
bigram table) is learnable by the 2-layer model in a few tens of steps at a high learning rate.
Plain on-policy policy gradient with the same model, batch (8 prompts x 8 samples) and learning
rate (5e-3) goes from ~0.06 to ~0.5-0.6 in 30 steps for seeds 1-3.

Completions are deliberately 16 tokens long: the rollout of one batch (64 sequences) then takes
~2 s on vLLM CPU with ``vllm.max_num_seqs: 4``, i.e. longer than AReaL's 1 s polling in
``prepare_batch``, so AReaL submits batches ahead (up to ``max_head_offpolicyness``) and trains on
samples generated with weights 1-2 versions old -- the asynchronous regime A-3PO is about.
"""

from __future__ import annotations

import random
from typing import Any

LETTERS = tuple("abcdefgh")
VOCAB = LETTERS  # characters; the tokenizer puts <pad> (0) and <eos> (1) in front
PROMPT_LEN = 3
MAX_NEW_TOKENS = 16
MAX_SEQ_LEN = PROMPT_LEN + MAX_NEW_TOKENS


def token_id(char: str) -> int:
    """Id of a task character: the tokenizer is ``SPECIAL_TOKENS + VOCAB`` in order (embedded.model)."""
    return 2 + VOCAB.index(char)


LETTER_IDS = frozenset(token_id(c) for c in LETTERS)
SUCCESSOR_ID = {
    token_id(c): token_id(LETTERS[(i + 1) % len(LETTERS)]) for i, c in enumerate(LETTERS)
}


def continuation(start: int, n: int) -> str:
    return "".join(LETTERS[(start + i) % len(LETTERS)] for i in range(n))


def make_example(start: int) -> dict[str, Any]:
    return {
        "query": continuation(start, PROMPT_LEN),
        "answer": continuation(start + PROMPT_LEN, MAX_NEW_TOKENS),  # for reading only
    }


def build_dataset(size: int, seed: int) -> list[dict[str, Any]]:
    """``size`` prompts with start letters drawn with a fixed seed (balanced in each block of 8)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    while len(rows) < size:
        block = list(range(len(LETTERS)))
        rng.shuffle(block)
        rows.extend(make_example(s) for s in block)
    return rows[:size]


def build_hf_dataset(size: int, seed: int):
    from datasets import Dataset

    return Dataset.from_list(build_dataset(size, seed))


def score(prompt_ids: list[int], completion_ids: list[int]) -> float:
    """Fraction of ``MAX_NEW_TOKENS`` positions holding the successor of the previous token."""
    if not prompt_ids:
        return 0.0
    prev = int(prompt_ids[-1])
    correct = 0
    for tok in completion_ids[:MAX_NEW_TOKENS]:
        tok = int(tok)
        if tok not in LETTER_IDS:
            break  # <pad>/<eos> (or anything else) ends the completion
        correct += SUCCESSOR_ID.get(prev) == tok
        prev = tok
    return correct / MAX_NEW_TOKENS


# --- RLVRWorkflow hooks (passed to AReaL's workflow as import strings) --------------------------


def extract_prompt(data: dict[str, Any]) -> str:
    """``data_extract_prompt_fn``: the raw prompt text (no chat template for this tokenizer)."""
    return data["query"]


def get_input_ids(prompt: str, tokenizer, enable_thinking: bool = False) -> list[int]:
    """``get_input_ids_fn``: character-level encoding, no special tokens, no chat template."""
    del enable_thinking
    return list(tokenizer.encode(prompt, add_special_tokens=False))


def reward_fn(prompt, completions, prompt_ids, completion_ids, **kwargs) -> float:
    """AReaL reward signature ``(prompt, completions, prompt_ids, completion_ids, **data)``."""
    del prompt, completions, kwargs
    return float(score(list(prompt_ids), list(completion_ids)))
