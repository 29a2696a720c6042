"""Built-in proximal-log-prob providers (registered as entry points in pyproject.toml).

| name          | log pi_prox                                        | recompute forward |
|---------------|----------------------------------------------------|-------------------|
| recompute     | AReaL's forward pass (AReaL's own code path)       | yes               |
| loglinear     | AReaL's built-in approximation (AReaL's code path) | no                |
| metrics       | AReaL's recompute + its approximation metrics      | yes               |
| a3po          | log-space interpolation, weight k/d (the paper)    | no                |
| a3po-linear   | probability-space interpolation, weight k/d        | no                |
| a3po-step     | log-space, step-start anchor, weight (k/K)/(d+k/K) | no                |
| behave        | log pi_behave (verl's "bypass" baseline)           | no                |
| a3po-metrics  | the recompute; logs every approximation's error    | yes               |
| current       | detached pi_theta on minibatch 0, fallback after   | no                |
| hybrid        | recompute on calibration steps, fallback otherwise | some steps        |
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from areal_a3po import approx, registry
from areal_a3po.api import Provider, ProxInputError, ProxInputs
from areal_a3po.config import A3POConfig


def _anchor(inp: ProxInputs) -> float:
    return inp.options.anchor_offset if inp.options is not None else A3POConfig.anchor_offset


# ``inp.extras`` key: the weight on pi_behave of the first provider that ran on the micro-batch
# (the one the loss trains on; scored providers run after it), None when it used no weight.
WEIGHT_USED = "weight_used"


def _used(inp: ProxInputs, weight: torch.Tensor | None) -> torch.Tensor | None:
    inp.extras.setdefault(WEIGHT_USED, weight)
    return weight


# ``inp.shared`` key: the update's inputs passed :func:`check_update` at this trainer version
# (every version in [-1, current_version], log pi_behave finite everywhere), so its micro-batches
# skip the per-micro-batch check and look weights up per version.
CHECKED_AT_VERSION = "checked_at_version"


def checked(inp: ProxInputs) -> bool:
    """Whether this micro-batch's update passed :func:`check_update` (at its current_version)."""
    version = inp.shared.get(CHECKED_AT_VERSION)
    return version is not None and version == inp.current_version


def _per_token(inp: ProxInputs, key: tuple, weight_of) -> torch.Tensor:
    """``weight_of(versions)`` (an elementwise function of the version) for every token.

    In a checked update it is evaluated once per update on the versions -1..V and looked up per
    token (one indexing op per micro-batch); otherwise evaluated on the micro-batch's tokens.
    """
    v = inp.versions
    assert v is not None  # checked by check_inputs / check_update
    if not checked(inp):
        return weight_of(v)
    key = (*key, inp.current_version)
    table = inp.shared.get(key)
    if table is None:  # table[v] = w(v) for v in 0..V, table[-1] = w(prompt tag -1)
        versions = torch.arange(-1, inp.current_version + 1, dtype=v.dtype, device=v.device)
        table = inp.shared[key] = weight_of(versions).roll(-1)
    return torch.take(table, v) if v.dtype == torch.int64 else table[v]


def _cached(inp: ProxInputs, key: tuple, weight_of) -> torch.Tensor:
    """:func:`_per_token`'s weights, computed once per micro-batch (kept in ``inp.extras``)."""
    weight = inp.extras.get(key)
    if weight is None:
        weight = inp.extras[key] = _per_token(inp, key, weight_of)
    return weight


def paper_weight(inp: ProxInputs) -> torch.Tensor:
    """w = clamp(k/d, 0, 1) per token (k: the anchor offset), once per micro-batch."""
    k = _anchor(inp)
    return _cached(inp, ("lag_weight", k), lambda v: approx.lag_weight(v, inp.current_version, k))


def step_weight(inp: ProxInputs) -> torch.Tensor:
    """w = (k/K) / (d + k/K) per token on PPO minibatch k of K (v_prox = start of the step)."""
    progress = inp.minibatch / max(inp.n_minibatches, 1)  # v_theta - V
    weight_of = lambda v: approx.start_of_step_weight(v, inp.current_version, progress)  # noqa: E731
    return _cached(inp, ("step_weight", progress), weight_of)


