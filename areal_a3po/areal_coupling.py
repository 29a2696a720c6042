"""The AReaL coupling: the only module that knows AReaL's internals (checked on areal 1.0.4).

AReaL has no plugin API, so the plugin patches two modules right after they execute
(:mod:`areal_a3po._bootstrap` calls :func:`patch_module` from an import hook, in every process):

``areal.api.cli_args``
    * ``PPOActorConfig`` gains the init field ``a3po: A3POConfig`` (YAML ``actor.a3po``), so
      OmegaConf, ``load_expr_config``, ``asdict`` and AReaL's RPC serialization carry it.
    * ``PPOActorConfig.__init__`` validates the provider choice (names the YAML key).
    * ``PPOActorConfig.should_compute_prox_logp`` asks the provider whether the recompute forward
      is needed; AReaL's controller skips ``compute_logp`` when it is not.
``areal.trainer.ppo.actor``
    * ``PPOActor._compute_advantages`` also rolls ``versions`` by -1, like ``logprobs`` and
      ``loss_mask``, so every token is paired with its own version (AReaL 1.0.4 leaves it
      one position off).
    * ``PPOActor._ppo_update`` exposes the minibatch index to providers.
    * ``grpo_loss_fn`` dispatches plugin providers and losses; ``_log_proximal_approximation_stats``
      logs the plugin's metrics under AReaL's ``ppo_actor/update/compute_logp`` scope.

``areal.utils.network`` (only with ``AREAL_A3PO_LOOPBACK=1``)
    * ``gethostip`` returns 127.0.0.1: AReaL deliberately skips loopback addresses, so without this
      a single-machine run advertises its servers and workers on the external interface.

AReaL's own methods (``recompute``, ``loglinear``, ``metrics``) run AReaL's untouched code path.
When a future AReaL ships a plugin API, this module is the one to rewrite.
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch

from areal_a3po import SUPPORTED_AREAL, approx, calibration, registry
from areal_a3po.config import A3POConfig, A3POConfigError, validate_actor
from areal_a3po.providers import ProxInputError, check_inputs
from areal_a3po.registry import Provider, ProxInputs

_PATCHED: set[str] = set()
_ORIGINAL: dict[str, Any] = {}
_WARNED = False


def _logger():
    from areal.utils import logging

    return logging.getLogger("A3POCoupling")


# ----------------------------------------------------------------------------- version gate


def areal_version() -> str | None:
    try:
        return metadata.version("areal")
    except metadata.PackageNotFoundError:
        return None


def areal_supported() -> bool:
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    v = areal_version()
    try:
        return v is not None and Version(v) in SpecifierSet(SUPPORTED_AREAL)
    except InvalidVersion:
        return False


def _unsupported_reason() -> str:
    return (
        f"areal-a3po supports areal{SUPPORTED_AREAL}, but areal {areal_version()} is installed, "
        "so the plugin left AReaL unpatched"
    )


def areal_origin() -> str:
    """Where the installed areal came from: its PEP 610 URL (a local sdist, a checkout) or index."""
    import json

    try:
        dist = metadata.distribution("areal")
    except metadata.PackageNotFoundError:
        return "not installed"
    location = str(dist.locate_file(""))
    url = None
    try:
        raw = dist.read_text("direct_url.json")
        if raw:
            info = json.loads(raw)
            url = info.get("url")
            if info.get("dir_info", {}).get("editable"):
                url = f"{url} (editable)"
    except (OSError, ValueError):
        url = None
    return f"{url or 'package index'} -> {location}"


@dataclass(frozen=True)
class PatchPoint:
    """One place the plugin patched, and the feature of the installed AReaL it was chosen by."""

    target: str
    detail: str


_APPLIED: list[PatchPoint] = []


def _record(target: str, detail: str) -> None:
    _APPLIED.append(PatchPoint(target, detail))


def applied_patch_points() -> list[PatchPoint]:
    """The patch points applied in this process, in the order they were applied."""
    return list(_APPLIED)


def _signature(fn) -> str:
    import inspect

    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(?)"


def hooked() -> bool:
    """Whether this process's AReaL config module carries the plugin."""
    return "areal.api.cli_args" in _PATCHED


