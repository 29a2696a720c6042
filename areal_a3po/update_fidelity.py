"""Update fidelity against the noise floor: how far each provider moves the step itself.

The fidelity keys (:mod:`areal_a3po.fidelity`) say which tokens a provider's π_prox treats
differently from the recompute's; this says whether the *gradient* goes elsewhere, measured against
how much sampling alone moves it.

On a probe update (``actor.a3po.update_fidelity_every: N`` with ``a3po-metrics``: the updates whose
weight version V has (V + 1) % N == 0), before AReaL's real ``train_batch`` of each PPO minibatch
k, the engine's own ``train_batch`` runs again on the same minibatch at the same weights (AReaL's
micro-batching, forward, loss and backward), with the engine's ``optimizer_step`` replaced by a
stand-in that steps nothing (weights, optimizer state and learning-rate schedule untouched); the
gradient is read as the backward left it, before clipping:

1. with the recompute's π_prox, what the real step trains on: G_rec (kept, one copy);
2. once per scored provider p (:func:`fidelity.scored_by_metrics`: ``eval_providers`` or every
   approximate provider, AReaL's ``loglinear``, ``current``), the loss trained on p's π_prox:
   ``rel_l2`` = ||G_p − G_rec|| / ||G_rec|| and ``cos`` = cos(G_p, G_rec);
3. the noise floor: the minibatch's sequences in two halves (even and odd rows), the recompute's
   loss on each (AReaL's token mean over the half): G_A (a second copy), then G_B.

The estimator of the floor. AReaL's loss is a token mean, so G_rec = (n_A G_A + n_B G_B) / n with
n_A, n_B the halves' loss tokens, n = n_A + n_B. Take the two halves as independent draws of the
same sampling process, each token contributing covariance S: Cov(G_A) = S/n_A, Cov(G_B) = S/n_B,
so E||G_A − G_B||² = tr S (1/n_A + 1/n_B) and E||G_rec − E G||² = tr S / n. Hence

    noise(G_rec) = ||G_A − G_B|| · sqrt(n_A n_B) / n       (= ||G_A − G_B|| / 2 for equal halves)

estimates the root-mean-square distance of the minibatch's gradient from its expectation; logged
relative to ||G_rec|| (``noise_floor/mb<k>/rel_l2``), with cos(G_A, G_B). A provider whose
``rel_l2`` sits well below it changes the step less than drawing another minibatch would. Limits:
one draw per probe (average over probes); sequences of one GRPO group share their advantage
baseline, so the halves are not fully independent; tokens of a sequence are correlated, which
the sequence split keeps on one side.

Then the real call runs unchanged: the random-number state is restored to what it was before the
probe (dropout draws the same masks), and its gradient, read before its optimizer step, is
compared with G_rec (``recompute/mb<k>/rel_l2``: 0 when the probe measured the step that was
taken; ``recompute/mb<k>/grad_norm`` is ||G_rec||). The minibatch's loss tokens and their mean
lag are logged beside (``minibatch/mb<k>/{n_tokens,mean_lag}``).

Sums run over the local shards of every parameter's gradient in float32 and are all-reduced over
the FSDP group (``dp_sp``) when torch.distributed runs more than one process. Nothing in the probe
passes is logged or kept: the plugin's records go to a dropped list and AReaL's ``stats_tracker``
writes to a scratch copy of its buffers. Scalars are logged once per probe update under
``ppo_actor/update/compute_logp/update_fidelity/`` (:mod:`keys`).

Cost, per probe update and PPO minibatch: (number of scored providers + 2) extra forward+backward
passes over the minibatch (the recompute, each provider, the two halves together one more), i.e.
with the six default scored providers 8 times the update's own training passes; one host sync per
pass. Updates that are not probes pay nothing. AReaL's FSDP engine only; no tensor parallelism.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from areal_a3po import approx, fidelity, keys, mismatch, prox_metrics
from areal_a3po.config import YAML_PREFIX, A3POConfigError, check_update_fidelity
from areal_a3po.loss import LossState, UpdateContext

KEY = f"{YAML_PREFIX}.update_fidelity_every"
Grads = list[torch.Tensor | None]  # one entry per parameter: its local gradient shard

__all__ = ["Probe", "for_update", "is_probe", "noise_floor", "split_halves"]


def is_probe(every: int, version: int) -> bool:
    """Whether the update at weight version ``version`` is probed: every ``every``-th update."""
    return every > 0 and (version + 1) % every == 0


def noise_floor(diff_sq: float, n_a: float, n_b: float, ref_norm: float) -> float:
    """The split-half estimate of the reference gradient's sampling noise relative to its norm:
    ||G_A − G_B|| sqrt(n_A n_B) / (n_A + n_B) / ||G_rec|| (module docstring)."""
    return math.sqrt(diff_sq * n_a * n_b) / (n_a + n_b) / ref_norm


def split_halves(mb: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The minibatch's sequences in two halves, even and odd rows of AReaL's padded minibatch
    (every per-token tensor, shaped like ``attention_mask``, and ``position_ids``; other entries
    are shared as AReaL shares them between minibatches); None under two sequences."""
    shape = tuple(mb["attention_mask"].shape[:2])
    n = shape[0]
    if n < 2:
        return None

    def take(rows: torch.Tensor) -> dict[str, Any]:
        out = {}
        for key, value in mb.items():
            per_row = torch.is_tensor(value) and value.dim() >= 1 and value.shape[0] == n
            if per_row and (tuple(value.shape[:2]) == shape or key == "position_ids"):
                out[key] = value.index_select(0, rows.to(value.device))
            else:
                out[key] = value
        return out

    return take(torch.arange(0, n, 2)), take(torch.arange(1, n, 2))


