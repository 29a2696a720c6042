"""Every metric key the plugin logs, in one place (no AReaL import, no torch).

The workers log under AReaL's scope ``ppo_actor/update/compute_logp/`` through ``stats_tracker``
(the loss runs inside ``ppo_actor/update``; the plugin opens ``compute_logp``, AReaL's own scope for
proximal statistics). The controller logs ``hybrid``'s decision under ``a3po/hybrid/``. The
coupling writes these names, calibration and the report read them, and ``docs/metrics.md`` is
tested against them.

Names here are *local* names (what the plugin passes to ``stats_tracker``); :func:`full` gives the
key a logger sees. Statistics (``stat``) are exported with ``/avg``, ``/min`` and ``/max``; counts
(``denominator``) and scalars without a suffix.
"""

from __future__ import annotations

# ------------------------------------------------------------------------------- scopes
UPDATE_SCOPE = "update"  # AReaL's scope around the minibatch loop of PPOActor._ppo_update
WORKER_SCOPE = f"ppo_actor/{UPDATE_SCOPE}"  # AReaL's scope around actor.ppo_update
PROX_SCOPE = "compute_logp"  # AReaL's scope for proximal statistics; the plugin logs inside it
PREFIX = f"{WORKER_SCOPE}/{PROX_SCOPE}/"  # full prefix of every worker key
CONTROLLER_PREFIX = "a3po/"  # the controller's keys (hybrid's decision)

STAT_SUFFIXES = ("avg", "min", "max")

# --------------------------------------------------------------------- per step (worker)
N_VALID_TOKENS = "n_valid_tokens"  # denominator: loss tokens
PROX_LOGP_GT = "prox_logp_gt"  # stat: the recompute forward's log pi_prox, when it ran
RECOMPUTED = "recomputed"  # scalar: 1 when the batch carried the recompute
EXACT_TOKEN_SHARE = "exact_token_share"  # stat: share of tokens whose pi_prox is exact
LAG_WEIGHT_BEHAVE = "lag_weight_behave"  # stat: w = clamp(k/d, 0, 1)
KL_DIV = ("kl_div_direct", "kl_div_taylor", "kl_div_dual")  # stats: same estimators as AReaL


# ------------------------------------------------------------------ per provider (worker)
# Logged for the provider the loss used, and for every provider scored against the recompute.
APPROX_LOGP = "approx_logp"  # stat: the log pi_prox used / that would have been used
BEHAVE_IMP_WEIGHT = "behave_imp_weight"  # stat: pi_prox / pi_behave
IMPORTANCE_WEIGHT = "importance_weight"  # stat: pi_theta / pi_prox
PROVIDER_STATS = (APPROX_LOGP, BEHAVE_IMP_WEIGHT, IMPORTANCE_WEIGHT)

# Errors against the recompute (only where it ran).
ABS_ERROR = "abs_error"
REL_ERROR = "rel_error"
SQUARED_ERROR = "squared_error"
BEHAVE_IMP_WEIGHT_ABS_ERROR = "behave_imp_weight_abs_error"
IMPORTANCE_WEIGHT_ABS_ERROR = "importance_weight_abs_error"
ERROR_STATS = (
    ABS_ERROR,
    REL_ERROR,
    SQUARED_ERROR,
    BEHAVE_IMP_WEIGHT_ABS_ERROR,
    IMPORTANCE_WEIGHT_ABS_ERROR,
)
# Errors hybrid may threshold on (actor.a3po.error_metric).
CALIBRATION_ERROR_METRICS = (ABS_ERROR, IMPORTANCE_WEIGHT_ABS_ERROR)


def provider_key(provider: str, metric: str) -> str:
    """Local name of a per-provider statistic, e.g. ``a3po/abs_error``."""
    return f"{provider}/{metric}"


