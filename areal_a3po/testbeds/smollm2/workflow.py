"""The multi-turn SmolLM2 recipes' rollout workflow: AReaL's ``MultiTurnWorkflow``, fixed-length turns.

AReaL's ``MultiTurnWorkflow`` (``areal/workflow/multi_turn.py``) answers a prompt, scores the
answer, and while the reward is exactly 0.0 and turns are left appends AReaL's feedback message
(a user turn: the answer was wrong, try again) and generates again; the reward is multiplied by
``turn_discount`` for every turn after the first. One trajectory holds every turn: generated tokens
carry their weight version and loss mask 1, the prompt, the feedback and the EOS it adds after a
turn cut by length carry version -1 and loss mask 0.

On CPU one micro-batch must hold one trajectory (packed trajectories leak attention: AReaL's FSDP
engine passes no mask and CPU attention has no varlen kernel), which needs every trajectory longer
than half of ``actor.mb_spec.max_tokens_per_mb``. A correct first answer is a few tokens and a
two-turn trajectory more than a hundred, so no cap fits both with free-length turns. Here every
turn runs to ``gconfig.max_new_tokens`` (no stop tokens, ``ignore_eos``), as the tiny testbed's
completions do: a one-turn trajectory is prompt + max_new_tokens, a two-turn one prompt + 2 x
max_new_tokens + EOS + feedback, and both fit one cap (checked by the entry script,
:func:`areal_a3po.testbeds.smollm2.train_multiturn.check_lengths`). The rewards are unchanged:
the task's scorer reads the answer before the first end-of-turn token
(:func:`areal_a3po.testbeds.smollm2.task.extract_answer`); what a turn generates after it is
trained with the turn's advantage, as in the tiny testbed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from areal.workflow.multi_turn import MultiTurnWorkflow


class FixedLengthMultiTurnWorkflow(MultiTurnWorkflow):
    """``MultiTurnWorkflow`` whose turns are always ``max_new_tokens`` long.

    ``reward_fn`` and ``tokenizer`` may be given as an import path and a tokenizer path, as for
    AReaL's ``RLVRWorkflow``, so that the workflow's arguments travel to the rollout worker as text.
    """

    def __init__(
        self,
        reward_fn: Callable[..., Any] | str,
        gconfig,
        tokenizer,
        max_turns: int,
        turn_discount: float,
    ) -> None:
        if isinstance(reward_fn, str):
            from areal.utils.dynamic_import import import_from_string

            reward_fn = import_from_string(reward_fn)
        if isinstance(tokenizer, str):
            from areal.utils.hf_utils import load_hf_tokenizer

            tokenizer = load_hf_tokenizer(tokenizer)
        super().__init__(reward_fn, gconfig, tokenizer, max_turns, turn_discount)
        self.gconfig = self.gconfig.new(stop_token_ids=[], ignore_eos=True)

    @property
    def feedback_len(self) -> int:
        """Tokens of AReaL's feedback turn (a user message and the next assistant header)."""
        return len(self.multi_turn_prompt_ids)