# ----------------------------------------------------------------------------- gradients


def _local_grads(params: list[torch.nn.Parameter]) -> Grads:
    out: Grads = []
    for p in params:
        g = p.grad
        if g is not None and hasattr(g, "to_local"):  # FSDP2: a DTensor shard
            g = g.to_local()
        out.append(None if g is None else g.detach())
    return out


def _copy(grads: Grads) -> Grads:
    return [None if g is None else g.clone() for g in grads]


def _sums(current: Grads, reference: Grads) -> torch.Tensor:
    """float32 [||c − r||², c·r, ||c||², ||r||²] over the local shards (a missing gradient: 0)."""
    total = torch.zeros(4, dtype=torch.float32)
    for c, r in zip(current, reference, strict=True):
        if c is None and r is None:
            continue
        c = torch.zeros_like(r, dtype=torch.float32) if c is None else c.float()
        r = torch.zeros_like(c, dtype=torch.float32) if r is None else r.float()
        part = torch.stack(
            [(c - r).square().sum(), (c * r).sum(), c.square().sum(), r.square().sum()]
        )
        total = total.to(part.device) + part
    return total


def _reduced(t: torch.Tensor, group: Any, op: str = "sum") -> list[float]:
    """``t`` summed (or its minimum taken) over ``group``; to the host (the probe's one sync)."""
    if group is not None:
        import torch.distributed as dist

        if dist.get_backend(group) == "nccl" and t.device.type != "cuda":
            t = t.to(torch.device("cuda", torch.cuda.current_device()))
        dist.all_reduce(t, op=dist.ReduceOp.MIN if op == "min" else dist.ReduceOp.SUM, group=group)
    return [float(x) for x in t.tolist()]


# ----------------------------------------------------------------------------- quiet passes


@contextlib.contextmanager
def _scratch_stats() -> Iterator[None]:
    """AReaL's default ``stats_tracker`` writes into copies of its buffers, dropped after."""
    from areal.utils import stats_tracker

    tracker = stats_tracker.DEFAULT_TRACKER
    saved = {name: v for name, v in vars(tracker).items() if isinstance(v, dict)}
    for name, buffer in saved.items():
        scratch = copy.copy(buffer)  # a defaultdict keeps its factory
        for key, item in scratch.items():
            if isinstance(item, list):
                scratch[key] = list(item)
        setattr(tracker, name, scratch)
    try:
        yield
    finally:
        for name, buffer in saved.items():
            setattr(tracker, name, buffer)


@contextlib.contextmanager
def _replaced(obj: Any, name: str, value: Any) -> Iterator[None]:
    """``obj.name = value`` on the instance for the block; what was there before, after."""
    had = name in vars(obj)
    before = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, before)
        else:
            delattr(obj, name)


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


