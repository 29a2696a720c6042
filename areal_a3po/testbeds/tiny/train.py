"""Entry script of the CPU recipes (``recipes/cpu_tiny_*.yaml``), like AReaL's examples/math/gsm8k_rl.py.

    python3 -m areal_a3po.testbeds.tiny.train --config recipes/cpu_tiny_a3po.yaml scheduler.type=local

AReaL's own loop: ``PPOTrainer(GRPOConfig)`` + AReaL's ``RLVRWorkflow`` (with fixed-length
completions: :mod:`areal_a3po.testbeds.tiny.workflow`), started by
AReaL's scheduler (``scheduler.type=local`` or ``ray``: this process is the controller, AReaL starts
the actor and rollout workers and the vLLM server). What this script adds to gsm8k_rl.py:

- the synthetic dataset and reward of :mod:`areal_a3po.testbeds.tiny.task`;
- where the YAML has a ``valid_dataset`` (the recipes have none), AReaL's evaluator on the task's
  8 prompts, each once with ``eval_gconfig``, every ``evaluator.freq_steps`` steps. The task has
  no other prompts, so this scores the policy on the prompts it trains on, not on held-out data.
  The tests use it to check where a resumed run evaluates; the recipes leave it out because a
  report would present its score as held-out reward;
- the tiny model and tokenizer, built at ``actor.path`` on first use (cached: reused when the
  directory holds a build for the same seed; see :func:`areal_a3po.testbeds.tiny.model.build_model_dir`),
  before AReaL reads ``actor.path``;
- loopback mode (``AREAL_A3PO_LOOPBACK=1`` unless set, :func:`areal_a3po.testbeds.entry.load_config`): the controller must reach the workers at
  the 127.0.0.1 address they bind (the recipe's ``scheduling_spec[].env_vars`` set it for them);
- a check of the YAML values that must match the task;
- ``AREAL_A3PO_PACE=cap``: rollouts at the staleness cap (:mod:`areal_a3po.testbeds.pacing`), the
  control of ``a3po compare --staleness``;
- no worker left behind (:mod:`areal_a3po.testbeds.entry`).
"""

from __future__ import annotations

import sys

TASK = "areal_a3po.testbeds.tiny.task"
WORKFLOW = "areal_a3po.testbeds.tiny.workflow.FixedLengthRLVRWorkflow"
DATASET_SIZE = 512  # prompts; the dataloader is cycled, total_train_steps bounds the run


def check_task_consistency(config) -> None:
    """The YAML values that must match the task (one sequence per micro-batch, completion length).

    Every sequence is exactly ``task.MAX_SEQ_LEN`` tokens (the workflow,
    :mod:`areal_a3po.testbeds.tiny.workflow`) and a micro-batch holds at most that many, so each holds
    one sequence in every pass (training and recompute), for any ``actor.ppo_n_minibatches``.
    """
    from areal_a3po.testbeds.tiny import task

    a = config.actor
    problems = []
    gconfigs = {"gconfig": config.gconfig}
    if config.valid_dataset is not None:  # evaluated with eval_gconfig through the same workflow
        gconfigs["eval_gconfig"] = config.eval_gconfig
    for key, g in gconfigs.items():
        if g.max_new_tokens != task.MAX_NEW_TOKENS:
            problems.append(f"{key}.max_new_tokens={g.max_new_tokens} != {task.MAX_NEW_TOKENS}")
    if a.mb_spec.max_tokens_per_mb != task.MAX_SEQ_LEN:
        problems.append(
            f"actor.mb_spec.max_tokens_per_mb={a.mb_spec.max_tokens_per_mb} != "
            f"task.MAX_SEQ_LEN={task.MAX_SEQ_LEN}"
        )
    if problems:
        raise ValueError("config does not match the embedded task: " + "; ".join(problems))


def prepare_model(config) -> str:
    """Build (or reuse) the tiny model + tokenizer at ``actor.path`` for ``config.seed``."""
    from areal_a3po.testbeds.tiny import task
    from areal_a3po.testbeds.tiny.model import build_model_dir

    for key, value in (
        ("tokenizer_path", config.tokenizer_path),
        ("vllm.model", config.vllm.model),
    ):
        if value != config.actor.path:
            raise ValueError(f"{key}={value} must equal actor.path={config.actor.path}")
    return build_model_dir(config.actor.path, list(task.VOCAB), seed=config.seed)


def main(argv: list[str]) -> None:
    from areal_a3po.testbeds import entry

    config, pace = entry.load_config(argv)

    from areal import PPOTrainer

    from areal_a3po.testbeds import pacing
    from areal_a3po.testbeds.tiny import task

    check_task_consistency(config)
    prepare_model(config)

    train_dataset = task.build_hf_dataset(
        size=max(
            DATASET_SIZE, config.train_dataset.batch_size * ((config.total_train_steps or 1) + 4)
        ),
        seed=config.seed,
    )
    valid_dataset = None
    if config.valid_dataset is not None:  # every prompt of the task once (one block of starts)
        valid_dataset = task.build_hf_dataset(size=len(task.LETTERS), seed=config.seed)

    def workflow_kwargs(gconfig) -> dict:
        return dict(
            reward_fn=f"{TASK}.reward_fn",
            gconfig=gconfig,
            tokenizer=config.tokenizer_path,
            enable_thinking=False,
            get_input_ids_fn=f"{TASK}.get_input_ids",
            data_extract_prompt_fn=f"{TASK}.extract_prompt",
        )

    with entry.stopping_leftovers():
        with PPOTrainer(config, train_dataset=train_dataset, valid_dataset=valid_dataset) as tr:
            if pace == pacing.CAP:
                pacing.pace_at_cap(tr.rollout)
            tr.train(
                workflow=WORKFLOW,
                workflow_kwargs=workflow_kwargs(config.gconfig),
                eval_workflow=WORKFLOW,
                eval_workflow_kwargs=workflow_kwargs(config.eval_gconfig),
            )


if __name__ == "__main__":
    main(sys.argv[1:])
