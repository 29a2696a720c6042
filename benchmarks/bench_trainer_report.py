"""The printout of ``bench_trainer.py``: the setting, each clock's table, the provider's and the
mismatch monitor's cost over the recompute stage (``update_docs.py`` reads its lines)."""

from __future__ import annotations

from trainer_setup import CURRENT_VERSION

from areal_a3po.report import stats

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


def report(times, mem, rounds, clock, args, traj, n_params, setup) -> None:
    setting, sizes, cfg = setup
    _print_setup(clock, args, rounds, traj, n_params, setting, sizes, cfg)
    mem = dict(mem, **{"loss extra": mem["loss a3po"] - mem["loss prox"]})
    iv = {c: _print_clock(times, mem, rounds, c, title) for c, title in CLOCKS}
    print(
        f"peak memory, update a3po - update prox: {_mib(mem['update a3po'] - mem['update prox'])} "
        f"(loss level: {_mib(mem['loss extra'])}); recompute stage: {_mib(mem['recompute'])}"
    )
    _print_costs(times, iv["cpu"])  # contention inflates wall time, not this process's CPU time


CLOCKS = (("wall", "wall clock"), ("cpu", "CPU time of this process"))


def _print_setup(clock, args, rounds, traj, n_params, setting, sizes, cfg) -> None:
    wall, cpu_share = clock
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


def _print_clock(times, mem, rounds: int, c: str, title: str) -> dict:
    """One clock's table (median per arm, interval over rounds, peak memory) and the update
    difference; returns the intervals, ``update diff`` included."""
    iv = {n: stats.median_ci_repeats([v[0] for v in times[c][n].values()]) for n in ARMS}
    print(f"{title}:\n{'arm':<12} {'median':>11}  {'95 % CI over rounds':<27} {'peak memory':>12}")
    for name, i in iv.items():
        ci = f"[{_ms(i.low)}, {_ms(i.high)}]" if i.has_interval else "(no interval)"
        print(f"{name:<12} {_ms(i.estimate):>11}  {ci:<27} {_mib(mem[name]):>12}")
    diff = stats.median_ci_repeats(
        [times[c]["update a3po"][r][0] - times[c]["update prox"][r][0] for r in range(rounds)]
    )
    ratio = stats.repeats_ratio_ci(times[c]["update a3po"], times[c]["update prox"])
    iv["update diff"] = diff
    print(
        f"  update a3po - update prox, paired by round: {_ms(diff.estimate)} "
        f"[{_ms(diff.low)}, {_ms(diff.high)}] (CI width {_ms(_width(diff))}: the noise of a "
        f"whole update); ratio a3po/prox {ratio.estimate:.3f} [{ratio.low:.3f}, "
        f"{ratio.high:.3f}]"
    )
    return iv


def _print_costs(times, cpu: dict) -> None:
    """The provider's and the monitor's cost (CPU time), each over the recompute stage."""
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