def _trained_on(name: str) -> Callable[[LossState], torch.Tensor]:
    """The probe's π_prox for the loss: scored provider ``name``'s on the loss tokens."""

    def prox(state: LossState) -> torch.Tensor:
        inp = state.inputs
        theta = inp.theta_logp.detach().float()  # off the loss mask: finite, never used
        return torch.where(inp.loss_mask.bool(), fidelity.scored_prox(name, state), theta)

    return prox


# ----------------------------------------------------------------------------- the probe


@dataclass
class Probe:
    """One probe update: runs the extra passes per minibatch and keeps their scalars."""

    engine: Any
    ctx: UpdateContext
    names: list[str]  # scored providers
    version: int
    group: Any = None  # the FSDP process group, None in a single process
    values: dict[str, float] = field(default_factory=dict)  # local key -> value

    def _key(self, name: str, metric: str) -> str:
        return keys.update_fidelity_key(name, self.ctx.minibatch, metric)

    def _pass(self, call: Callable[[], Any], rng: dict, prox: Callable | None = None) -> None:
        """One ``train_batch`` with the stand-in optimizer step, quiet, at the probe's RNG state."""
        stepped: list[bool] = []

        def stand_in(*args: Any, **kwargs: Any) -> dict[str, float]:
            stepped.append(True)  # no clipping, no step: the gradient stays as the backward left it
            return {}

        self.ctx.probe = prox
        try:
            with _replaced(self.engine, "optimizer_step", stand_in), _scratch_stats():
                with mismatch.paused(), prox_metrics.paused():
                    _set_rng(rng)
                    call()
        finally:
            self.ctx.probe = None
        if not stepped:
            raise A3POConfigError(
                f"{KEY}: the engine's train_batch ({type(self.engine).__name__}) did not call "
                "optimizer_step, so the probe cannot read its gradient; set it to 0."
            )

    def train_batch(self, train_batch: Callable, *args: Any, **kwargs: Any) -> Any:
        """Probe minibatch ``ctx.minibatch``, then AReaL's real ``train_batch(*args, **kwargs)``."""
        bound = inspect.signature(train_batch).bind(*args, **kwargs)
        first = next(iter(bound.arguments))  # the minibatch (``input_``)
        mb, weight_fn = bound.arguments[first], bound.arguments.get("loss_weight_fn")
        params = list(self.engine.model.parameters())
        rng = _rng_state()

        def on(input_: Any) -> Callable[[], Any]:
            b = inspect.signature(train_batch).bind(*args, **kwargs)
            b.arguments[first] = input_
            return lambda: train_batch(*b.args, **b.kwargs)

        self._minibatch_lag(mb)
        self._pass(on(mb), rng)
        ref = _copy(_local_grads(params))
        ref_sq = _reduced(_sums(ref, ref)[3:], self.group)[0]
        self.values[self._key(keys.UF_REFERENCE, keys.UF_GRAD_NORM)] = math.sqrt(ref_sq)
        if ref_sq > 0.0:  # a zero gradient (every advantage 0) has no direction to compare
            for name in self.names:
                self._pass(on(mb), rng, _trained_on(name))
                d_sq, dot, p_sq, _ = _reduced(_sums(_local_grads(params), ref), self.group)
                self.values[self._key(name, keys.UF_REL_L2)] = math.sqrt(d_sq / ref_sq)
                cos = dot / math.sqrt(p_sq * ref_sq) if p_sq > 0 else 0.0
                self.values[self._key(name, keys.UF_COS)] = cos
            self._floor(mb, on, rng, params, weight_fn, ref_sq)
        self.engine.optimizer_zero_grad()
        _set_rng(rng)  # the real call draws what it would have drawn without the probe

        real = self.engine.optimizer_step

        def checked_step(*a: Any, **kw: Any) -> Any:
            if ref_sq > 0.0:
                d_sq = _reduced(_sums(_local_grads(params), ref)[:1], self.group)[0]
                self.values[self._key(keys.UF_REFERENCE, keys.UF_REL_L2)] = math.sqrt(d_sq / ref_sq)
            return real(*a, **kw)

        with _replaced(self.engine, "optimizer_step", checked_step):
            return train_batch(*args, **kwargs)

    def _floor(self, mb: dict, on: Callable, rng: dict, params: list, weight_fn, ref_sq) -> None:
        """The split-half noise floor of the reference gradient (module docstring)."""
        halves = split_halves(mb)
        rows = torch.tensor([len(mb["attention_mask"])], dtype=torch.float32)
        if _reduced(rows, self.group, op="min")[0] < 2 or halves is None or weight_fn is None:
            return
        counts = torch.stack([torch.as_tensor(weight_fn(h)).float().cpu() for h in halves])
        n_a, n_b = _reduced(counts, self.group)
        if not (n_a > 0 and n_b > 0):
            return
        self._pass(on(halves[0]), rng)
        g_a = _copy(_local_grads(params))
        self._pass(on(halves[1]), rng)
        d_sq, dot, b_sq, a_sq = _reduced(_sums(_local_grads(params), g_a), self.group)
        del g_a
        floor = self._key(keys.UF_NOISE_FLOOR, keys.UF_REL_L2)
        self.values[floor] = noise_floor(d_sq, n_a, n_b, math.sqrt(ref_sq))
        cos = dot / math.sqrt(a_sq * b_sq) if a_sq > 0 and b_sq > 0 else 0.0
        self.values[self._key(keys.UF_NOISE_FLOOR, keys.UF_COS)] = cos

    def _minibatch_lag(self, mb: dict) -> None:
        versions, mask = mb["versions"], mb["loss_mask"].bool()
        lag = approx.staleness(versions, self.version).float()
        counted = mask & (versions >= 0)
        sums = torch.stack([torch.where(counted, lag, 0.0).sum(), counted.sum().float()])
        lag_sum, n = _reduced(sums.float().cpu(), self.group)
        self.values[self._key(keys.UF_MINIBATCH, keys.UF_N_TOKENS)] = n
        if n > 0:
            self.values[self._key(keys.UF_MINIBATCH, keys.UF_MEAN_LAG)] = lag_sum / n

    def log(self) -> None:
        """The probe's scalars, once, in AReaL's ``compute_logp`` scope under ``update``."""
        from areal.utils import stats_tracker

        if self.values:
            with stats_tracker.scope(keys.UPDATE_SCOPE), stats_tracker.scope(keys.PROX_SCOPE):
                stats_tracker.scalar(**self.values)


