"""Side-by-side cost of obtaining log pi_prox per micro-batch (one run, ratios printed).

Compares, on the same tensors: AReaL 1.0.4's loglinear path (``_resolve_proximal_logp`` with
prox_logp=None, including its NaN/Inf checks) and ``compute_prox_logp_approximations(method=linear)``
against the plugin's ``a3po`` / ``a3po-linear`` providers including input validation.
Usage: python benchmarks/bench_prox.py [--tokens 262144] [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def timeit(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=262144)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    from areal.trainer.ppo import actor as areal_actor

    from areal_a3po.config import A3POConfig
    from areal_a3po.providers import a3po_log, a3po_prob, check_inputs
    from areal_a3po.registry import ProxInputs

    g = torch.Generator().manual_seed(0)
    n = args.tokens
    behave = -torch.rand(n, generator=g) * 5
    theta = behave + 0.1 * torch.randn(n, generator=g)
    versions = torch.randint(0, 8, (n,), generator=g, dtype=torch.int32)
    mask = torch.ones(n, dtype=torch.bool)
    inp = ProxInputs(behave, theta, mask, versions, 8, options=A3POConfig())

    def areal_loglinear():
        return areal_actor._resolve_proximal_logp(None, "loglinear", behave, theta, versions, 8)

    def areal_linear():
        return areal_actor.compute_prox_logp_approximations(
            behave, theta, versions, 8, method="linear"
        )

    def ours_log():
        check_inputs(inp, "a3po", True)
        return a3po_log(inp)

    def ours_prob():
        check_inputs(inp, "a3po-linear", True)
        return a3po_prob(inp)

    t = {
        name: timeit(fn, args.repeats)
        for name, fn in [
            ("areal loglinear", areal_loglinear),
            ("a3po (validated)", ours_log),
            ("areal linear", areal_linear),
            ("a3po-linear (validated)", ours_prob),
        ]
    }
    print(f"tokens={n} threads={torch.get_num_threads()} median of {args.repeats}")
    for name, sec in t.items():
        print(f"  {name:<26} {sec * 1e3:8.3f} ms")
    print(
        f"ratio a3po / areal loglinear        = {t['a3po (validated)'] / t['areal loglinear']:.3f}"
    )
    print(
        f"ratio a3po-linear / areal linear    = {t['a3po-linear (validated)'] / t['areal linear']:.3f}"
    )


if __name__ == "__main__":
    main()
