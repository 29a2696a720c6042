"""Trainer entry script of the embedded default (modelled on AReaL's examples/math/gsm8k_rl.py).

    python -m areal_a3po.embedded.train --config areal_a3po/embedded/default.yaml [hydra overrides]

AReaL's own loop: ``PPOTrainer(GRPOConfig)`` + ``areal.workflow.rlvr.RLVRWorkflow``, SPMD mode
(``AREAL_SPMD_MODE=1``, one process, ``WORLD_SIZE=1``), rollouts from the vLLM server(s) listed in
``AREAL_LLM_SERVER_ADDRS``. The synthetic dataset and reward come from
:mod:`areal_a3po.embedded.task`. With ``AREAL_A3PO_LOOPBACK=1`` AReaL advertises 127.0.0.1.
"""

from __future__ import annotations

import sys

TASK = "areal_a3po.embedded.task"
DATASET_SIZE = 512  # prompts; the dataloader is cycled, total_train_steps bounds the run


def main(argv: list[str]) -> None:
    from areal import PPOTrainer
    from areal.api.cli_args import GRPOConfig, load_expr_config
    from areal.utils.network import gethostip

    from areal_a3po.coupling import network
    from areal_a3po.embedded import task

    # Loopback comes from the plugin's import hook (AREAL_A3PO_LOOPBACK=1, set by the runner).
    if network.loopback_enabled() and gethostip() != network.LOOPBACK_IP:
        raise RuntimeError(
            "AREAL_A3PO_LOOPBACK=1 but AReaL's gethostip() is not 127.0.0.1: the areal-a3po "
            "hook is not active in this interpreter (run `a3po info`; is AREAL_A3PO_DISABLE set?)."
        )
    config, _ = load_expr_config(argv, GRPOConfig)

    train_dataset = task.build_hf_dataset(
        size=max(
            DATASET_SIZE, config.train_dataset.batch_size * ((config.total_train_steps or 1) + 4)
        ),
        seed=config.seed,
    )
    workflow_kwargs = dict(
        reward_fn=f"{TASK}.reward_fn",
        gconfig=config.gconfig,
        tokenizer=config.tokenizer_path,
        enable_thinking=False,
        get_input_ids_fn=f"{TASK}.get_input_ids",
        data_extract_prompt_fn=f"{TASK}.extract_prompt",
    )
    with PPOTrainer(config, train_dataset=train_dataset, valid_dataset=None) as trainer:
        trainer.train(
            workflow="areal.workflow.rlvr.RLVRWorkflow",
            workflow_kwargs=workflow_kwargs,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
