"""GRPO on GSM8K (the gsm8k recipes), AReaL's own loop.

    python3 -m areal_a3po.entry.gsm8k_grpo --config recipes/gsm8k_grpo_qwen2.5-1.5b_a3po.yaml \
        scheduler.type=local

Follows AReaL's ``examples/math/gsm8k_rl.py`` at tag v1.0.4: AReaL's GSM8K loader
(``areal.dataset.get_custom_dataset``, ``train`` and ``test`` splits), AReaL's GSM8K reward
(``areal.reward.gsm8k.gsm8k_reward_fn``), ``RLVRWorkflow`` without thinking, evaluation at
temperature 0.6. At AReaL commit a0f3dca20 (after that tag; the PyPI areal 1.0.4 wheel ships no
examples) that example uses ``MathAgent`` instead, an agent workflow that needs OpenAI-proxy
workers: AReaL raises NotImplementedError for it in SPMD mode and under the Ray scheduler, and its
reward differs. ``RLVRWorkflow`` is a
``RolloutWorkflow`` and runs in every launch mode, with the same reward at every AReaL version.
"""

from __future__ import annotations

import sys
from typing import Any

from areal_a3po.entry import _areal_api

REWARD_FN = "areal.reward.gsm8k.gsm8k_reward_fn"
ENABLE_THINKING = False
EVAL_TEMPERATURE = 0.6


def workflow_kwargs(config: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of ``RLVRWorkflow`` for training and for evaluation."""
    train = dict(
        reward_fn=REWARD_FN,
        gconfig=config.gconfig,
        tokenizer=config.tokenizer_path,
        enable_thinking=ENABLE_THINKING,
    )
    return train, {**train, "gconfig": config.gconfig.new(temperature=EVAL_TEMPERATURE)}


def build_datasets(config: Any, tokenizer: Any) -> tuple[Any, Any]:
    train = _areal_api.custom_dataset("train", config.train_dataset, tokenizer)
    valid = None
    if config.valid_dataset is not None:
        valid = _areal_api.custom_dataset("test", config.valid_dataset, tokenizer)
    return train, valid


def load_config(argv: list[str]) -> Any:
    return _areal_api.load_config(argv)


def main(argv: list[str]) -> None:
    """``--config RECIPE [overrides]``; AReaL's Ray launcher calls this with the argument list."""
    _areal_api.run_entry(argv, build_datasets, workflow_kwargs)


if __name__ == "__main__":
    main(sys.argv[1:])