def patch_module(module) -> None:
    """Entry point of the import hook: patch one freshly imported AReaL module (idempotent)."""
    global _WARNED
    name = module.__name__
    if name in _PATCHED:
        return
    if not areal_supported():
        if not _WARNED:
            _WARNED = True
            _logger().warning(f"{_unsupported_reason()}. Plugin providers are unavailable.")
        if name == "areal.api.cli_args":
            _guard_unsupported(module.PPOActorConfig)
        return
    PATCHERS[name](module)
    _PATCHED.add(name)


# ----------------------------------------------------------------------------- config


def _guard_unsupported(cls) -> None:
    """Unsupported AReaL: no patching, but a recipe asking for a plugin provider fails clearly."""
    original = cls.__post_init__

    @functools.wraps(original)
    def __post_init__(self):
        if registry.is_plugin_provider(self.prox_logp_method):
            raise A3POConfigError(
                f"actor.prox_logp_method: {self.prox_logp_method} is provided by areal-a3po, "
                f"but {_unsupported_reason()}. Install a supported areal, or choose "
                "prox_logp_method: recompute."
            )
        original(self)

    cls.__post_init__ = __post_init__


def _areal_methods() -> frozenset[str]:
    """``prox_logp_method`` values AReaL implements itself (its ``ProxLogpMethod`` enum)."""
    try:
        from areal.utils.constants import ProxLogpMethod
    except ImportError:
        return frozenset()
    return frozenset(m.value for m in ProxLogpMethod)


def _reads_name(fn, name: str) -> bool:
    """Whether ``fn``'s own code refers to global/imported ``name`` (a feature probe, no call)."""
    fn = getattr(fn, "__wrapped__", fn)
    code = getattr(fn, "__code__", None)
    return code is not None and name in code.co_names


def _wrap_post_init(cls, enum_guard: bool) -> None:
    """Plugin checks that must precede AReaL's own, and (AReaL >= 2.0) the enum guard.

    AReaL >= 2.0's ``__post_init__`` runs ``ProxLogpMethod(self.prox_logp_method)``; a plugin
    provider is no member of that enum, so AReaL's checks run on ``recompute`` (the only
    method-specific one there is ``reuse_train_logp``'s minibatch rule) and the plugin validates
    the real name in ``__init__`` right after.
    """
    original = cls.__post_init__

    @functools.wraps(original)
    def __post_init__(self):
        method = self.prox_logp_method
        if registry.is_plugin_provider(method):
            _refuse_sapo(self)
        if not enum_guard or method in _areal_methods():
            return original(self)
        self.prox_logp_method = "recompute"
        try:
            original(self)
        finally:
            self.prox_logp_method = method

    cls.__post_init__ = __post_init__


def _refuse_sapo(cfg) -> None:
    if getattr(cfg, "use_sapo_loss", False):
        raise A3POConfigError(
            f"actor.use_sapo_loss: true cannot be combined with actor.prox_logp_method: "
            f"{cfg.prox_logp_method}. SAPO has no proximal policy (AReaL requires "
            "actor.use_decoupled_loss: false for it), and plugin providers act only in decoupled "
            "PPO. Set actor.use_sapo_loss: false, or choose prox_logp_method: recompute."
        )


def validate_loss_options(cfg) -> None:
    """AReaL's loss options that read the proximal log-probs, checked against the provider.

    Rejection sampling (``ratio``/KL metrics incl. IcePop- and KPop-style masks), M2PO and CISPO
    read pi_prox; they work with every provider except ``behave``, whose pi_prox = pi_behave
    makes the prox/behave ratio 1 and every KL 0, so they would silently do nothing.
    """
    method = cfg.prox_logp_method
    if not cfg.use_decoupled_loss or method != "behave":
        return
    if getattr(cfg, "rejection_sampling", None) is not None:
        raise A3POConfigError(
            "actor.rejection_sampling has no effect with actor.prox_logp_method: behave: "
            "pi_prox = pi_behave makes the prox/behave ratio 1 and every KL 0 on every token, so "
            "nothing would be filtered. Remove actor.rejection_sampling, or choose a provider "
            "with a real proximal policy (a3po, current, recompute)."
        )
    if getattr(cfg, "m2_threshold", None) is not None:
        raise A3POConfigError(
            "actor.m2_threshold (M2PO) has no effect with actor.prox_logp_method: behave: "
            "pi_prox = pi_behave makes every second moment (behave - prox)^2 zero, so no token "
            "would be masked. Remove actor.m2_threshold, or choose a3po, current or recompute."
        )