# --------------------------------------- fidelity against the recompute (worker, areal_a3po.fidelity)
# Where the recompute ran, per scored provider, PPO minibatch k and token lag d (0..B-1, >= B;
# B = staleness_bins): mean |log pi_prox - recompute|, and the share of loss tokens whose clip /
# rejection-sampling decision differs from the recompute's (AReaL's loss semantics).
FIDELITY = "fidelity"
ABS_DLOGP = "abs_dlogp"  # stat (avg): |log pi_prox(provider) - log pi_prox(recompute)|
CLIP_MISMATCH = "clip_mismatch"  # stat (avg): clip decision differs (none / clipped / dual)
REJECT_MISMATCH = "reject_mismatch"  # stat (avg): rejection-sampling decision differs
FIDELITY_METRICS = (ABS_DLOGP, CLIP_MISMATCH, REJECT_MISMATCH)
FIDELITY_PATTERN = (
    FIDELITY + r"/(?P<provider>[^/]+)/mb(?P<minibatch>\d+)/lag(?P<lag>_ge\d+|\d+)/(?P<metric>\w+)"
)


def fidelity_lag(d: int, bins: int) -> str:
    """Lag bucket label: ``3`` for lag 3, ``_ge8`` for lags >= bins (8)."""
    return str(d) if d < bins else f"_ge{bins}"


def fidelity_tokens(minibatch: int, lag: str) -> str:
    """Denominator: loss tokens of PPO minibatch ``minibatch`` at lag bucket ``lag``."""
    return f"{FIDELITY}/mb{minibatch}/lag{lag}/n_tokens"


def fidelity_key(provider: str, minibatch: int, lag: str, metric: str) -> str:
    """Local name of a fidelity statistic, e.g. ``fidelity/a3po-step/mb1/lag2/abs_dlogp``."""
    return f"{FIDELITY}/{provider}/mb{minibatch}/lag{lag}/{metric}"


# ------------------------------- update fidelity against the noise floor (worker, probes)
# On probe updates (actor.a3po.update_fidelity_every, a3po-metrics only), per PPO minibatch k:
# the gradient of the loss with each scored provider's pi_prox against the recompute's, the
# recompute's own sampling noise, and the minibatch's lag mix (areal_a3po.update_fidelity).
# Scalars, one value per probe update.
UPDATE_FIDELITY = "update_fidelity"
UF_REFERENCE = "recompute"  # the reference gradient (what the real step trains on)
UF_NOISE_FLOOR = "noise_floor"  # split-half sampling noise of the reference gradient
UF_MINIBATCH = "minibatch"  # the minibatch itself
UF_REL_L2 = "rel_l2"  # provider: ||G_p - G_rec|| / ||G_rec||; reference: real step vs probe's
UF_COS = "cos"  # provider: cos(G_p, G_rec); noise floor: cos(G_A, G_B) of the two halves
UF_GRAD_NORM = "grad_norm"  # reference: ||G_rec|| (before clipping)
UF_MEAN_LAG = "mean_lag"  # minibatch: mean version lag of its loss tokens
UF_N_TOKENS = "n_tokens"  # minibatch: its loss tokens
UF_METRICS = {
    "provider": (UF_REL_L2, UF_COS),
    UF_REFERENCE: (UF_REL_L2, UF_GRAD_NORM),
    UF_NOISE_FLOOR: (UF_REL_L2, UF_COS),
    UF_MINIBATCH: (UF_MEAN_LAG, UF_N_TOKENS),
}
UPDATE_FIDELITY_PATTERN = UPDATE_FIDELITY + r"/(?P<name>[^/]+)/mb(?P<minibatch>\d+)/(?P<metric>\w+)"


def update_fidelity_key(name: str, minibatch: int, metric: str) -> str:
    """Local name of an update-fidelity scalar, e.g. ``update_fidelity/a3po-step/mb1/rel_l2``;
    ``name`` is a scored provider, :data:`UF_REFERENCE`, :data:`UF_NOISE_FLOOR` or
    :data:`UF_MINIBATCH`."""
    return f"{UPDATE_FIDELITY}/{name}/mb{minibatch}/{metric}"


def update_fidelity_keys(providers: list[str], n_minibatches: int) -> set[str]:
    """Every full key a probe update may emit for these scored providers."""
    named = [(p, m) for p in providers for m in UF_METRICS["provider"]]
    named += [(n, m) for n in (UF_REFERENCE, UF_NOISE_FLOOR, UF_MINIBATCH) for m in UF_METRICS[n]]
    return {full(update_fidelity_key(n, k, m)) for n, m in named for k in range(n_minibatches)}