def lag_weight(inp: ProxInputs) -> torch.Tensor:
    """The weight on pi_behave that the training provider used on this micro-batch (logged as
    ``lag_weight_behave``); the paper's k/d when it used none (it trains on the recompute).

    Kept in ``inp.extras``, so the provider and the statistics after the loss share one tensor.
    """
    weight = inp.extras.get(WEIGHT_USED)
    return weight if weight is not None else paper_weight(inp)


def a3po_log(inp: ProxInputs) -> torch.Tensor:
    """A-3PO: log pi_prox = w log pi_behave + (1 - w) log pi_theta, w = k/d."""
    return approx.interpolate_log(inp.behave_logp, inp.theta_logp, _used(inp, paper_weight(inp)))


def a3po_prob(inp: ProxInputs) -> torch.Tensor:
    """A-3PO in probability space: pi_prox = w pi_behave + (1 - w) pi_theta, w = k/d."""
    return approx.interpolate_prob(inp.behave_logp, inp.theta_logp, _used(inp, paper_weight(inp)))


def a3po_step(inp: ProxInputs) -> torch.Tensor:
    """Anchored at the start of the step: log-space, w = (k/K) / (d + k/K) on minibatch k of K."""
    return approx.interpolate_log(inp.behave_logp, inp.theta_logp, _used(inp, step_weight(inp)))


def behave(inp: ProxInputs) -> torch.Tensor:
    """pi_prox = pi_behave: the decoupled loss collapses to plain PPO on the rollout policy."""
    if inp.versions is not None:
        _used(
            inp,
            _per_token(
                inp,
                ("behave",),
                lambda v: torch.ones(v.shape, dtype=torch.float32, device=v.device),
            ),
        )
    return approx.detached_f32(inp.behave_logp)


def recomputed(inp: ProxInputs) -> torch.Tensor:
    """The recompute forward's log-probs (ground truth)."""
    _used(inp, None)
    if inp.recomputed is None:
        raise ProxInputError(
            "prox_logp (the recompute forward's output) is missing from the batch, but the "
            "selected provider trains on it. The controller skipped compute_logp: check that "
            "actor.prox_logp_method is the same in the controller and in the workers."
        )
    return approx.detached_f32(inp.recomputed)


def _fallback(inp: ProxInputs) -> Provider:
    options = inp.options if inp.options is not None else A3POConfig()
    return registry.get_provider(options.fallback, key="actor.a3po.fallback")


def _theta_weight(versions: torch.Tensor) -> torch.Tensor:
    return torch.where(versions >= 0, 0.0, 1.0)  # prompt: pi_behave, as for every provider


def current(inp: ProxInputs) -> torch.Tensor:
    """Detached pi_theta on the step's first PPO minibatch, the fallback on later ones.

    AReaL's recompute evaluates the policy at the start of the step; minibatch 0 trains on those
    same weights, so there log pi_prox = log pi_theta exactly (needs actor.disable_dropout: true).
    """
    if inp.minibatch == 0:
        if inp.versions is not None:
            _used(inp, _per_token(inp, ("theta",), _theta_weight))  # w = 0: pi_theta
        return approx.detached_f32(inp.theta_logp)
    return _fallback(inp).compute(inp)


def hybrid(inp: ProxInputs) -> torch.Tensor:
    """The recompute on steps where the controller ran it (calibration), the fallback otherwise."""
    if inp.recomputed is not None:
        return recomputed(inp)
    return _fallback(inp).compute(inp)


def _native(needs_recompute: bool, description: str) -> Provider:
    """One of AReaL's own methods: the plugin leaves AReaL's code path untouched."""
    return Provider(
        native=True, needs_recompute=needs_recompute, approximate=False, description=description
    )


RECOMPUTE = _native(True, "AReaL's recompute forward pass (baseline, AReaL's own code path).")
LOGLINEAR = _native(
    False,
    "AReaL's built-in log-linear approximation (AReaL's own code path; reads versions one "
    "token off).",
)
METRICS = _native(True, "AReaL's recompute plus AReaL's approximation metrics.")
A3PO = Provider(
    a3po_log,
    needs_versions=True,
    finite=True,
    description="A-3PO as in the paper (arXiv 2512.06547): log-space interpolation with weight "
    "k/d, anchored k versions behind the current policy.",
)
A3PO_LINEAR = Provider(
    a3po_prob,
    needs_versions=True,
    finite=True,
    description="A-3PO in probability space, computed with log-sum-exp.",
)
A3PO_STEP = Provider(
    a3po_step,
    needs_versions=True,
    finite=True,
    uses_train_logp=True,
    exact=lambda inp: inp.minibatch == 0,
    description="A-3PO anchored at the start of the step, where AReaL's recompute evaluates the "
    "policy (the recommended switch): log-space interpolation with weight (k/K)/(d + k/K) on PPO "
    "minibatch k of K; exact on minibatch 0.",
)
BEHAVE = Provider(
    behave,
    prox_is_behave=True,
    finite=True,
    description="pi_prox = pi_behave (verl's bypass baseline).",
)
A3PO_METRICS = Provider(
    compute=recomputed,
    needs_recompute=True,
    approximate=False,
    scores_approximations=True,
    exact=lambda inp: True,
    description="Trains on the recompute and logs every approximate provider's error against it.",
)


