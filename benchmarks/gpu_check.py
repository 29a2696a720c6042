"""Prepared device check: recompute against a3po-step on AReaL's FSDP actor, Qwen2.5-1.5B-shaped.

AReaL's real ``FSDPPPOActor`` (one process, world size 1) with the actor configuration of
``recipes/gsm8k_grpo_qwen2.5-1.5b-mb4_a3po.yaml`` as AReaL's loader reads it, on a randomly
initialised model of Qwen2.5-1.5B's shape (``init_from_scratch``: config and tokenizer only, no
download). CUDA: the full shape (``--shape qwen2.5-1.5b``), bf16 as the recipe; CPU (CI): a small
shape in fp32. One synthetic rollout batch: sequences of lags 0-4 behind the trainer's version,
interrupted generations moving to newer versions; behaviour log-probs are the model's own at lag
0 (an inference engine with the trainer's weights) and the model's own plus lag-sized noise
otherwise. For ``ppo_n_minibatches`` 1 and 4, from the same weights and optimizer state each time:

* ``recompute_logp``: AReaL's ``compute_logp`` over the batch, the stage ``a3po-step`` skips;
* ``update recompute`` (prox from that stage) and ``update a3po-step`` (no stage): ``ppo_update``;
* the plugin's cost on that update's own tensors: the provider (every micro-batch), the
  statistics (``prox_metrics.log_prox_stats`` and their export), the train-inference mismatch
  monitor (``mismatch.log_mismatch``, paid by every method, recompute included);
* peak device memory of the stage and of each update (CUDA: ``torch.cuda.max_memory_allocated``
  above the level at the call's start; CPU: torch's CPU allocator, through its profiler);
* checks: every loss finite; on a ``a3po-metrics`` step (the loss trains on the recompute and
  ``a3po-step`` is evaluated on the same micro-batches), lag-0 tokens exact: minibatch 0 equals
  the recompute, later minibatches equal pi_behave (the provider's definition) and the recompute.

Micro-batches: the recipe's token budget needs flash-attn, whose varlen attention keeps packed
sequences apart (AReaL packs them and passes no attention mask); with ``sdpa`` (no flash-attn, and
on CPU) one sequence per micro-batch, as the JSON says. One JSON out; no timing is judged here.

    python benchmarks/gpu_check.py --shape small --out docs/benchmarks/gpu_check/cpu_small.json
    python benchmarks/gpu_check.py --out $OUT/gpu_check.json          # CUDA, the full shape
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from device_standins import stand_in_absent  # noqa: E402
from trainer_setup import (  # noqa: E402
    CURRENT_VERSION,
    State,
    fresh,
    make_batch,
    peak_bytes,
    with_behave,
)

SCHEMA = "a3po-gpu-check/1"
RECIPE = ROOT / "recipes" / "gsm8k_grpo_qwen2.5-1.5b-mb4_a3po.yaml"
# Qwen2.5-1.5B(-Instruct)'s config.json: hidden, intermediate, layers, heads, kv heads, vocab.
SHAPES = {
    "qwen2.5-1.5b": dict(hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2,
                         vocab=151936),
    "small": dict(hidden=64, intermediate=128, layers=2, heads=2, kv_heads=1, vocab=512),
}  # fmt: skip
# sequences, prompt tokens, response tokens (GSM8K with Qwen2.5-1.5B-Instruct: ~160 prompt
# tokens with the chat template; the full shape uses half a rank's share of the recipe's batch)
BATCHES = {"qwen2.5-1.5b": (128, 160, 352), "small": (8, 8, 24)}
MAX_LAG = 4
MINIBATCHES = (1, 4)
PROVIDER = "a3po-step"
# Tolerance of "exact" against a second forward pass: fp32 and bf16 forward numerics.
TOLERANCE = {"float32": 1e-5, "bfloat16": 1e-2}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None,
                    help="default: qwen2.5-1.5b on CUDA, small on CPU")  # fmt: skip
    ap.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    ap.add_argument("--repeats", type=int, default=None, help="timed calls per arm (3; CPU 1)")
    ap.add_argument("--inner", type=int, default=5, help="calls per plugin-cost timing")
    ap.add_argument("--cpu-memory", action="store_true",
                    help="CPU: peak memory through torch's profiler (slow); else null")  # fmt: skip
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads on CPU (default 1)")
    ap.add_argument("--out", type=Path, default=None, help="write the JSON here (also printed)")
    return ap.parse_args(argv)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak(fn, device: str, cpu_memory: bool) -> int | None:
    """Peak bytes held above the level at the call's start (CPU: only with ``cpu_memory``; the
    profiler that reads it slows the call down many times)."""
    if device != "cuda":
        if not cpu_memory:
            fn()
            return None
        return peak_bytes(fn)
    _sync(device)
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated() - base


def _timed(fn, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def _wrapped(obj, name: str, record: list):
    """Record every call of ``obj.name`` (arguments and result, detached) while the block runs."""
    original = getattr(obj, name)

    def spy(*args, **kwargs):
        out = original(*args, **kwargs)
        record.append((args, kwargs, out.detach() if isinstance(out, torch.Tensor) else out))
        return out

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        object.__setattr__(obj, name, spy)  # a frozen Provider
    else:
        setattr(obj, name, spy)
    try:
        yield record
    finally:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            object.__setattr__(obj, name, original)
        else:
            setattr(obj, name, original)


def actor_config(model_dir: str, device: str, mb_tokens: int | None, fileroot: Path):
    """The recipe's actor as AReaL's loader reads it, on this model and one device."""
    from areal_a3po.testbeds.local_actor import load_recipe

    actor = load_recipe(RECIPE, fileroot).actor
    cpu = device == "cpu"
    spec = actor.mb_spec if mb_tokens is None else dataclasses.replace(
        actor.mb_spec, max_tokens_per_mb=mb_tokens
    )  # fmt: skip
    return dataclasses.replace(
        actor,
        path=model_dir,
        init_from_scratch=True,
        backend="fsdp:d1",
        attn_impl="flash_attention_2" if mb_tokens is None else "sdpa",
        dtype="float32" if cpu else actor.dtype,
        mb_spec=spec,
        prox_logp_method="recompute",
    )


def run(args: argparse.Namespace) -> dict:
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    shape = args.shape or ("qwen2.5-1.5b" if device == "cuda" else "small")
    if device == "cpu":
        torch.set_num_threads(args.threads)  # more threads than free cores only spin
    stood_in = stand_in_absent()
    import areal_a3po

    areal_a3po.activate()  # explicit: a pip --target install has no .pth hook (the device's)
    import areal.trainer.ppo.actor  # noqa: F401 - patched by the hook as it is imported

    from areal_a3po import coupling
    from areal_a3po.testbeds.local_actor import build_tiny_qwen2

    assert coupling.hooked(), "areal-a3po did not patch AReaL in this process"
    flash = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    n_seqs, prompt, response = BATCHES[shape]
    sizes = SHAPES[shape]
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        model_dir = build_tiny_qwen2(
            Path(tmp) / "model", max_positions=4096, weights=False, **sizes
        )
        cfg = actor_config(model_dir, device, None if flash else prompt + response, Path(tmp))
        torch.manual_seed(0)
        traj = make_batch(n_seqs, prompt, response, sizes["vocab"], MAX_LAG)
        out = _header(args, device, shape, traj, cfg, flash, stood_in)
        _measure(out, cfg, traj, device, args)
    out["ok"] = all(
        c["losses_finite"] and c["params_finite"] and c["lag0"]["exact"]
        for c in (r["checks"] for r in out["runs"])
    )
    return out


def _header(args, device: str, shape: str, traj, cfg, flash: bool, stood_in) -> dict:
    """The JSON's description of what ran (its ``runs`` still empty)."""
    import areal_a3po
    from areal_a3po.coupling import gate

    n_seqs, prompt, response = BATCHES[shape]
    lags = sorted(
        {int(v) for t in traj for v in CURRENT_VERSION - t["versions"][t["loss_mask"] > 0]}
    )
    return {
        "schema": SCHEMA,
        "ran_on": {
            "device": device,
            "device_name": torch.cuda.get_device_name() if device == "cuda" else "cpu",
            "torch": torch.__version__,
            "areal": gate.areal_version(),
            "areal_a3po": areal_a3po.__version__,
            "python": sys.version.split()[0],
            "torch_threads": torch.get_num_threads(),
            "stood_in": stood_in,
        },
        "shape": {"name": shape, **SHAPES[shape]},
        "batch": {
            "sequences": n_seqs, "prompt": prompt, "response": response,
            "tokens": n_seqs * (prompt + response), "current_version": CURRENT_VERSION,
            "lags": lags,
        },  # fmt: skip
        "actor": {
            "recipe": RECIPE.name,
            "dtype": cfg.dtype,
            "attn_impl": cfg.attn_impl,
            "gradient_checkpointing": cfg.gradient_checkpointing,
            "mb_spec": {"max_tokens_per_mb": cfg.mb_spec.max_tokens_per_mb},
            "mb_spec_why": "the recipe's (flash-attn keeps packed sequences apart)" if flash
            else "one sequence per micro-batch: sdpa would attend across packed sequences",
        },  # fmt: skip
        "memory_source": "torch.cuda.max_memory_allocated" if device == "cuda"
        else "torch CPU allocator (profiler memory events)" if args.cpu_memory
        else "n/a on CPU (--cpu-memory reads torch's CPU allocator)",
        "tolerance": TOLERANCE[cfg.dtype],
        "runs": [],
    }  # fmt: skip


