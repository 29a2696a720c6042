"""AReaL's own tensorboard tags that the report reads (AReaL 1.0.4). The plugin's are in ``keys``.

AReaL's ``StatsLogger`` writes every key of the exported stats dict verbatim as a scalar tag:

* ``timeperf/<stage>``: wall seconds of one trainer stage (``stats_tracker.record_timing``). A
  stage that did not run in a step has no value at that step (AReaL only times
  ``recompute_logp`` when it recomputes).
* ``ppo_actor/task_reward/avg|min|max``: per-sequence task reward of the trained batch.
* ``ppo_actor/update/version_stats/sample_staleness_theta_avg|max|min``: AReaL's token staleness.
* ``ppo_actor/update/compute_logp/<method>/<metric>/avg|min|max``: approximation errors against
  the recomputed ground truth (AReaL's ``metrics`` mode logs the names below; the plugin's
  providers log ``keys.ERROR_STATS``).
* ``eval-rollout/reward``: reward of the evaluation rollouts (steps with an evaluation only).
"""

from __future__ import annotations

TIMEPERF_PREFIX = "timeperf/"  # stats_tracker.record_timing(key) -> "timeperf/<key>"
TIME_ROLLOUT = "rollout"  # waiting for / producing the rollout batch
TIME_RECOMPUTE = "recompute_logp"  # the extra forward pass A-3PO removes
TIME_TRAIN = "train_step"  # actor.ppo_update (includes any in-loss approximation)
TIME_UPDATE = "update_weights"  # pushing new weights to the inference engine
NAMED_TIME_PARTS = (TIME_ROLLOUT, TIME_RECOMPUTE, TIME_TRAIN, TIME_UPDATE)
# AReaL 1.0.4 logs no per-step total; a "timeperf/total" tag, if some version adds one, is used
# as the step time instead of the sum of the parts (and never added into the sum).
TIME_TOTAL_PARTS = ("total",)

# Train reward: AReaL's actor stat (AVG_MIN_MAX under scope "ppo_actor"), then the workflow scalar.
REWARD_KEYS = ("ppo_actor/task_reward/avg", "rollout/reward")
# Eval reward: workflows log scalar "reward" in the "eval-rollout" tracker (workflow_context).
EVAL_REWARD_KEYS = ("eval-rollout/reward", "eval-rollout/task_reward/avg")
EVAL_PREFIXES = ("eval-rollout/", "eval/")

# areal/trainer/ppo/actor.py::_log_version_staleness_stats (scalars).
STALENESS_AVG_KEYS = ("ppo_actor/update/version_stats/sample_staleness_theta_avg",)
STALENESS_MAX_KEYS = ("ppo_actor/update/version_stats/sample_staleness_theta_max",)

# areal/trainer/ppo/actor.py (metrics mode): per-method errors against the recomputed log-probs.
ERROR_STATS = (
    "abs_error",
    "rel_error",
    "squared_error",
    "behave_imp_weight_abs_error",
    "behave_imp_weight_rel_error",
    "importance_weight_abs_error",
    "importance_weight_rel_error",
)
