"""The report's defaults, one home each (``a3po compare``'s options, the studies, the docs)."""

from __future__ import annotations

BASELINE = "recompute"  # the baseline provider: AReaL's recompute, the first arm of a comparison
LAST_N = 5  # the last N steps: the reward spread and the training reward of record (their mean)
LAST_EVALS = 3  # the held-out reward of record: the mean of a run's last LAST_EVALS evaluations
MARGIN = 0.05  # non-inferiority margin of a reward difference (absolute reward)
MIN_SEEDS = 3  # fewer (paired) seeds: no interval
CONFIDENCE = 0.95  # of every interval