def _composite(compute, exact, description: str, **flags) -> Provider:
    """Exact on some micro-batches, the ``actor.a3po.fallback`` provider on the others."""
    return Provider(
        compute, composite=True, approximate=False, exact=exact, description=description, **flags
    )


CURRENT = _composite(
    current,
    lambda inp: inp.minibatch == 0,
    "Exact on the first PPO minibatch (detached current log-probs), fallback after.",
    uses_train_logp=True,
    finite=True,  # pi_theta on minibatch 0, the fallback (itself checked) after
)
HYBRID = _composite(
    hybrid,
    lambda inp: inp.recomputed is not None,
    "Recompute every calibration_interval steps (and while the fallback's error is above "
    "error_threshold), fallback otherwise.",
    calibrated=True,
)


def check_update(inp: ProxInputs, provider_name: str, needs_versions: bool) -> None:
    """Check one PPO update's whole batch once, before its micro-batches; raises ProxInputError.

    ``inp`` holds the update's padded batch (``theta_logp`` is not read: the training forward has
    not run yet). On success it marks ``inp.shared`` as checked at ``current_version`` when,
    beyond :func:`check_inputs`' conditions, every version (masked or not) lies in
    [-1, current_version] and log pi_behave is finite everywhere: the update's micro-batches then
    skip their own check and look lag weights up per version (:func:`checked`). Two host syncs
    per update.
    """
    tensors = _named_inputs(inp, theta=False)
    _check_layout(inp, provider_name, needs_versions, tensors)
    _check_values(inp, provider_name, needs_versions, tensors)
    everywhere = torch.isfinite(inp.behave_logp).all()
    v = inp.versions
    if v is not None:
        everywhere &= ((v >= approx.PROMPT_VERSION) & (v <= inp.current_version)).all()
    if bool(everywhere):
        inp.shared[CHECKED_AT_VERSION] = inp.current_version


def check_theta_after_update(inputs: Sequence[ProxInputs], provider_name: str) -> None:
    """pi_theta of a checked update's micro-batches, checked once at its end; raises ProxInputError.

    A checked update's micro-batches skip :func:`check_inputs`, so nothing stops a non-finite
    training log-prob before its loss. Such a loss is non-finite, and AReaL's engine skips the
    optimizer step of a non-finite gradient norm (``FSDPEngine.train_batch``), so the weights
    are not lost; this check then ends the run with the error :func:`check_inputs` would have
    raised, one host sync per update. Micro-batches that were not checked are skipped (their
    own check already ran; with ``validate_inputs: false`` none is checked, here or anywhere).
    """
    checked_inputs = [i for i in inputs if checked(i)]
    if not checked_inputs:
        return
    bad = [~torch.isfinite(i.theta_logp) & i.loss_mask for i in checked_inputs]
    counts = torch.stack([b.sum() for b in bad]).tolist()  # the one host sync
    if not any(counts):
        return
    k = next(j for j, c in enumerate(counts) if c)
    where = [tuple(p) for p in bad[k].nonzero()[:5].tolist()]
    total = sum(int(i.loss_mask.sum()) for i in checked_inputs)
    raise ProxInputError(
        f"non-finite values in training log-probs (pi_theta): {sum(counts)} of {total} loss-mask "
        f"tokens in this PPO update (provider '{provider_name}'; first in micro-batch {k} at "
        f"{where}). The actor's forward produced NaN/inf: AReaL skipped the optimizer step of "
        "each PPO minibatch holding one (non-finite gradient norm). Lower actor.optimizer.lr, check "
        "actor.dtype and actor.optimizer.gradient_clipping, or resume from the last checkpoint."
    )


