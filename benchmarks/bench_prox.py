"""The provider alone against AReaL's built-in approximation, per micro-batch (CPU, one process).

On the same tensors (float32 log-probs, int32 versions, lags 0..7):

* ``areal loglinear``   AReaL's own path for ``prox_logp_method: loglinear``:
                        ``_resolve_proximal_logp`` with prox_logp=None (its interpolation and its
                        NaN/Inf checks), what AReaL's loss runs per micro-batch
* ``a3po``              the plugin's ``a3po`` provider: a fresh ``ProxInputs`` (as the loss builds
                        one per micro-batch) and ``Provider.compute`` (lag weight + interpolation)
* ``areal linear``      ``compute_prox_logp_approximations(method="linear")``
* ``a3po-linear``       the plugin's probability-space provider, as ``a3po``
* ``validation``        ``check_inputs`` alone (the plugin's input validation, on by default,
                        ``actor.a3po.validate_inputs``); not part of the ratios

Arms are interleaved: every round runs each arm ``--inner`` times in a rotating order, and a
round's value is the median of its calls (CPU time of this process, which other processes on a
shared machine do not inflate). The ratios are ratios of mean per-round medians with a 95 %
bootstrap interval, rounds resampled paired (``areal_a3po.report.stats.repeats_ratio_ci``).

Usage: python benchmarks/bench_prox.py [--tokens 768,262144] [--rounds 20] [--inner 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from areal_a3po.report import stats  # noqa: E402

CURRENT_VERSION = 8
PAIRS = (("a3po", "areal loglinear"), ("a3po-linear", "areal linear"))


def arms(n: int) -> dict:
    """The timed calls on ``n`` tokens."""
    from areal.trainer.ppo import actor as areal_actor

    from areal_a3po import registry
    from areal_a3po.api import ProxInputs
    from areal_a3po.config import A3POConfig
    from areal_a3po.providers import check_inputs

    g = torch.Generator().manual_seed(0)
    behave = -torch.rand(n, generator=g) * 5
    theta = behave + 0.1 * torch.randn(n, generator=g)
    versions = torch.randint(0, CURRENT_VERSION, (n,), generator=g, dtype=torch.int32)
    mask = torch.ones(n, dtype=torch.bool)
    options = A3POConfig()
    log, prob = registry.get_provider("a3po"), registry.get_provider("a3po-linear")

    def inputs() -> ProxInputs:
        return ProxInputs(behave, theta, mask, versions, CURRENT_VERSION, options=options)

    checked = inputs()
    return {
        "areal loglinear": lambda: areal_actor._resolve_proximal_logp(
            None, "loglinear", behave, theta, versions, CURRENT_VERSION
        ),
        "a3po": lambda: log.compute(inputs()),
        "areal linear": lambda: areal_actor.compute_prox_logp_approximations(
            behave, theta, versions, CURRENT_VERSION, method="linear"
        ),
        "a3po-linear": lambda: prob.compute(inputs()),
        "validation": lambda: check_inputs(checked, "a3po", True),
    }


def measure(calls: dict, rounds: int, inner: int) -> dict[str, dict[int, list[float]]]:
    """Per arm, per round: the CPU time of each of ``inner`` calls (seconds)."""
    names = list(calls)
    for fn in calls.values():
        fn()  # warm-up
    out: dict[str, dict[int, list[float]]] = {name: {} for name in names}
    for r in range(rounds):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]  # rotate: no arm always runs first
            fn, samples = calls[name], []
            for _ in range(inner):
                t = time.process_time()
                fn()
                samples.append(time.process_time() - t)
            out[name][r] = samples
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", default="768,262144", help="comma-separated sizes")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--inner", type=int, default=50, help="calls per arm per round")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"bench_prox: CPU time of this process, torch threads {torch.get_num_threads()}, "
        f"{args.rounds} interleaved rounds x {args.inner} calls per arm; per round the median "
        "call; ratio = mean per-round median / baseline's, 95 % bootstrap interval over rounds"
    )
    for n in (int(x) for x in args.tokens.split(",")):
        times = measure(arms(n), args.rounds, args.inner)
        print(f"tokens {n}:")
        for name, by_round in times.items():
            iv = stats.median_ci_repeats([statistics.median(v) for v in by_round.values()])
            print(
                f"  {name:<16} {iv.estimate * 1e6:10.1f} us  "
                f"[{iv.low * 1e6:.1f}, {iv.high * 1e6:.1f}] (median over rounds, 95 % CI)"
            )
        for arm, base in PAIRS:
            ratio = stats.repeats_ratio_ci(times[arm], times[base])
            print(
                f"  ratio {arm} / {base} = {ratio.estimate:.3f} [{ratio.low:.3f}, {ratio.high:.3f}]"
            )


if __name__ == "__main__":
    main()
