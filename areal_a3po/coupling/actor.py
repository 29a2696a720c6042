"""``areal.trainer.ppo.actor``: token alignment, minibatch context, and the plugin's loss.

* ``PPOActor._compute_advantages`` also rolls ``versions`` by -1, like ``logprobs`` and
  ``loss_mask``, so every token is paired with its own version (AReaL leaves it one position off).
* ``PPOActor._ppo_update`` checks the update's batch once (:func:`areal_a3po.loss.begin_update`),
  exposes the PPO minibatch index to providers (:data:`loss.UPDATE`),
  logs the trained tokens' version lag for every method (``ppo_actor/a3po/token_lag``), the
  train-inference mismatch for every method (:func:`areal_a3po.mismatch.per_update`), and the
  plugin's per-micro-batch statistics, each once, at the end of the update
  (:func:`areal_a3po.prox_metrics.per_update`); on probe updates
  (``actor.a3po.update_fidelity_every``) it runs the update-fidelity passes before each
  minibatch's ``train_batch`` (:mod:`areal_a3po.update_fidelity`).
* ``grpo_loss_fn`` dispatches plugin providers and losses (:mod:`areal_a3po.loss`);
  ``_log_proximal_approximation_stats`` logs the plugin's metrics (:mod:`areal_a3po.prox_metrics`).
* ``PPOActor._log_configuration`` names the provider that really runs.

AReaL's own methods (``recompute``, ``loglinear``, ``metrics``) keep AReaL's untouched code path.
"""

from __future__ import annotations

import contextlib
import functools
from types import ModuleType
from typing import Any

import torch

from areal_a3po import loss, mismatch, prox_metrics, registry, update_fidelity
from areal_a3po.coupling import gate
from areal_a3po.coupling.config import plugin_selected
from areal_a3po.coupling.gate import logger


def _roll_versions(compute_advantages):
    @functools.wraps(compute_advantages)
    def _compute_advantages(self, data: dict[str, Any], *args, **kwargs) -> dict[str, Any]:
        # *args/**kwargs: AReaL 2.x added ``meta`` (trajectory group sizes).
        versions = data.get("versions")
        out = compute_advantages(self, data, *args, **kwargs)
        # Same roll as logprobs/loss_mask: position i now holds token i+1's version. AReaL (1.0.4
        # .. main cbff54d) leaves versions as they were; should it roll them itself one day, it
        # stores a new tensor and this is skipped.
        if (
            plugin_selected(self.config)
            and isinstance(versions, torch.Tensor)
            and out.get("versions") is versions
        ):
            out["versions"] = torch.roll(versions, shifts=-1, dims=-1)
        return out

    return _compute_advantages


def _log_token_lag(actor, data: dict[str, Any]) -> None:
    versions = data.get("versions")
    if not isinstance(versions, torch.Tensor) or "loss_mask" not in data:
        return
    if not plugin_selected(actor.config):  # AReaL's own methods: versions are not rolled yet
        versions = torch.roll(versions, shifts=-1, dims=-1)
    bins = actor.config.a3po.staleness_bins
    prox_metrics.log_token_lag(versions, data["loss_mask"], actor.engine.get_version(), bins)


def _with_minibatch_context(ppo_update):
    @functools.wraps(ppo_update)
    def _ppo_update(self, data: dict[str, Any], *args, **kwargs) -> None:
        _log_token_lag(self, data)
        cfg = self.config
        ctx = loss.UpdateContext(options=cfg.a3po, n_minibatches=cfg.ppo_n_minibatches)
        engine = self.engine
        plugin = plugin_selected(cfg)
        if plugin:
            # The whole batch checked once, so its micro-batches need not be (AReaL passes this
            # same engine version to every micro-batch's loss as current_version).
            loss.begin_update(ctx, data, cfg.prox_logp_method, engine.get_version())
        train_batch = engine.train_batch
        # Probe updates (actor.a3po.update_fidelity_every): extra passes before each minibatch's.
        probe = update_fidelity.for_update(self, ctx, data)

        def counting_train_batch(*a, **kw):  # AReaL calls it once per PPO minibatch
            ctx.minibatch += 1
            if probe is not None:
                return probe.train_batch(train_batch, *a, **kw)
            return train_batch(*a, **kw)

        token = loss.UPDATE.set(ctx)
        engine.train_batch = counting_train_batch
        # Every method: the train-inference mismatch monitor, logged once, at the end.
        monitor = mismatch.per_update(
            cfg.eps_clip, cfg.eps_clip_higher, getattr(cfg, "temperature", None)
        )
        # Plugin providers: their statistics, logged once, at the end.
        stats = prox_metrics.per_update() if plugin else contextlib.nullcontext()
        try:
            with monitor, stats:
                out = ppo_update(self, data, *args, **kwargs)
            if probe is not None:
                probe.log()
            return out
        finally:
            del engine.train_batch
            loss.UPDATE.reset(token)

    return _ppo_update


def _naming_provider(log_configuration):
    @functools.wraps(log_configuration)
    def _log_configuration(self) -> None:
        log_configuration(self)
        if plugin_selected(self.config):
            p = registry.get_provider(self.config.prox_logp_method)
            logger().info(
                f"areal-a3po: proximal policy from provider '{self.config.prox_logp_method}' "
                f"({p.description}); recompute forward: {'yes' if p.needs_recompute else 'no'}; "
                f"options: {self.config.a3po}"
            )

    return _log_configuration


def patch(module: ModuleType) -> None:
    cls = module.PPOActor
    loss.AREAL_GRPO_LOSS["grpo_loss_fn"] = module.grpo_loss_fn
    prox_metrics.AREAL_LOG_STATS["log_stats"] = module._log_proximal_approximation_stats
    target = "areal.trainer.ppo.actor."
    gate.record(
        target + "PPOActor._compute_advantages",
        f"{gate.signature(cls._compute_advantages)}: versions rolled like logprobs",
    )
    cls._compute_advantages = _roll_versions(cls._compute_advantages)
    gate.record(
        target + "PPOActor._ppo_update",
        f"{gate.signature(cls._ppo_update)}: minibatch index for providers, token lag",
    )
    cls._ppo_update = _with_minibatch_context(cls._ppo_update)
    cls._log_configuration = _naming_provider(cls._log_configuration)
    gate.record(target + "PPOActor._log_configuration", "names the provider")
    module.grpo_loss_fn = loss.grpo_loss_fn
    module._log_proximal_approximation_stats = prox_metrics.log_proximal_approximation_stats
    n_params = len(gate.signature(loss.AREAL_GRPO_LOSS["grpo_loss_fn"]).split(","))
    gate.record(
        target + "grpo_loss_fn",
        f"plugin providers first; AReaL's {n_params} loss parameters passed through",
    )
    gate.record(
        target + "_log_proximal_approximation_stats",
        "plugin metrics under ppo_actor/update/compute_logp",
    )