def _patch_cli_args(module) -> None:
    cls = module.PPOActorConfig
    f = dataclasses.field(
        default_factory=A3POConfig,
        metadata={"help": "areal-a3po options (see docs/configuration.md)."},
    )
    f.name, f.type, f._field_type, f.kw_only = "a3po", A3POConfig, dataclasses._FIELD, True
    cls.__dataclass_fields__["a3po"] = f
    cls.__annotations__["a3po"] = A3POConfig
    _record("areal.api.cli_args.PPOActorConfig.a3po", "init field (YAML actor.a3po)")

    enum_guard = _reads_name(cls.__post_init__, "ProxLogpMethod")
    _wrap_post_init(cls, enum_guard)
    _record(
        "areal.api.cli_args.PPOActorConfig.__post_init__",
        "plugin checks first (SAPO); "
        + (
            "AReaL checks prox_logp_method against ProxLogpMethod "
            f"({', '.join(sorted(_areal_methods()))}): plugin names pass it as 'recompute'"
            if enum_guard
            else "AReaL's checks do not read prox_logp_method"
        ),
    )

    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, a3po: A3POConfig | dict | None = None, **kwargs):
        init(self, *args, **kwargs)
        if a3po is None:
            a3po = A3POConfig()
        elif isinstance(a3po, dict):
            a3po = A3POConfig(**a3po)
        self.a3po = a3po
        method = self.prox_logp_method
        if method in registry.providers() or method not in _areal_methods():
            validate_actor(method, self.use_decoupled_loss, a3po)
            validate_loss_options(self)
        if method == "current" and not self.disable_dropout:
            _logger().warning(
                "actor.prox_logp_method: current is exact only without dropout; set "
                "actor.disable_dropout: true (minibatch 0 is otherwise an approximation too)."
            )

    should = cls.should_compute_prox_logp

    @functools.wraps(should)
    def should_compute_prox_logp(self) -> bool:
        provider = registry.providers().get(self.prox_logp_method)
        if provider is None or provider.native:
            return should(self)
        if not self.use_decoupled_loss:
            return False
        if provider.calibrated:
            from areal.utils import stats_tracker

            cal = _calibrator(self)
            recompute = cal.decide()
            stats_tracker.scalar(  # the controller's view, next to the workers' compute_logp/*
                **{
                    "a3po/hybrid/recompute": float(recompute),
                    "a3po/hybrid/escalated": float(cal.escalated),
                }
            )
            return recompute
        return provider.needs_recompute

    cls.__init__ = __init__
    cls.should_compute_prox_logp = should_compute_prox_logp
    _record(
        "areal.api.cli_args.PPOActorConfig.__init__",
        "validates actor.prox_logp_method, actor.a3po and the proximal-reading loss options",
    )
    _record(
        "areal.api.cli_args.PPOActorConfig.should_compute_prox_logp",
        "the provider decides whether compute_logp runs",
    )


def _calibrator(actor_config) -> calibration.Calibrator:
    """The per-config decision state of a calibrated provider (lives in the deciding process)."""
    cal = actor_config.__dict__.get("_a3po_calibrator")
    if cal is None:
        cal = actor_config.__dict__["_a3po_calibrator"] = calibration.Calibrator(actor_config.a3po)
    return cal


def plugin_selected(actor_config) -> bool:
    """The actor config routes the loss through a plugin provider."""
    return bool(
        getattr(actor_config, "use_decoupled_loss", False)
        and registry.is_plugin_provider(getattr(actor_config, "prox_logp_method", ""))
    )


# ----------------------------------------------------------------------------- actor


@dataclass
class _UpdateContext:
    options: A3POConfig
    n_minibatches: int
    minibatch: int = -1


@dataclass
class _LossState:
    name: str
    provider: Provider
    inputs: ProxInputs
    prox: torch.Tensor


_UPDATE: contextvars.ContextVar[_UpdateContext | None] = contextvars.ContextVar(
    "a3po_update", default=None
)
_LOSS: contextvars.ContextVar[_LossState | None] = contextvars.ContextVar("a3po_loss", default=None)


