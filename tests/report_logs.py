"""Runs logged the way AReaL's trainer logs them, for the report tests.

The stats dicts are produced the way AReaL's trainer produces them: values go into
``areal.utils.stats_tracker.DistributedStatsTracker`` (scopes ``ppo_actor`` / ``update`` /
``compute_logp`` / ``version_stats``, the ``eval-rollout`` tracker, ``timeperf/*`` scalars as
``record_timing`` stores them), are exported (``*__count`` keys included), merged like
``export_all`` and handed to ``StatsLogger.commit(epoch, step, global_step, stats)`` with
tensorboard enabled. Timings are fed as exact binary fractions so float32 storage is exact.
"""

from __future__ import annotations

import os

import pytest

# a test module importing this one is skipped where one of these is missing
torch = pytest.importorskip("torch")
pytest.importorskip("tensorboard")
pytest.importorskip("matplotlib")

# ------------------------------------------------------------------ what the fake runs log

N_STEPS = 5
# seconds per trainer stage per step; step 0 is the (slow) warm-up step
BASE_TIMES = {
    "rollout": [8.0, 2.0, 2.5, 3.0, 2.5],
    "recompute_logp": [4.0, 1.0, 1.0, 1.5, 1.0],
    "compute_advantage": [0.5, 0.25, 0.25, 0.25, 0.25],
    "train_step": [6.0, 3.0, 3.0, 3.0, 3.0],
    "update_weights": [1.0, 0.5, 0.5, 0.5, 0.5],
}
A3PO_TIMES = {  # no recompute_logp stage at all (AReaL only times it when it recomputes)
    "rollout": [8.0, 2.0, 2.0, 2.5, 2.0],
    "compute_advantage": [0.5, 0.25, 0.25, 0.25, 0.25],
    "train_step": [6.25, 3.25, 3.25, 3.25, 3.25],
    "update_weights": [1.0, 0.5, 0.5, 0.5, 0.5],
}
# per-sequence task rewards of each step's batch (4 sequences)
BASE_REWARDS = [[0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], [1, 1, 1, 1]]
A3PO_REWARDS = [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1]]
BASE_EVAL = {1: [0.5, 1.0], 3: [1.0, 1.0]}  # eval rollouts' rewards on eval steps
BASE_STALENESS = [(0.5, 1.0), (1.0, 2.0), (1.25, 3.0), (1.0, 2.0), (0.75, 2.0)]  # theta avg, max
# per-token lag of the a3po run (our provider's histogram/avg/max keys)
A3PO_LAGS = [[0, 0, 1, 1, 2], [0, 1, 1, 2, 3], [1, 1, 2, 9, 0], [0, 1, 2, 2, 8], [0, 1, 1, 1, 1]]
A3PO_RECOMPUTED = [1, 0, 1, 0, 0]
# log pi_trainer - log pi_behave on the a3po run's fresh tokens (the mismatch monitor's input)
A3PO_MISMATCH = [[0.25, -0.25], [0.5, 0.0], [0.125, 0.125], [0.0, 0.0], [-0.5, 0.25]]
A3PO_ABS_ERR = {0: [0.5, 0.25, 0.25, 0.0, 0.0], 2: [0.125, 0.125, 0.25, 0.5, 0.0]}


def export(*trackers) -> dict:
    stats = {}
    for tr in trackers:
        stats.update(tr.export())
    return stats


def tracker_with_times_and_reward(times: dict, rewards: dict, step: int):
    """A stats tracker holding one step's stage times and per-sequence task rewards."""
    from areal.utils.stats_tracker import DistributedStatsTracker

    tr = DistributedStatsTracker()
    tr.scalar(**{f"timeperf/{k}": v[step] for k, v in times.items()})
    with tr.scope("ppo_actor"):
        r = torch.tensor(rewards[step], dtype=torch.float32)
        tr.denominator(n_seqs=torch.ones_like(r, dtype=torch.bool))
        tr.stat(task_reward=r, denominator="n_seqs")
    return tr


def base_stats(step: int) -> dict:
    from areal.utils.stats_tracker import DistributedStatsTracker

    tr = tracker_with_times_and_reward(BASE_TIMES, BASE_REWARDS, step)
    with tr.scope("ppo_actor"):
        tr.scalar(eps_clip=0.2)
        with tr.scope("update"), tr.scope("version_stats"):
            avg, mx = BASE_STALENESS[step]
            tr.scalar(sample_staleness_theta_avg=avg, sample_staleness_theta_max=mx)
    ev = DistributedStatsTracker("eval-rollout")
    for r in BASE_EVAL.get(step, []):
        ev.scalar(reward=r)
    return export(tr, ev)


