"""What A-3PO saves and what it costs, on AReaL's real FSDPPPOActor (CPU, one process).

One batch with realistic version lags, one Qwen2-shaped model (random init, built here), arms
interleaved round by round in a rotating order, weights and optimizer state restored before every
update so every arm sees the same state:

* ``recompute``      AReaL's recompute stage: ``compute_logp`` over the batch (what a3po skips)
* ``update a3po``    ``ppo_update`` with ``prox_logp_method: a3po`` (prox from the provider)
* ``update prox``    ``ppo_update`` with ``recompute`` and the precomputed prox in the batch
* ``loss a3po``      one step's loss-side work on the micro-batch tensors captured from the a3po
                     update (no backward): the plugin's ``grpo_loss_fn`` per micro-batch inside
                     its per-update statistics (:func:`prox_metrics.per_update`), the token lag
                     it logs once per update, then ``stats_tracker.export``
* ``loss prox``      the same from the prox update: AReaL's loss per micro-batch, then the export
* ``loss extra``     ``loss a3po - loss prox``, median of back-to-back pairs: everything the plugin
                     adds to a step (input validation, provider, statistics, their export)
* ``provider``       ``Provider.compute`` alone on the same micro-batches, in a checked update
                     (its provider time includes the check, untimed apart below)
* ``validation``     ``check_update`` alone: the update's one check of the whole batch
* ``monitor``        the train-inference mismatch monitor alone (``areal_a3po/mismatch.py``), as
                     it runs for AReaL's recompute (every method pays it, so the loss rows both
                     leave it out of their difference: ``loss a3po`` includes it, as the update
                     does, and so is an upper bound on what the plugin adds): every micro-batch
                     of the recompute's update recorded, versions rolled, statistics, export

Each timed call is one trainer step's worth of work; the loss rows include the step's
``stats_tracker.export`` (the trainer exports once per step), the other rows empty the tracker
after the call, untimed. Every arm is timed twice at once: wall clock, and the CPU time of this process (what other
processes on a shared machine do not inflate; the verdict uses it). The provider's cost is
``update a3po - update prox``, but that difference is far below the noise of a multi-second
update; the loss-level extra measures it directly and is what the last line reports:
``provider cost / recompute stage = <ratio> [<95 % interval>]`` (goal: < 0.001), the ratio of
mean per-round medians, rounds resampled paired (bootstrap).

Settings: ``default`` (a 21 M-parameter model, one sequence per micro-batch), ``quick`` (smoke),
``smollm2``: recipes/cpu_smollm2_a3po.yaml's configuration on the real SmolLM2-135M-Instruct
(converted into ``--model-dir``; 32 sequences of 96 tokens, one per micro-batch, padded to 96),
``recipe``: recipes/cpu_tiny_a3po.yaml's own configuration, read from it (the embedded tiny
model's shape, batch size x samples = 64 sequences of prompt 3 + 16 tokens, its ``mb_spec``:
64 micro-batches a step, lags up to ``max_head_offpolicyness``).

Peak memory: the largest amount of memory held by torch's CPU allocator during one call, above
what was held when the call started (torch profiler memory events; a second, untimed pass).

Model, batch and state restore: ``trainer_setup.py`` next to this file.
Usage: python benchmarks/bench_trainer.py [--setting default|quick|recipe|smollm2] [--rounds 8]
       [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trainer_setup import (  # noqa: E402  (benchmarks/, next to this file)
    CURRENT_VERSION,
    SIZES,
    State,
    build_model,
    fresh,
    make_batch,
    peak_bytes,
    recipe_setting,
    smollm2_setting,
    with_behave,
)

from areal_a3po.report import stats  # noqa: E402
from tests import harness as H  # noqa: E402  (the project's real-AReaL-on-CPU helpers)

ARMS = (
    "recompute",
    "update a3po",
    "update prox",
    "loss a3po",
    "loss prox",
    "loss extra",
    "provider",
    "validation",
    "monitor",
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="--setting quick, 3 rounds (smoke run)")
    ap.add_argument(
        "--setting", choices=("default", "quick", "recipe", "smollm2"), default="default"
    )
    ap.add_argument(
        "--model-dir",
        default=None,
        help="smollm2: where the converted model is (or is built; default: a temporary dir)",
    )
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 8)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--inner", type=int, default=20, help="loss/provider repeats per round")
    args = ap.parse_args()
    setting = "quick" if args.quick else args.setting
    rounds = args.rounds or (3 if setting == "quick" else 8)
    torch.set_num_threads(args.threads)
    mb_spec, actor_fields = None, {}
    tmp = tempfile.TemporaryDirectory(prefix="bench-trainer-")
    if setting == "recipe":
        sizes, mb_spec = recipe_setting()
    elif setting == "smollm2":
        model_dir = Path(args.model_dir or Path(tmp.name) / "smollm2")
        model_path, n_params, sizes, actor_fields = smollm2_setting(model_dir)
        mb_spec = actor_fields.pop("mb_spec")
    else:
        sizes = SIZES[setting]
    hidden, inter, layers, heads, kv, vocab, n_seqs, prompt, response, max_lag = sizes

    import areal.trainer.ppo.actor as areal_actor
    from areal.api.cli_args import MicroBatchSpec
    from areal.utils import stats_tracker
    from areal.utils.data import concat_batch

    from areal_a3po import loss, mismatch, prox_metrics, registry
    from areal_a3po.config import A3POConfig
    from areal_a3po.providers import check_update

    if setting != "smollm2":
        model_path, n_params = build_model(
            Path(tmp.name) / "model", hidden, inter, layers, heads, kv, vocab
        )
    seq = prompt + response
    cfg = H.actor_config(
        model_path,
        prox_logp_method="recompute",
        # one sequence per micro-batch (the recipe: its own mb_spec, which does the same)
        mb_spec=MicroBatchSpec(**(mb_spec or {"max_tokens_per_mb": seq})),
        **actor_fields,
    )
    with H.fsdp_actor(cfg, version=CURRENT_VERSION) as engine:
        traj = make_batch(n_seqs, prompt, response, vocab, max_lag)
        traj = with_behave(traj, engine.compute_logp(fresh(traj)), torch.Generator().manual_seed(1))

        def recompute():
            return engine.compute_logp(fresh(traj))

        def update(method: str, prox=None, capture: list | None = None) -> None:
            engine.config.prox_logp_method = method
            engine.config.a3po = A3POConfig()
            data = engine.compute_advantages(fresh(traj, prox))
            original = areal_actor.grpo_loss_fn
            if capture is not None:

                def recording(logprobs, entropy, input_data, **kw):
                    capture.append((logprobs.detach(), entropy.detach(), dict(input_data), kw))
                    return original(logprobs, entropy, input_data, **kw)

                areal_actor.grpo_loss_fn = recording
            try:
                engine.ppo_update(data)
            finally:
                areal_actor.grpo_loss_fn = original

        # Warm-up (allocator, optimizer state), then the state every update starts from.
        update("a3po")
        stats_tracker.export()
        state = State(engine)
        prox = recompute()
        cap_a3po: list = []
        cap_prox: list = []
        update("a3po", capture=cap_a3po)
        stats_tracker.export()  # one update per export, as in training
        state.restore()
        update("recompute", prox, capture=cap_prox)
        stats_tracker.export()
        state.restore()
        again = recompute()
        for a, b in zip(prox, again, strict=True):  # the restore really restores
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        stats_tracker.export()

        loss_fn = areal_actor.grpo_loss_fn  # the plugin's dispatch (AReaL's for recompute)

        # the batch as _ppo_update receives it (AReaL concatenates the trajectories first)
        whole, _ = concat_batch(engine.compute_advantages(fresh(traj)))
        bins = A3POConfig().staleness_bins

        def loss_calls(captured):
            for lp, ent, data, kw in captured:
                loss_fn(lp.requires_grad_(True), ent, data, **kw)

        def plugin_step():
            """What the plugin adds to a step besides the loss: the rolled versions, the token
            lag, the minibatch context and the statistics (coupling.actor's _ppo_update wrapper)."""
            versions = torch.roll(whole["versions"], shifts=-1, dims=-1)
            prox_metrics.log_token_lag(versions, whole["loss_mask"], CURRENT_VERSION, bins)
            ctx = loss.UpdateContext(options=A3POConfig(), n_minibatches=1)
            loss.begin_update(ctx, {**whole, "versions": versions}, "a3po", CURRENT_VERSION)
            token = loss.UPDATE.set(ctx)
            try:
                with mismatch.per_update(cfg.eps_clip, cfg.eps_clip_higher, cfg.temperature):
                    with prox_metrics.per_update():
                        loss_calls(cap_a3po)
            finally:
                loss.UPDATE.reset(token)

        def monitor_alone():
            """One step's mismatch monitor on AReaL's recompute path (every micro-batch counted:
            the recompute ran; versions one position off, rolled by the monitor)."""
            with mismatch.per_update(cfg.eps_clip, cfg.eps_clip_higher, cfg.temperature):
                for lp, _, data, kw in cap_prox:
                    mismatch.record(lp, data, kw, 0, aligned=False)

        provider = registry.get_provider("a3po")
        rolled = {**whole, "versions": torch.roll(whole["versions"], shifts=-1, dims=-1)}

        def checked_batch() -> registry.ProxInputs:
            """The update's batch as ``loss.begin_update`` checks it (theta is not read)."""
            return registry.ProxInputs(
                behave_logp=rolled["logprobs"],
                theta_logp=rolled["logprobs"],
                loss_mask=rolled["loss_mask"].bool(),
                versions=rolled["versions"],
                current_version=CURRENT_VERSION,
                options=A3POConfig(),
            )

        def provider_alone():
            """One step's provider work as in training: the micro-batches of a checked update
            (weights looked up per version; the table built once per update)."""
            shared: dict = {}
            check_update(dataclasses.replace(checked_batch(), shared=shared), "a3po", True)
            for lp, _, data, kw in cap_a3po:
                inp = registry.ProxInputs(
                    behave_logp=data["logprobs"],
                    theta_logp=lp,
                    loss_mask=data["loss_mask"].bool(),
                    versions=data["versions"],
                    current_version=kw["current_version"],
                    options=A3POConfig(),
                    shared=shared,
                )
                provider.compute(inp)

        def validation_alone():
            """One step's input check: the whole batch, once (``check_update``)."""
            check_update(checked_batch(), "a3po", True)

        def timed(fn, export: bool = False) -> tuple[float, float]:
            """(wall, CPU time of this process): CPU time is what contention does not inflate.

            One call is one trainer step's worth of work; the trainer exports (and so empties)
            the stats tracker once per step: timed with ``export``, else emptied untimed. Left to
            pile up over many calls, AReaL's ``stats_tracker.stat`` (it checks each key's earlier
            entries on every call) would grow quadratically: a bench artefact, not a step's cost.
            """
            t, c = time.perf_counter(), time.process_time()
            fn()
            if export:
                stats_tracker.export()
            out = time.perf_counter() - t, time.process_time() - c
            stats_tracker.export()
            return out

        clocks = ("cpu", "wall")
        times: dict[str, dict[str, dict[int, list[float]]]] = {
            c: {a: {} for a in ARMS} for c in clocks
        }

        def put(name: str, r: int, samples: list[tuple[float, float]]) -> None:
            for i, c in enumerate(("wall", "cpu")):
                times[c][name][r] = [statistics.median(x[i] for x in samples)]

        def loss_pairs(r: int) -> None:
            """``inner`` back-to-back pairs (a3po, prox); per clock, medians of each and of the
            pairwise differences."""
            a, b = [], []
            for _ in range(args.inner):
                a.append(timed(plugin_step, export=True))
                b.append(timed(lambda: loss_calls(cap_prox), export=True))
            put("loss a3po", r, a)
            put("loss prox", r, b)
            put("loss extra", r, [(x[0] - y[0], x[1] - y[1]) for x, y in zip(a, b, strict=True)])

        order = ("recompute", "update a3po", "update prox", "loss", "provider")
        t0, cpu0 = time.perf_counter(), time.process_time()
        for r in range(rounds):
            for k in range(len(order)):
                name = order[(r + k) % len(order)]  # rotate: no arm always runs first
                if name == "recompute":
                    put(name, r, [timed(recompute)])
                elif name == "update a3po":
                    state.restore()
                    put(name, r, [timed(lambda: update("a3po"))])
                elif name == "update prox":
                    state.restore()
                    put(name, r, [timed(lambda: update("recompute", prox))])
                elif name == "loss":
                    loss_pairs(r)
                else:
                    for key, fn in (("provider", provider_alone), ("validation", validation_alone)):
                        put(key, r, [timed(fn) for _ in range(args.inner)])
                    put(
                        "monitor", r, [timed(monitor_alone, export=True) for _ in range(args.inner)]
                    )
        wall = time.perf_counter() - t0
        cpu_share = (time.process_time() - cpu0) / wall  # < 1: other processes took the core

        # Peak memory, untimed (the profiler slows the calls down).
        state.restore()
        mem = {"recompute": peak_bytes(recompute)}
        state.restore()
        mem["update a3po"] = peak_bytes(lambda: update("a3po"))
        stats_tracker.export()  # one update per export, as in training
        state.restore()
        mem["update prox"] = peak_bytes(lambda: update("recompute", prox))
        stats_tracker.export()
        mem["loss a3po"] = peak_bytes(plugin_step)
        stats_tracker.export()
        mem["loss prox"] = peak_bytes(lambda: loss_calls(cap_prox))
        stats_tracker.export()
        mem["provider"] = peak_bytes(provider_alone)
        mem["validation"] = peak_bytes(validation_alone)
        stats_tracker.export()
        mem["monitor"] = peak_bytes(monitor_alone)
        stats_tracker.export()
    tmp.cleanup()
    report(times, mem, rounds, (wall, cpu_share), args, traj, n_params, (setting, sizes, cfg))


def report(times, mem, rounds, clock, args, traj, n_params, setup) -> None:
    wall, cpu_share = clock
    setting, sizes, cfg = setup
    hidden, inter, layers, heads, kv, vocab, n_seqs, prompt, response, _ = sizes
    seq = prompt + response
    n_loss = sum(int(t["loss_mask"].sum()) for t in traj)
    lags = sorted(
        {int(v) for t in traj for v in (CURRENT_VERSION - t["versions"][t["versions"] >= 0])}
    )
    kind = (
        "SmolLM2-135M-Instruct (Llama weights in a Qwen2 container), untied embeddings"
        if setting == "smollm2"
        else "Qwen2-shaped, random init, tied embeddings"
    )
    print(
        f"model: {kind}: hidden {hidden}, intermediate {inter}, {layers} layers, "
        f"{heads} heads ({kv} kv), vocab {vocab}: {n_params / 1e6:.1f} M parameters"
        f" (setting: {setting})"
    )
    print(
        f"batch: {n_seqs} sequences x {seq} tokens = {n_seqs * seq} tokens ({n_loss} in the loss), "
        f"one sequence per micro-batch (mb_spec: n_mbs {cfg.mb_spec.n_mbs}, max_tokens_per_mb "
        f"{cfg.mb_spec.max_tokens_per_mb}); current version {CURRENT_VERSION}, token lags {lags}"
    )
    print(
        f"AReaL FSDPPPOActor on CPU (gloo, world size 1), torch threads {args.threads}, "
        f"ppo_n_minibatches 1; {rounds} interleaved rounds in {wall:.0f} s, of which this process "
        f"ran {cpu_share:.0%} (the rest: other processes on the machine); loss/provider rows: "
        f"median of {args.inner} calls per round, over the whole batch; loss rows include the "
        "step's stats_tracker.export"
    )
    mem = dict(mem, **{"loss extra": mem["loss a3po"] - mem["loss prox"]})
    iv: dict[str, dict] = {}
    for c, title in (("wall", "wall clock"), ("cpu", "CPU time of this process")):
        iv[c] = {n: stats.median_ci_repeats([v[0] for v in times[c][n].values()]) for n in ARMS}
        print(
            f"{title}:\n{'arm':<12} {'median':>11}  {'95 % CI over rounds':<27} {'peak memory':>12}"
        )
        for name, i in iv[c].items():
            ci = f"[{_ms(i.low)}, {_ms(i.high)}]" if i.has_interval else "(no interval)"
            print(f"{name:<12} {_ms(i.estimate):>11}  {ci:<27} {_mib(mem[name]):>12}")
        diff = stats.median_ci_repeats(
            [times[c]["update a3po"][r][0] - times[c]["update prox"][r][0] for r in range(rounds)]
        )
        ratio = stats.repeats_ratio_ci(times[c]["update a3po"], times[c]["update prox"])
        iv[c]["update diff"] = diff
        print(
            f"  update a3po - update prox, paired by round: {_ms(diff.estimate)} "
            f"[{_ms(diff.low)}, {_ms(diff.high)}] (CI width {_ms(_width(diff))}: the noise of a "
            f"whole update); ratio a3po/prox {ratio.estimate:.3f} [{ratio.low:.3f}, "
            f"{ratio.high:.3f}]"
        )
    print(
        f"peak memory, update a3po - update prox: {_mib(mem['update a3po'] - mem['update prox'])} "
        f"(loss level: {_mib(mem['loss extra'])}); recompute stage: {_mib(mem['recompute'])}"
    )
    cpu = iv["cpu"]  # contention inflates wall time, not this process's CPU time
    extra, diff = cpu["loss extra"], cpu["update diff"]
    cost = extra.estimate
    inside = diff.has_interval and diff.low <= cost <= diff.high
    print(
        f"provider cost (CPU time): loss-level extra {_ms(cost)} [{_ms(extra.low)}, "
        f"{_ms(extra.high)}] per step, export included ({'inside' if inside else 'NOT inside'} "
        f"the CI of update a3po - update prox); of it: provider {_ms(cpu['provider'].estimate)}, "
        f"input validation {_ms(cpu['validation'].estimate)}, the rest is dispatch, the plugin's "
        "statistics and their export, less AReaL's per-micro-batch proximal statistics that the "
        "plugin's once-per-update statistics replace (a negative extra: the plugin's step costs "
        "less than the recompute step's loss side). Ratio below: mean per-round extra / mean per-round "
        "recompute stage, 95 % bootstrap interval over rounds (paired)."
    )
    ratio = stats.repeats_ratio_ci(times["cpu"]["loss extra"], times["cpu"]["recompute"])
    interval = f"[{ratio.low:.6f}, {ratio.high:.6f}]" if ratio.has_interval else "(no interval)"
    print(f"provider cost / recompute stage = {ratio.estimate:.6f} {interval}")
    ratio = stats.repeats_ratio_ci(times["cpu"]["monitor"], times["cpu"]["recompute"])
    interval = f"[{ratio.low:.6f}, {ratio.high:.6f}]" if ratio.has_interval else "(no interval)"
    print(
        "mismatch monitor (every method, recompute included; in loss a3po above), CPU time: "
        f"{_ms(cpu['monitor'].estimate)} [{_ms(cpu['monitor'].low)}, {_ms(cpu['monitor'].high)}]"
        " per step, export included"
    )
    print(f"monitor cost / recompute stage = {ratio.estimate:.6f} {interval}")


def _width(iv) -> float | None:
    return None if not iv.has_interval else iv.high - iv.low


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _mib(nbytes: int | None) -> str:
    return "n/a" if nbytes is None else f"{nbytes / 2**20:.2f} MiB"


if __name__ == "__main__":
    main()