def _patch_actor(module) -> None:
    cls = module.PPOActor
    _ORIGINAL["grpo_loss_fn"] = module.grpo_loss_fn
    _ORIGINAL["log_prox_stats"] = module._log_proximal_approximation_stats
    compute_advantages, ppo_update = cls._compute_advantages, cls._ppo_update
    log_configuration = cls._log_configuration

    @functools.wraps(compute_advantages)
    def _compute_advantages(self, data: dict[str, Any], *args, **kwargs) -> dict[str, Any]:
        versions = data.get("versions")
        out = compute_advantages(self, data, *args, **kwargs)
        # AReaL (1.0.4 .. main) rolls logprobs/loss_mask by -1 and leaves versions as they were;
        # roll them the same way so position i holds token i+1's version. Should AReaL ever roll
        # them itself, it stores a new tensor and this is skipped.
        if (
            plugin_selected(self.config)
            and isinstance(versions, torch.Tensor)
            and out.get("versions") is versions
        ):
            out["versions"] = torch.roll(versions, shifts=-1, dims=-1)
        return out

    @functools.wraps(ppo_update)
    def _ppo_update(self, data: dict[str, Any], *args, **kwargs) -> None:
        if not plugin_selected(self.config):
            return ppo_update(self, data, *args, **kwargs)
        ctx = _UpdateContext(options=self.config.a3po, n_minibatches=self.config.ppo_n_minibatches)
        engine = self.engine
        train_batch = engine.train_batch

        def counting_train_batch(*args, **kwargs):  # AReaL calls it once per PPO minibatch
            ctx.minibatch += 1
            return train_batch(*args, **kwargs)

        token = _UPDATE.set(ctx)
        engine.train_batch = counting_train_batch
        try:
            return ppo_update(self, data, *args, **kwargs)
        finally:
            del engine.train_batch
            _UPDATE.reset(token)

    @functools.wraps(log_configuration)
    def _log_configuration(self) -> None:
        log_configuration(self)
        if plugin_selected(self.config):
            p = registry.get_provider(self.config.prox_logp_method)
            _logger().info(
                f"areal-a3po: proximal policy from provider '{self.config.prox_logp_method}' "
                f"({p.description}); recompute forward: {'yes' if p.needs_recompute else 'no'}; "
                f"options: {self.config.a3po}"
            )

    cls._compute_advantages = _compute_advantages
    cls._ppo_update = _ppo_update
    cls._log_configuration = _log_configuration
    _record(
        "areal.trainer.ppo.actor.PPOActor._compute_advantages",
        f"{_signature(compute_advantages)}: versions rolled like logprobs",
    )
    _record(
        "areal.trainer.ppo.actor.PPOActor._ppo_update",
        f"{_signature(ppo_update)}: minibatch index for providers",
    )
    _record("areal.trainer.ppo.actor.PPOActor._log_configuration", "provider line")
    _patch_stats_export(module)
    module.grpo_loss_fn = grpo_loss_fn
    module._log_proximal_approximation_stats = _log_proximal_approximation_stats
    _record(
        "areal.trainer.ppo.actor.grpo_loss_fn",
        f"plugin providers first; AReaL's loss keyword arguments passed through "
        f"({len(_signature(_ORIGINAL['grpo_loss_fn']).split(','))} parameters)",
    )
    _record(
        "areal.trainer.ppo.actor._log_proximal_approximation_stats",
        "plugin metrics under ppo_actor/update/compute_logp",
    )


def _patch_stats_export(module) -> None:
    """Feed every export of reduced statistics to hybrid's calibrators (areal_a3po.calibration).

    SPMD: each rank's engine exports through ``stats_tracker.export_all(reduce_group=...)``.
    Single-controller: the controller's ``PPOActorController.export_stats`` (RPC workers) or
    ``PPOActorControllerV2.export_stats`` (``actor._version: v2``, gateway) gathers the workers'.
    """
    from areal.utils import stats_tracker

    export_all = stats_tracker.export_all

    @functools.wraps(export_all)
    def observed_export_all(*args, **kwargs):
        stats = export_all(*args, **kwargs)
        calibration.observe(stats)
        return stats

    stats_tracker.export_all = observed_export_all
    _record("areal.utils.stats_tracker.export_all", "hybrid observes SPMD exports")
    for cls_name in ("PPOActorController", "PPOActorControllerV2"):
        controller = getattr(module, cls_name, None)
        if controller is None or not callable(getattr(controller, "export_stats", None)):
            continue
        _observe_export_stats(controller)
        _record(
            f"areal.trainer.ppo.actor.{cls_name}.export_stats",
            f"hybrid observes the workers' stats ({controller.__mro__[1].__name__})",
        )


