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

import areal.trainer.ppo.actor as areal_actor  # noqa: E402
from areal.api.cli_args import MicroBatchSpec  # noqa: E402
from areal.utils import stats_tracker  # noqa: E402
from areal.utils.data import concat_batch  # noqa: E402
from bench_trainer_report import ARMS, report  # noqa: E402  (benchmarks/, next to this file)
from trainer_setup import (  # noqa: E402
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

from areal_a3po import loss, mismatch, prox_metrics, registry  # noqa: E402
from areal_a3po.config import A3POConfig  # noqa: E402
from areal_a3po.providers import check_update  # noqa: E402
from areal_a3po.testbeds import local_actor  # noqa: E402


def main() -> None:
    args = _args()
    setting = "quick" if args.quick else args.setting
    rounds = args.rounds or (3 if setting == "quick" else 8)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        n_params, sizes, cfg = _setup(setting, args.model_dir, Path(tmp))
        with local_actor.fsdp_actor(cfg, version=CURRENT_VERSION) as engine:
            bench = Bench(engine, cfg, sizes)
            times, clock = bench.rounds(rounds, args.inner)
            mem = bench.peak_memory()
    report(times, mem, rounds, clock, args, bench.traj, n_params, (setting, sizes, cfg))


def _args() -> argparse.Namespace:
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
    return ap.parse_args()


def _setup(setting: str, model_dir: str | None, tmp: Path) -> tuple[int, tuple, object]:
    """(parameters, sizes as in ``trainer_setup.SIZES``, the actor config) of ``setting``; the
    model is built (or converted, smollm2) under ``tmp``."""
    mb_spec, actor_fields = None, {}
    if setting == "recipe":
        sizes, mb_spec = recipe_setting()
    elif setting == "smollm2":
        model_path, n_params, sizes, actor_fields = smollm2_setting(
            Path(model_dir or tmp / "smollm2")
        )
        mb_spec = actor_fields.pop("mb_spec")
    else:
        sizes = SIZES[setting]
    hidden, inter, layers, heads, kv, vocab, _, prompt, response, _ = sizes
    if setting != "smollm2":
        model_path, n_params = build_model(tmp / "model", hidden, inter, layers, heads, kv, vocab)
    cfg = local_actor.actor_config(
        model_path,
        prox_logp_method="recompute",
        # one sequence per micro-batch (the recipe: its own mb_spec, which does the same)
        mb_spec=MicroBatchSpec(**(mb_spec or {"max_tokens_per_mb": prompt + response})),
        **actor_fields,
    )
    return n_params, sizes, cfg


class Bench:
    """The arms on one engine, each one trainer step's worth of work, from one restored state."""

    def __init__(self, engine, cfg, sizes: tuple) -> None:
        _, _, _, _, _, vocab, n_seqs, prompt, response, max_lag = sizes
        self.engine, self.cfg = engine, cfg
        traj = make_batch(n_seqs, prompt, response, vocab, max_lag)
        gen = torch.Generator().manual_seed(1)
        self.traj = with_behave(traj, engine.compute_logp(fresh(traj)), gen)
        self._capture()

    def _capture(self) -> None:
        """Warm-up (allocator, optimizer state), the state every update starts from, and the
        micro-batch tensors of one a3po and one recompute update (the loss arms replay them)."""
        self.update("a3po")
        stats_tracker.export()
        self.state = State(self.engine)
        self.prox = self.recompute()
        self.cap_a3po: list = []
        self.cap_prox: list = []
        self.update("a3po", capture=self.cap_a3po)
        stats_tracker.export()  # one update per export, as in training
        self.state.restore()
        self.update("recompute", self.prox, capture=self.cap_prox)
        stats_tracker.export()
        self.state.restore()
        again = self.recompute()
        for a, b in zip(self.prox, again, strict=True):  # the restore really restores
            torch.testing.assert_close(a, b, rtol=0, atol=0)
        stats_tracker.export()
        self.loss_fn = areal_actor.grpo_loss_fn  # the plugin's dispatch (AReaL's for recompute)
        # the batch as _ppo_update receives it (AReaL concatenates the trajectories first)
        self.whole, _ = concat_batch(self.engine.compute_advantages(fresh(self.traj)))
        versions = torch.roll(self.whole["versions"], shifts=-1, dims=-1)
        self.rolled = {**self.whole, "versions": versions}
        self.provider = registry.get_provider("a3po")

    # ------------------------------------------------------------------ the arms

    def recompute(self):
        return self.engine.compute_logp(fresh(self.traj))

    def update(self, method: str, prox=None, capture: list | None = None) -> None:
        self.engine.config.prox_logp_method = method
        self.engine.config.a3po = A3POConfig()
        data = self.engine.compute_advantages(fresh(self.traj, prox))
        original = areal_actor.grpo_loss_fn
        if capture is not None:

            def recording(logprobs, entropy, input_data, **kw):
                capture.append((logprobs.detach(), entropy.detach(), dict(input_data), kw))
                return original(logprobs, entropy, input_data, **kw)

            areal_actor.grpo_loss_fn = recording
        try:
            self.engine.ppo_update(data)
        finally:
            areal_actor.grpo_loss_fn = original

    def loss_calls(self, captured: list) -> None:
        for lp, ent, data, kw in captured:
            self.loss_fn(lp.requires_grad_(True), ent, data, **kw)

    def plugin_step(self) -> None:
        """What the plugin adds to a step besides the loss: the rolled versions, the token
        lag, the minibatch context and the statistics (coupling.actor's _ppo_update wrapper)."""
        cfg, whole = self.cfg, self.whole
        versions = torch.roll(whole["versions"], shifts=-1, dims=-1)
        bins = A3POConfig().staleness_bins
        prox_metrics.log_token_lag(versions, whole["loss_mask"], CURRENT_VERSION, bins)
        ctx = loss.UpdateContext(options=A3POConfig(), n_minibatches=1)
        loss.begin_update(ctx, {**whole, "versions": versions}, "a3po", CURRENT_VERSION)
        token = loss.UPDATE.set(ctx)
        try:
            with mismatch.per_update(cfg.eps_clip, cfg.eps_clip_higher, cfg.temperature):
                with prox_metrics.per_update():
                    self.loss_calls(self.cap_a3po)
        finally:
            loss.UPDATE.reset(token)

    def monitor_alone(self) -> None:
        """One step's mismatch monitor on AReaL's recompute path (every micro-batch counted:
        the recompute ran; versions one position off, rolled by the monitor)."""
        cfg = self.cfg
        with mismatch.per_update(cfg.eps_clip, cfg.eps_clip_higher, cfg.temperature):
            for lp, _, data, kw in self.cap_prox:
                mismatch.record(lp, data, kw, 0, aligned=False)

    def checked_batch(self):
        """The update's batch as ``loss.begin_update`` checks it (theta is not read)."""
        rolled = self.rolled
        return registry.ProxInputs(
            behave_logp=rolled["logprobs"],
            theta_logp=rolled["logprobs"],
            loss_mask=rolled["loss_mask"].bool(),
            versions=rolled["versions"],
            current_version=CURRENT_VERSION,
            options=A3POConfig(),
        )

    def provider_alone(self) -> None:
        """One step's provider work as in training: the micro-batches of a checked update
        (weights looked up per version; the table built once per update)."""
        shared: dict = {}
        check_update(dataclasses.replace(self.checked_batch(), shared=shared), "a3po", True)
        for lp, _, data, kw in self.cap_a3po:
            inp = registry.ProxInputs(
                behave_logp=data["logprobs"],
                theta_logp=lp,
                loss_mask=data["loss_mask"].bool(),
                versions=data["versions"],
                current_version=kw["current_version"],
                options=A3POConfig(),
                shared=shared,
            )
            self.provider.compute(inp)

    def validation_alone(self) -> None:
        """One step's input check: the whole batch, once (``check_update``)."""
        check_update(self.checked_batch(), "a3po", True)

    # ------------------------------------------------------------------ measuring them

    @staticmethod
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

    def rounds(self, rounds: int, inner: int) -> tuple[dict, tuple[float, float]]:
        """clock -> arm -> round -> [median], and (wall seconds, this process's CPU share)."""
        times: dict[str, dict[str, dict[int, list[float]]]] = {
            c: {a: {} for a in ARMS} for c in ("cpu", "wall")
        }

        def put(name: str, r: int, samples: list[tuple[float, float]]) -> None:
            for i, c in enumerate(("wall", "cpu")):
                times[c][name][r] = [statistics.median(x[i] for x in samples)]

        order = ("recompute", "update a3po", "update prox", "loss", "provider")
        t0, cpu0 = time.perf_counter(), time.process_time()
        for r in range(rounds):
            for k in range(len(order)):
                name = order[(r + k) % len(order)]  # rotate: no arm always runs first
                self._run(name, inner, lambda n, samples, r=r: put(n, r, samples))
        wall = time.perf_counter() - t0
        return times, (wall, (time.process_time() - cpu0) / wall)  # < 1: others took the core

    def _run(self, name: str, inner: int, put) -> None:
        """One round of one arm of ``rounds``' order, its samples given to ``put(arm, samples)``."""
        timed = self.timed
        if name == "recompute":
            put(name, [timed(self.recompute)])
        elif name == "update a3po":
            self.state.restore()
            put(name, [timed(lambda: self.update("a3po"))])
        elif name == "update prox":
            self.state.restore()
            put(name, [timed(lambda: self.update("recompute", self.prox))])
        elif name == "loss":  # back-to-back pairs (a3po, prox): each, and their differences
            a, b = [], []
            for _ in range(inner):
                a.append(timed(self.plugin_step, export=True))
                b.append(timed(lambda: self.loss_calls(self.cap_prox), export=True))
            put("loss a3po", a)
            put("loss prox", b)
            put("loss extra", [(x[0] - y[0], x[1] - y[1]) for x, y in zip(a, b, strict=True)])
        else:
            for key, fn in (
                ("provider", self.provider_alone),
                ("validation", self.validation_alone),
            ):
                put(key, [timed(fn) for _ in range(inner)])
            put("monitor", [timed(self.monitor_alone, export=True) for _ in range(inner)])

    def peak_memory(self) -> dict[str, int | None]:
        """Peak memory per arm, untimed (the profiler slows the calls down)."""
        self.state.restore()
        mem = {"recompute": peak_bytes(self.recompute)}
        self.state.restore()
        mem["update a3po"] = peak_bytes(lambda: self.update("a3po"))
        stats_tracker.export()  # one update per export, as in training
        self.state.restore()
        mem["update prox"] = peak_bytes(lambda: self.update("recompute", self.prox))
        stats_tracker.export()
        mem["loss a3po"] = peak_bytes(self.plugin_step)
        stats_tracker.export()
        mem["loss prox"] = peak_bytes(lambda: self.loss_calls(self.cap_prox))
        stats_tracker.export()
        mem["provider"] = peak_bytes(self.provider_alone)
        mem["validation"] = peak_bytes(self.validation_alone)
        stats_tracker.export()
        mem["monitor"] = peak_bytes(self.monitor_alone)
        stats_tracker.export()
        return mem


if __name__ == "__main__":
    main()