# --------------------------------------------------- per step, every method (worker)
# The token lag as the loss sees it, logged for AReaL's own methods too (one definition of
# staleness for every arm): under AReaL's "ppo_actor" scope, before the update.
LAG_SCOPE = "a3po"
LAG_PREFIX = f"ppo_actor/{LAG_SCOPE}/"
LAG_TOKENS = "n_tokens"  # denominator: loss tokens with a version
TOKEN_LAG = "token_lag"  # stat: V - v per trained token


def token_lag(d: int) -> str:
    """Count of trained tokens with lag exactly ``d`` (every method)."""
    return f"token_lag_{d}"


def token_lag_ge(bins: int) -> str:
    return f"token_lag_ge{bins}"


TOKEN_LAG_PATTERN = r"token_lag_(ge)?(\d+)"


def lag_keys(bins: int) -> set[str]:
    """Every full key of the token-lag statistics."""
    out = {LAG_PREFIX + TOKEN_LAG + f"/{x}" for x in STAT_SUFFIXES}
    counts = [LAG_TOKENS, *(token_lag(d) for d in range(bins)), token_lag_ge(bins)]
    return out | {LAG_PREFIX + c for c in counts}


# ------------------------------------- train-inference mismatch, every method (worker)
# On tokens the trainer evaluates with the very weights that generated them (lag 0 on PPO
# minibatch 0; lag 0 on every minibatch where the recompute ran): log pi_trainer - log pi_behave
# is the inference engine's mismatch with the trainer, not staleness (areal_a3po.mismatch).
# Under LAG_SCOPE, once per update.
MISMATCH_TOKENS = "mismatch/n_tokens"  # denominator: the fresh loss tokens
MISMATCH_ABS = "mismatch/abs_dlogp"  # stat (avg): |log pi_trainer - log pi_behave|
MISMATCH_SIGNED = "mismatch/dlogp"  # stat (avg): log pi_trainer - log pi_behave
MISMATCH_OUTSIDE_CLIP = "mismatch/outside_clip"  # stat (avg): ratio outside the PPO clip range
MISMATCH_STATS = (MISMATCH_ABS, MISMATCH_SIGNED, MISMATCH_OUTSIDE_CLIP)


def mismatch_keys() -> set[str]:
    """Every full key of the mismatch monitor (averages: no suffix)."""
    return {LAG_PREFIX + s for s in (MISMATCH_TOKENS, *MISMATCH_STATS)}


# ------------------------------------------------------------------------- controller
HYBRID_RECOMPUTE = CONTROLLER_PREFIX + "hybrid/recompute"  # scalar: this step runs the recompute
# scalar: the fallback's last error was too high
HYBRID_ESCALATED = CONTROLLER_PREFIX + "hybrid/escalated"


def full(local: str, suffix: str | None = None) -> str:
    """The key a logger sees for a worker statistic: ``ppo_actor/update/compute_logp/<local>[/s]``."""
    return PREFIX + local + (f"/{suffix}" if suffix else "")


def worker_stats(providers: list[str], bins: int, n_minibatches: int = 1) -> set[str]:
    """Every full key the workers may emit for these providers, ``staleness_bins`` and
    ``ppo_n_minibatches``."""
    stats = [PROX_LOGP_GT, EXACT_TOKEN_SHARE, LAG_WEIGHT_BEHAVE, *KL_DIV]
    stats += [provider_key(p, m) for p in providers for m in (*PROVIDER_STATS, *ERROR_STATS)]
    out = {full(s, x) for s in stats for x in STAT_SUFFIXES}
    buckets = [(k, fidelity_lag(d, bins)) for k in range(n_minibatches) for d in range(bins + 1)]
    out |= {full(fidelity_tokens(k, lag)) for k, lag in buckets}
    out |= {
        full(fidelity_key(p, k, lag, m))
        for p in providers
        for k, lag in buckets
        for m in FIDELITY_METRICS
    }
    out |= update_fidelity_keys(providers, n_minibatches)
    return out | {full(N_VALID_TOKENS), full(RECOMPUTED)} | lag_keys(bins) | mismatch_keys()