def _measure(out: dict, cfg, traj, device: str, args: argparse.Namespace) -> None:
    """Each ``ppo_n_minibatches`` setting measured and checked on AReaL's actor, into
    ``out["runs"]`` (and the model's parameter count into ``out["shape"]``)."""
    import areal.trainer.ppo.actor as areal_actor
    from areal.utils import stats_tracker

    from areal_a3po import mismatch, prox_metrics, registry
    from areal_a3po.testbeds.local_actor import fsdp_actor

    repeats = args.repeats or (3 if device == "cuda" else 1)

    def behave(traj: list[dict], own: list) -> None:  # lag 0 exact; the same noise each time
        with_behave(traj, own, torch.Generator().manual_seed(1), exact_at_lag0=True)

    with fsdp_actor(cfg, version=CURRENT_VERSION) as engine:
        out["shape"]["parameters"] = sum(p.numel() for p in engine.model.parameters())
        behave(traj, engine.compute_logp(fresh(traj)))
        bench = Bench(engine, traj, device, repeats, stats_tracker, args.cpu_memory)
        bench.update(PROVIDER, fresh(traj), 1)  # warm-up: optimizer state, allocator
        bench.state = State(engine)
        behave(traj, engine.compute_logp(fresh(traj)))  # lag 0: these very weights
        for k in MINIBATCHES:
            r = bench.setting(k, areal_actor, mismatch, prox_metrics, registry)
            r["plugin_s"] = plugin_cost(r.pop("spied"), args.inner, device)
            r["plugin_s_over_recompute_logp"] = {
                name: s / r["recompute_logp"]["s"] for name, s in r["plugin_s"].items()
            }
            bench.state.restore()
            r["checks"]["lag0"] = lag0_check(
                bench, k, registry.get_provider(PROVIDER), out["tolerance"]
            )
            out["runs"].append(r)


