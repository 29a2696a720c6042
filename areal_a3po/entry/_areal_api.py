"""The AReaL pieces the entry scripts use, found by feature (AReaL 1.0.4, 2.0 and main).

Every lookup names the AReaL API it needs; a missing one is a clear error, never a fallback to a
different training loop.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from areal_a3po import activation

# A RolloutWorkflow: AReaL runs it without OpenAI-proxy workers, so it works in SPMD mode and under
# every scheduler (agent workflows such as MathAgent raise NotImplementedError in SPMD and on Ray).
RLVR_WORKFLOW = "areal.workflow.rlvr.RLVRWorkflow"


def _lookup(module: str, attr: str, what: str) -> Any:
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise RuntimeError(
            f"this AReaL has no {module}.{attr} ({what}); areal_a3po.entry supports AReaL 1.0.4 "
            f"and 2.x. Check `a3po info` and the installed areal version. ({exc})"
        ) from exc


def trainer_class() -> type:
    """AReaL's ``PPOTrainer`` (top-level export, else ``areal.trainer``)."""
    try:
        return _lookup("areal", "PPOTrainer", "the PPO trainer")
    except RuntimeError:
        return _lookup("areal.trainer", "PPOTrainer", "the PPO trainer")


def config_class() -> type:
    """``GRPOConfig`` where AReaL still has it (a placeholder subclass), else ``PPOConfig``."""
    cli_args = importlib.import_module("areal.api.cli_args")
    cls = getattr(cli_args, "GRPOConfig", None) or getattr(cli_args, "PPOConfig", None)
    if cls is None:
        raise RuntimeError("areal.api.cli_args has neither GRPOConfig nor PPOConfig")
    return cls


def load_config(argv: list[str]) -> Any:
    """Parse ``--config RECIPE [overrides]`` with AReaL's ``load_expr_config`` (as its examples).

    In a process where the plugin is not active (its ``.pth`` hook did not run), a recipe's
    plugin settings fail with :class:`~areal_a3po.activation.PluginInactiveError`, which names the
    install that fixes it, instead of AReaL's generic unknown-key error (kept as its cause).
    """
    load_expr_config = _lookup("areal.api.cli_args", "load_expr_config", "the config loader")
    try:
        config, _ = load_expr_config(list(argv), config_class())
    except Exception as exc:
        setting = activation.plugin_setting(exc)
        if setting is not None and not activation.active():
            raise activation.inactive_error(setting) from exc
        raise
    activation.check_config(config)
    return config


def load_tokenizer(path: str) -> Any:
    return _lookup("areal.utils.hf_utils", "load_hf_tokenizer", "the tokenizer loader")(path)


def custom_dataset(split: str, dataset_config: Any, tokenizer: Any) -> Any:
    """AReaL's built-in dataset loader (``areal.dataset.get_custom_dataset``)."""
    get = _lookup("areal.dataset", "get_custom_dataset", "the built-in dataset loader")
    return get(split=split, dataset_config=dataset_config, tokenizer=tokenizer)


def math_verify_worker() -> Any:
    """AReaL's shared math-verify grader (``areal.reward.get_math_verify_worker``)."""
    return _lookup("areal.reward", "get_math_verify_worker", "the math-verify grader")()


def check_rollout_workflow(workflow: str = RLVR_WORKFLOW) -> type:
    """The workflow class, checked to be a ``RolloutWorkflow`` (runs in every launch mode)."""
    module, _, name = workflow.rpartition(".")
    cls = _lookup(module, name, "the single-turn RLVR workflow")
    base = _lookup("areal.api", "RolloutWorkflow", "the rollout-workflow base class")
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise RuntimeError(
            f"{workflow} is not a RolloutWorkflow in this AReaL: it would need OpenAI-proxy "
            "workers, which SPMD mode and the Ray scheduler do not support"
        )
    return cls


def run(
    config: Any,
    train_dataset: Any,
    valid_dataset: Any,
    workflow_kwargs: dict[str, Any],
    eval_workflow_kwargs: dict[str, Any] | None,
) -> None:
    """``PPOTrainer(config, ...).train(workflow=RLVRWorkflow, ...)``, as AReaL's examples do."""
    check_rollout_workflow()
    with trainer_class()(
        config, train_dataset=train_dataset, valid_dataset=valid_dataset
    ) as trainer:
        trainer.train(
            workflow=RLVR_WORKFLOW,
            workflow_kwargs=workflow_kwargs,
            eval_workflow=RLVR_WORKFLOW if eval_workflow_kwargs is not None else None,
            eval_workflow_kwargs=eval_workflow_kwargs,
        )


def run_entry(
    argv: list[str],
    build_datasets: Callable[[Any, Any], tuple[Any, Any]],
    workflow_kwargs: Callable[[Any], tuple[dict, dict | None]],
) -> None:
    """An entry script's ``main``: config, tokenizer, datasets, then AReaL's PPOTrainer."""
    config = load_config(argv)
    check_rollout_workflow()
    tokenizer = load_tokenizer(config.tokenizer_path)
    train, valid = build_datasets(config, tokenizer)
    train_kwargs, eval_kwargs = workflow_kwargs(config)
    run(config, train, valid, train_kwargs, eval_kwargs if valid is not None else None)
