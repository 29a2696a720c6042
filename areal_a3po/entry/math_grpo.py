"""GRPO on a math JSONL set (the DAPO-Math recipes), AReaL's own loop.

    python3 -m areal_a3po.entry.math_grpo --config recipes/dapo_math_grpo_qwen3-8b_a3po.yaml \
        scheduler.type=local

Follows AReaL's ``examples/math/boba_grpo.py`` (same at tag v1.0.4 and at commit a0f3dca20):
``PPOTrainer`` + ``RLVRWorkflow`` with thinking enabled, no validation set, no dynamic filter.
Differences, and why: data and reward come from :mod:`areal_a3po.entry.math_task` (importable in
every worker, no AReaL checkout needed), rows are chat ``messages`` so the workflow's default
prompt functions apply the chat template (boba also strips DeepSeek-R1 role tokens, which
DAPO-Math prompts do not contain), and the prompt-length limit is ``train_dataset.max_length``
when set (boba: 1024, also the default here).
"""

from __future__ import annotations

import sys
from typing import Any

from areal_a3po.entry import _areal_api

REWARD_FN = "areal_a3po.entry.math_task.reward_fn"
ENABLE_THINKING = True


def workflow_kwargs(config: Any) -> dict[str, Any]:
    """Keyword arguments of ``RLVRWorkflow`` for training (there is no evaluation workflow)."""
    return dict(
        reward_fn=REWARD_FN,
        gconfig=config.gconfig,
        tokenizer=config.tokenizer_path,
        enable_thinking=ENABLE_THINKING,
    )


def build_datasets(config: Any, tokenizer: Any) -> tuple[Any, None]:
    from areal_a3po.entry.math_task import load_jsonl_dataset

    train = load_jsonl_dataset(
        config.train_dataset.path, tokenizer, max_prompt_tokens=config.train_dataset.max_length
    )
    return train, None


def load_config(argv: list[str]) -> Any:
    return _areal_api.load_config(argv)


def main(argv: list[str]) -> None:
    """``--config RECIPE [overrides]``; AReaL's Ray launcher calls this with the argument list."""
    _areal_api.run_entry(argv, build_datasets, lambda config: (workflow_kwargs(config), None))


if __name__ == "__main__":
    main(sys.argv[1:])