@dataclasses.dataclass
class Bench:
    """The engine, the batch and the state every measured call starts from."""

    engine: object
    traj: list
    device: str
    repeats: int
    stats_tracker: object
    cpu_memory: bool = False
    state: State | None = None

    def update(self, method: str, data, n_minibatches: int, **options) -> None:
        from areal_a3po.config import A3POConfig

        cfg = self.engine.config
        cfg.prox_logp_method, cfg.ppo_n_minibatches = method, n_minibatches
        cfg.a3po = A3POConfig(**options)
        self.engine.ppo_update(self.engine.compute_advantages(data))
        self.stats_tracker.export()  # one update per export, as in training

    def arm(self, fn, spies=contextlib.nullcontext) -> dict:
        """Call 0 (untimed, spied, its peak memory), then ``repeats`` timed calls; every call
        from the same weights and optimizer state."""
        self.state.restore()
        with spies():
            peak = _peak(fn, self.device, self.cpu_memory)
        times = []
        for _ in range(self.repeats):
            self.state.restore()
            times.append(_timed(fn, self.device))
        return {"s": statistics.median(times), "s_all": times, "peak_bytes": peak}

    def setting(self, k: int, areal_actor, mismatch, prox_metrics, registry) -> dict:
        """The recompute stage and both updates at ``ppo_n_minibatches = k``, with their checks."""
        provider = registry.get_provider(PROVIDER)
        losses: list = []
        spied: dict[str, list] = {"provider": [], "statistics": [], "monitor": []}
        stage: dict = {}

        def recompute():
            stage["prox"] = self.engine.compute_logp(fresh(self.traj))

        @contextlib.contextmanager
        def recompute_spies():
            with _wrapped(areal_actor, "grpo_loss_fn", losses):
                with _wrapped(mismatch, "log_mismatch", spied["monitor"]):
                    yield

        @contextlib.contextmanager
        def a3po_spies():
            with _wrapped(areal_actor, "grpo_loss_fn", losses):
                with _wrapped(provider, "compute", spied["provider"]):
                    with _wrapped(prox_metrics, "log_prox_stats", spied["statistics"]):
                        yield

        r: dict = {"ppo_n_minibatches": k, "recompute_logp": self.arm(recompute)}
        r["update recompute"] = self.arm(
            lambda: self.update("recompute", fresh(self.traj, stage["prox"]), k), recompute_spies
        )
        r["update a3po-step"] = self.arm(
            lambda: self.update(PROVIDER, fresh(self.traj), k), a3po_spies
        )
        r["step_s"] = {
            "recompute": r["recompute_logp"]["s"] + r["update recompute"]["s"],
            "a3po-step": r["update a3po-step"]["s"],
        }
        finite = [bool(torch.isfinite(loss).all()) for _, _, loss in losses]
        params = self.engine.model.parameters()
        r["checks"] = {
            "losses": len(finite),
            "losses_finite": bool(finite) and all(finite),
            "params_finite": all(bool(torch.isfinite(p).all()) for p in params),
        }
        r["spied"] = dict(spied, compute=provider.compute)
        return r