def _fsdp_group(engine: Any) -> Any:
    """The FSDP engine's shard group when several processes run, else None; raises where the
    probe cannot read a whole gradient (another engine, tensor parallelism)."""
    from areal.engine.fsdp_engine import FSDPEngine

    if not isinstance(engine, FSDPEngine):
        raise A3POConfigError(
            f"{KEY} probes AReaL's FSDP engine (actor.backend fsdp:...); this actor runs "
            f"{type(engine).__name__}. Set it to 0."
        )
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    mesh = engine.world_mesh
    if "tp" in (mesh.mesh_dim_names or ()) and mesh["tp"].size() > 1:
        raise A3POConfigError(
            f"{KEY} does not support tensor parallelism (the tp mesh has {mesh['tp'].size()} "
            "ranks); set it to 0 or run without tp."
        )
    return mesh["dp_sp"].get_group()


_WARNED: list[bool] = [False]


def for_update(actor: Any, ctx: UpdateContext, data: dict[str, Any]) -> Probe | None:
    """The probe of this ``_ppo_update`` (``actor``: AReaL's PPOActor), or None when it is not a
    probe update; raises A3POConfigError naming the key where a probe cannot run."""
    options = actor.config.a3po
    if not options.update_fidelity_every:
        return None
    check_update_fidelity(actor.config.prox_logp_method, options)
    engine = actor.engine
    version = engine.get_version()
    if not is_probe(options.update_fidelity_every, version):
        return None
    if data.get("prox_logp") is None or data.get("versions") is None:
        if not _WARNED[0]:
            _WARNED[0] = True
            missing = "prox_logp (the recompute)" if data.get("prox_logp") is None else "versions"
            from areal.utils import logging

            logging.getLogger("A3POUpdateFidelity").warning(
                f"{KEY}: the update's batch has no {missing}; nothing probed."
            )
        return None
    names = fidelity.scored_by_metrics(options)
    return Probe(engine, ctx, names, version, _fsdp_group(engine))