def _observe_export_stats(controller) -> None:
    export_stats = controller.export_stats

    @functools.wraps(export_stats)
    def observed_export_stats(self, *args, **kwargs):
        stats = export_stats(self, *args, **kwargs)
        calibration.observe(stats)
        return stats

    controller.export_stats = observed_export_stats


def _needs_versions(provider: Provider, options: A3POConfig) -> bool:
    if provider.composite:
        return registry.get_provider(options.fallback).needs_versions
    return provider.needs_versions


def grpo_loss_fn(logprobs: torch.Tensor, entropy: torch.Tensor, input_data: dict, **kwargs):
    """AReaL's ``grpo_loss_fn`` with plugin providers resolved first (same signature)."""
    method = kwargs.get("prox_logp_method", "recompute")
    if not kwargs.get("use_decoupled_loss", False) or not registry.is_plugin_provider(method):
        return _ORIGINAL["grpo_loss_fn"](logprobs, entropy, input_data, **kwargs)
    ctx = _UPDATE.get()
    options = ctx.options if ctx is not None else A3POConfig()
    provider = registry.get_provider(method)
    mask = input_data["loss_mask"].bool()
    theta = logprobs.detach()
    current_version = kwargs.get("current_version")
    inputs = ProxInputs(
        behave_logp=input_data["logprobs"],
        theta_logp=theta,
        loss_mask=mask,
        versions=input_data.get("versions"),
        current_version=current_version,
        recomputed=input_data.get("prox_logp"),
        minibatch=max(ctx.minibatch, 0) if ctx is not None else 0,
        n_minibatches=ctx.n_minibatches if ctx is not None else 1,
        options=options,
    )
    if options.validate_inputs:
        check_inputs(inputs, method, _needs_versions(provider, options))
    prox = provider.compute(inputs)
    if not isinstance(prox, torch.Tensor) or prox.shape != mask.shape:
        raise ProxInputError(
            f"Provider '{method}' returned {getattr(prox, 'shape', type(prox).__name__)}; "
            f"it must return a tensor of the loss_mask's shape {tuple(mask.shape)}."
        )
    # Outside the loss mask prox is never used; keep it finite so no NaN reaches a gradient.
    prox = torch.where(mask, prox.detach().to(torch.float32), theta.to(torch.float32))
    loss = registry.get_loss(options.loss)
    token = _LOSS.set(_LossState(method, provider, inputs, prox))
    try:
        return loss(logprobs, entropy, input_data, prox, **kwargs)
    finally:
        _LOSS.reset(token)


def ppo_loss(
    logprobs: torch.Tensor,
    entropy: torch.Tensor,
    input_data: dict,
    prox_logp: torch.Tensor,
    **kwargs,
) -> torch.Tensor:
    """AReaL's decoupled PPO loss and statistics, with ``prox_logp`` as the proximal policy."""
    mask = input_data["loss_mask"].bool()
    data = dict(input_data)
    data["logprobs"] = torch.where(mask, input_data["logprobs"], prox_logp)  # finite off-mask
    data["prox_logp"] = prox_logp
    kwargs["prox_logp_method"] = "recompute"  # AReaL then takes prox_logp as given
    return _ORIGINAL["grpo_loss_fn"](logprobs, entropy, data, **kwargs)


# ----------------------------------------------------------------------------- metrics


def _log_proximal_approximation_stats(*args, **kwargs) -> None:
    state = _LOSS.get()
    if state is None:
        return _ORIGINAL["log_prox_stats"](*args, **kwargs)
    mask = kwargs.get("compute_logp_mask")
    if mask is None:
        mask = state.inputs.loss_mask
    log_prox_stats(state, mask.bool())