def plugin_cost(spied: dict, inner: int, device: str) -> dict:
    """Median seconds of each part of the plugin's work in one update, re-run ``inner`` times on
    the tensors of the spied ``a3po-step`` update (provider, statistics) and ``recompute`` update
    (monitor). The provider's per-update weight table is rebuilt each time; the input check of the
    whole batch (``check_update``, once per update) is not in it."""
    from areal.utils import stats_tracker

    from areal_a3po import keys, mismatch, prox_metrics
    from areal_a3po.providers import CHECKED_AT_VERSION

    compute = spied["compute"]
    inputs = [args[0] for args, _, _ in spied["provider"]]
    memos = {id(inp.shared): inp.shared for inp in inputs}.values()
    (stats_call,) = spied["statistics"]
    (monitor_call,) = spied["monitor"]

    def provider():
        for memo in memos:  # the update's table, as at its first micro-batch
            for key in [k for k in memo if k != CHECKED_AT_VERSION]:
                del memo[key]
        for inp in inputs:
            compute(inp)

    def stats():
        with stats_tracker.scope(keys.UPDATE_SCOPE):
            prox_metrics.log_prox_stats(*stats_call[0])
        stats_tracker.export()

    def monitor():
        mismatch.log_mismatch(*monitor_call[0])
        stats_tracker.export()

    parts = (("provider", provider), ("statistics", stats), ("monitor", monitor))
    return {name: statistics.median(_timed(fn, device) for _ in range(inner)) for name, fn in parts}


def lag0_check(bench: Bench, k: int, provider, tol: float) -> dict:
    """An a3po-metrics update: the loss trains on the recompute, a3po-step is evaluated on the
    same micro-batches (ProxInputs.recomputed); lag-0 tokens compared per minibatch."""
    calls: list = []
    prox = bench.engine.compute_logp(fresh(bench.traj))
    with _wrapped(provider, "compute", calls):
        bench.update("a3po-metrics", fresh(bench.traj, prox), k, eval_providers=[PROVIDER])
    first, later_behave, later_recompute, tokens = 0.0, 0.0, 0.0, 0
    minibatches = set()
    for (inp,), _, out in calls:
        fresh_mask = inp.loss_mask.bool() & (inp.versions == inp.current_version)
        tokens += int(fresh_mask.sum())
        minibatches.add(inp.minibatch)
        got = out.detach().float()[fresh_mask]
        vs_recompute = _max_abs(got, inp.recomputed.float()[fresh_mask])
        if inp.minibatch == 0:
            first = max(first, vs_recompute)
        else:
            later_behave = max(later_behave, _max_abs(got, inp.behave_logp.float()[fresh_mask]))
            later_recompute = max(later_recompute, vs_recompute)
    return {
        "tokens": tokens,
        "minibatches": sorted(minibatches),
        "minibatch0_vs_recompute": first,
        "later_vs_behave": later_behave,
        "later_vs_recompute": later_recompute,
        "exact": tokens > 0 and minibatches == set(range(k)) and first <= tol
        and later_behave == 0.0 and later_recompute <= tol,
    }  # fmt: skip


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max()) if a.numel() else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=1, sort_keys=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