def check_inputs(inp: ProxInputs, provider_name: str, needs_versions: bool) -> None:
    """Validate one micro-batch's provider inputs; raises ProxInputError saying what to fix.

    Costs one device-to-host sync (a single ``any`` over all failure masks).
    NaN/inf outside the loss mask are ignored.
    """
    tensors = _named_inputs(inp, theta=True)
    _check_layout(inp, provider_name, needs_versions, tensors)
    _check_values(inp, provider_name, needs_versions, tensors)


def _named_inputs(inp: ProxInputs, theta: bool) -> dict[str, torch.Tensor]:
    tensors = {"logprobs (pi_behave)": inp.behave_logp}
    if theta:
        tensors["training log-probs (pi_theta)"] = inp.theta_logp
    if inp.recomputed is not None:
        tensors["prox_logp (recompute)"] = inp.recomputed
    return tensors


def _check_layout(
    inp: ProxInputs, provider_name: str, needs_versions: bool, tensors: dict[str, torch.Tensor]
) -> None:
    """Shapes, dtypes, current_version and the versions tensor: what is wrong before any value
    is read."""
    shape = inp.loss_mask.shape
    if inp.loss_mask.numel() == 0:
        raise ProxInputError(
            f"Empty micro-batch for provider '{provider_name}': loss_mask has shape "
            f"{tuple(shape)}. Check the rollout batch and actor.mb_spec."
        )
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            dtype = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise ProxInputError(
                f"{name} must be a floating-point tensor, got {dtype} (provider '{provider_name}')."
            )
        if t.shape != shape:
            raise ProxInputError(
                f"{name} has shape {tuple(t.shape)} but loss_mask has {tuple(shape)} "
                f"(provider '{provider_name}'): every per-token tensor must match."
            )
    if not isinstance(inp.current_version, int) or isinstance(inp.current_version, bool):
        raise ProxInputError(
            f"current_version must be an int (the trainer's weight version), got "
            f"{inp.current_version!r}."
        )
    if inp.current_version < 0:
        raise ProxInputError(f"current_version must be >= 0, got {inp.current_version}.")
    if not needs_versions:
        return
    v = inp.versions
    if v is None:
        raise ProxInputError(
            f"Provider '{provider_name}' needs per-token 'versions' but the batch has none. "
            "The rollout workflow must record the weight version of every generated token "
            "(AReaL's RLVRWorkflow does; custom workflows must set 'versions')."
        )
    if not isinstance(v, torch.Tensor) or v.dtype.is_floating_point or v.dtype == torch.bool:
        raise ProxInputError(
            f"'versions' must be an integer tensor, got "
            f"{v.dtype if isinstance(v, torch.Tensor) else type(v).__name__}."
        )
    if v.shape != shape:
        raise ProxInputError(
            f"'versions' has shape {tuple(v.shape)} but loss_mask has {tuple(shape)}."
        )


def _check_values(
    inp: ProxInputs, provider_name: str, needs_versions: bool, tensors: dict[str, torch.Tensor]
) -> None:
    """Finite values and versions in [0, current_version] inside the loss mask."""
    mask, v = inp.loss_mask.bool(), inp.versions
    # Fast path, one host sync and few passes: a sum of log-probs is finite iff every term is
    # (|log p| << 1e38); a version outside [0, current_version] turns its token's sum into NaN.
    parts = [t if t.dtype == torch.float32 else t.to(torch.float32) for t in tensors.values()]
    total = sum(parts[1:], parts[0])
    if needs_versions:
        total = torch.where(v.clamp(0, inp.current_version) == v, total, float("nan"))
    if bool(torch.where(mask, total, 0.0).isfinite().all()):
        return
    checks: list[tuple[str, torch.Tensor]] = [
        (f"non-finite values in {name}", ~torch.isfinite(t) & mask) for name, t in tensors.items()
    ]
    if needs_versions:
        checks.append(
            (
                f"versions ahead of the trainer (current_version={inp.current_version})",
                (v > inp.current_version) & mask,
            )
        )
        checks.append(("versions < 0 (prompt tag) inside the loss mask", (v < 0) & mask))
    for what, m in checks:
        if bool(m.any()):
            n = int(m.sum())
            where = [tuple(i) for i in m.nonzero()[:5].tolist()]
            raise ProxInputError(
                f"{what}: {n} of {int(mask.sum())} loss-mask tokens (first positions "
                f"{where}; provider '{provider_name}'). Values outside the loss mask are ignored."
            )