def _log_provider(name: str, prox: torch.Tensor, inp: ProxInputs, gt: torch.Tensor | None) -> None:
    from areal.utils import stats_tracker

    behave = torch.where(inp.loss_mask, inp.behave_logp.float(), prox)
    stats = {
        f"{name}/approx_logp": prox,
        f"{name}/behave_imp_weight": torch.exp(prox - behave),  # pi_prox / pi_behave
        f"{name}/importance_weight": torch.exp(inp.theta_logp.float() - prox),  # pi_theta / pi_prox
    }
    if gt is not None:
        gt = gt.float()
        diff = (gt - prox).abs()
        stats[f"{name}/abs_error"] = diff
        stats[f"{name}/rel_error"] = diff / (gt.abs() + 1e-8)
        stats[f"{name}/squared_error"] = diff * diff
        stats[f"{name}/behave_imp_weight_abs_error"] = (
            torch.exp(gt - behave) - stats[f"{name}/behave_imp_weight"]
        ).abs()
        stats[f"{name}/importance_weight_abs_error"] = (
            torch.exp(inp.theta_logp.float() - gt) - stats[f"{name}/importance_weight"]
        ).abs()
    stats_tracker.stat(**stats, denominator="n_valid_tokens")


def log_prox_stats(state: _LossState, mask: torch.Tensor) -> None:
    """Plugin statistics under ``ppo_actor/update/compute_logp`` (AReaL's scope and key style)."""
    from areal.utils import stats_tracker

    inp = state.inputs
    options = inp.options or A3POConfig()
    gt = inp.recomputed
    with stats_tracker.scope("compute_logp"):
        stats_tracker.denominator(n_valid_tokens=mask)
        if gt is not None:
            stats_tracker.stat(prox_logp_gt=gt.float(), denominator="n_valid_tokens")
        _log_provider(state.name, state.prox, inp, gt if state.provider.approximate else None)
        stats_tracker.scalar(recomputed=float(gt is not None))
        if state.provider.exact is not None:
            exact = float(state.provider.exact(inp))
            stats_tracker.stat(
                exact_token_share=torch.full_like(state.prox, exact), denominator="n_valid_tokens"
            )
        evaluated: list[str] = []
        if gt is not None and state.name == "a3po-metrics":
            evaluated = options.eval_providers or registry.approximate_provider_names()
        elif gt is not None and state.provider.calibrated:
            evaluated = [
                options.fallback,
                *(n for n in options.eval_providers if n != options.fallback),
            ]
        if evaluated:
            for name in evaluated:
                provider = registry.get_provider(name)
                if provider.needs_versions and inp.versions is None:
                    continue
                approx_prox = torch.where(inp.loss_mask, provider.compute(inp).float(), gt.float())
                _log_provider(name, approx_prox, inp, gt)
        if inp.versions is not None and inp.current_version is not None:
            lag = approx.staleness(inp.versions, inp.current_version)
            bins = options.staleness_bins
            stats_tracker.denominator(
                **{f"staleness_lag_{b}": mask & (lag == b) for b in range(bins)},
                **{f"staleness_lag_ge{bins}": mask & (lag >= bins)},
            )
            stats_tracker.stat(
                staleness=lag.float(),
                lag_weight_behave=approx.behave_weight(lag, options.anchor_offset),
                denominator="n_valid_tokens",
            )
        log_ratio = (
            inp.theta_logp.float() - torch.where(mask, inp.behave_logp.float(), 0.0)
        ).detach()
        log_ratio = torch.where(mask, log_ratio, 0.0)
        stats_tracker.stat(  # same drift estimators AReaL logs, so dashboards keep working
            kl_div_direct=-log_ratio,
            kl_div_taylor=log_ratio**2 / 2.0,
            kl_div_dual=log_ratio.exp() - 1 - log_ratio,
            denominator="n_valid_tokens",
        )


# ----------------------------------------------------------------------------- loopback

LOOPBACK_ENV = "AREAL_A3PO_LOOPBACK"
LOOPBACK_IP = "127.0.0.1"


def loopback_enabled() -> bool:
    import os

    return os.environ.get(LOOPBACK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _loopback_gethostip(*_args, **_kwargs) -> str:
    return LOOPBACK_IP


def _patch_network(module) -> None:
    """Loopback mode: every ``from areal.utils.network import gethostip`` made after this sees it."""
    if loopback_enabled():
        module.gethostip = _loopback_gethostip
        _record("areal.utils.network.gethostip", f"{LOOPBACK_ENV}=1: returns {LOOPBACK_IP}")


PATCHERS = {
    "areal.api.cli_args": _patch_cli_args,
    "areal.trainer.ppo.actor": _patch_actor,
    "areal.utils.network": _patch_network,
}

__all__ = [
    "A3POConfigError",
    "areal_supported",
    "areal_version",
    "grpo_loss_fn",
    "hooked",
    "patch_module",
    "plugin_selected",
    "ppo_loss",
]