def a3po_stats(step: int) -> dict:
    from areal.utils.stats_tracker import ReduceType

    tr = tracker_with_times_and_reward(A3PO_TIMES, A3PO_REWARDS, step)
    with tr.scope("ppo_actor"):
        lag = torch.tensor(A3PO_LAGS[step])
        with tr.scope("a3po"):  # the token lag, as the plugin logs it for every method
            tr.denominator(n_tokens=torch.ones_like(lag, dtype=torch.bool))
            tr.stat(token_lag=lag.float(), denominator="n_tokens")
            counts = {f"token_lag_{k}": (lag == k).float() for k in range(8)}
            counts["token_lag_ge8"] = (lag >= 8).float()
            tr.stat(**counts, denominator="n_tokens", reduce_type=ReduceType.SUM)
            d = torch.tensor(A3PO_MISMATCH[step])  # as areal_a3po.mismatch logs it
            tr.denominator(**{"mismatch/n_tokens": torch.ones_like(d, dtype=torch.bool)})
            outside = ((d.exp() > 1.2) | (d.exp() < 0.8)).float()
            tr.stat(
                **{"mismatch/abs_dlogp": d.abs(), "mismatch/dlogp": d},
                **{"mismatch/outside_clip": outside},
                denominator="mismatch/n_tokens",
                reduce_type=ReduceType.AVG,
            )
        with tr.scope("update"), tr.scope("compute_logp"):
            tr.denominator(n_valid_tokens=torch.ones_like(lag, dtype=torch.bool))
            tr.stat(exact_token_share=(lag <= 1).float(), denominator="n_valid_tokens")
            tr.scalar(recomputed=A3PO_RECOMPUTED[step])
            if step in A3PO_ABS_ERR:
                err = torch.tensor(A3PO_ABS_ERR[step], dtype=torch.float32)
                tr.stat(
                    **{
                        "a3po/abs_error": err,
                        "a3po/rel_error": 2 * err,
                        "a3po/importance_weight_abs_error": err / 2,
                        "a3po/behave_imp_weight_abs_error": err / 4,
                    },
                    denominator="n_valid_tokens",
                )
    return export(tr)


def reward_only_stats(step: int) -> dict:
    return {"ppo_actor/task_reward/avg": 0.25 * step, "ppo_actor/eps_clip": 0.2}


def write_run(root, name: str, make_stats, n_steps: int = N_STEPS) -> str:
    """Drive AReaL's StatsLogger (tensorboard on) exactly as RLTrainer does; return the run dir."""
    from areal.api import FinetuneSpec
    from areal.api.cli_args import BaseExperimentConfig, StatsLoggerConfig, TensorBoardConfig
    from areal.utils.stats_logger import StatsLogger

    run_dir = os.path.join(str(root), name)
    cfg = BaseExperimentConfig(
        experiment_name="a3po-report-test",
        trial_name=name,
        stats_logger=StatsLoggerConfig(
            experiment_name="a3po-report-test",
            trial_name=name,
            fileroot=os.path.join(str(root), "fileroot"),
            tensorboard=TensorBoardConfig(path=os.path.join(run_dir, "tensorboard")),
        ),
    )
    logger = StatsLogger(
        cfg, FinetuneSpec(total_train_epochs=1, dataset_size=4 * n_steps, train_batch_size=4)
    )
    for step in range(n_steps):
        logger.commit(epoch=0, step=step, global_step=step, data=make_stats(step))
    logger.close()
    return run_dir


def seed_run_stats(recompute: float, train: float, reward: float, seed: int):
    """Stage times with 2 % noise and a reward ramp ending at ``reward``, for one seed."""
    import numpy as np

    rng = np.random.default_rng(seed)

    def make(step: int) -> dict:
        noise = 1.0 + 0.02 * rng.standard_normal(3)
        times = {"rollout": 0.05 * noise[0], "train_step": train * noise[1]}
        if recompute:
            times["recompute_logp"] = recompute * noise[2]
        r = reward * (step + 1) / N_STEPS + 0.01 * seed
        return {**{f"timeperf/{k}": v for k, v in times.items()}, "ppo_actor/task_reward/avg": r}

    return make


def runs(dirs, labels=None, seeds=None, providers=None, caps=None):
    """The :class:`areal_a3po.report.Run` records of ``dirs`` with the given per-run values."""
    from areal_a3po.report import Run

    n = len(dirs)
    cols = [labels, seeds, providers, caps]
    cols = [c if c is not None else [None] * n for c in cols]
    return [Run(str(d), *vals) for d, *vals in zip(dirs, *cols, strict=True)]


def write_seed_runs(root) -> tuple[list[str], list[str], list[int]]:
    """Three arms x three seeds: 'same' equals the baseline, 'fast' skips the recompute."""
    arms = {"recompute": (0.5, 1.0, 0.5), "same": (0.5, 1.0, 0.5), "fast": (0.0, 1.0, 0.8)}
    dirs, labels, seeds = [], [], []
    for seed in (1, 2, 3):  # interleaved, as a3po compare --seeds runs them
        for label, (rc, tr, rw) in arms.items():
            dirs.append(write_run(root, f"{label}_s{seed}", seed_run_stats(rc, tr, rw, seed)))
            labels.append(label)
            seeds.append(seed)
    return dirs, labels, seeds


def eval_records(evals: dict[str, list[list[float]]], every: int = 5):
    """RunRecords whose held-out reward per seed is the given list, one evaluation per ``every``
    steps (step 0 first), with one timed stage of 1 s per step."""
    from areal_a3po.report.record import RunRecord

    out = []
    for arm, per_seed in evals.items():
        for seed, values in enumerate(per_seed, 1):
            steps = range(every * (len(values) - 1) + 1)
            out.append(
                RunRecord(
                    arm, seed,
                    stages={"train_step": {s: 1.0 for s in steps}},
                    reward={s: 0.9 for s in steps},
                    eval_reward={every * i: v for i, v in enumerate(values)},
                )
            )  # fmt: skip
    return out
