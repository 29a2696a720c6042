"""The tiny testbed's rollout workflow: AReaL's ``RLVRWorkflow`` with fixed-length completions.

AReaL's workflow adds the tokenizer's ``<pad>`` and ``<eos>`` to the stop tokens, so completions
end early and sequences have different lengths. On CPU a micro-batch that packs two sequences
leaks attention across them (no varlen attention), and the recompute's pass over the whole batch
packs short sequences whenever a PPO minibatch holds fewer sequences than the batch. Here every
completion runs to ``gconfig.max_new_tokens`` (no stop tokens, ``ignore_eos``), so every sequence
is ``task.MAX_SEQ_LEN`` tokens and ``actor.mb_spec.max_tokens_per_mb`` = that length holds exactly
one, in every pass, at any ``actor.ppo_n_minibatches``. The reward is unchanged: it counts up to
the first non-letter token (``<pad>``/``<eos>`` still end what it scores).
"""

from __future__ import annotations

from areal.workflow.rlvr import RLVRWorkflow


class FixedLengthRLVRWorkflow(RLVRWorkflow):
    """``RLVRWorkflow`` whose completions are always ``max_new_tokens`` long."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gconfig = self.gconfig.new(stop_token_ids=[], ignore_eos=True)
