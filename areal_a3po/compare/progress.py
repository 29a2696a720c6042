"""What an arm's tensorboard directory says: steps and rewards while it runs (and its progress
bar), and what an earlier invocation of the same study left (:func:`previous_arm`: fresh,
continued or skipped)."""

from __future__ import annotations

import time
from pathlib import Path


class TensorboardProgress:
    """Steps and rewards of one run dir, read incrementally from AReaL's tensorboard event files."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._acc = None
        self.step_seen_at: dict[int, float] = {}

    def poll(self) -> None:
        if self._acc is None:
            if not self.run_dir.is_dir() or not any(self.run_dir.glob("events.out.tfevents.*")):
                return
            from tensorboard.backend.event_processing import event_accumulator as ea

            self._acc = ea.EventAccumulator(str(self.run_dir), size_guidance={ea.SCALARS: 0})
        self._acc.Reload()
        now = time.monotonic()
        for tag in self._acc.Tags()["scalars"]:
            for event in self._acc.Scalars(tag):
                self.step_seen_at.setdefault(event.step, now)

    @property
    def done(self) -> int:
        return len(self.step_seen_at)

    def rewards(self) -> list[float]:
        if self._acc is None or "rollout/reward" not in self._acc.Tags()["scalars"]:
            return []
        by_step = {e.step: e.value for e in self._acc.Scalars("rollout/reward")}  # resumed: last
        return [by_step[step] for step in sorted(by_step)]


def steps_logged(run_dir: Path) -> int:
    """Distinct steps in the run dir's event files (all files: a resumed run adds one)."""
    watch = TensorboardProgress(run_dir)
    watch.poll()
    return watch.done


def previous_arm(arm_dir: Path, launched: str, run_dir: Path, steps: int) -> str:
    """fresh, continued or skipped: what an earlier invocation left in ``arm_dir``."""
    try:
        same = (arm_dir / "launch_cmd.txt").read_text() == launched
    except OSError:
        return "fresh"
    if not same:
        return "fresh"
    return "skipped" if steps_logged(run_dir) >= steps else "continued"


class ProgressBar:
    """One arm's tqdm bar: the steps seen in its tensorboard, and the last step's reward."""

    def __init__(self, label: str, total: int, position: int = 0):
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=total, desc=f"{label:>10}", unit="step", position=position, leave=True
        )
        self._bar.set_postfix_str("AReaL starting workers and vLLM")
        self._shown = 0

    def show(self, watch: TensorboardProgress) -> None:
        if watch.done > self._shown:
            self._bar.update(watch.done - self._shown)
            self._shown = watch.done
            rewards = watch.rewards()
            if rewards:
                self._bar.set_postfix_str(f"reward {rewards[-1]:.3f}")

    def close(self) -> None:
        self._bar.close()
