"""The plugin's statistics are logged once per update, with the meaning of per-micro-batch logging.

On AReaL's real FSDPPPOActor (one sequence per micro-batch, so several micro-batches a step): the
keys and values the step exports under ``ppo_actor/update/compute_logp/`` equal what logging each
micro-batch on its own through AReaL's ``stats_tracker`` gives (the plugin's behaviour before it
batched them), and each micro-batch's records reach the once-per-update log.
"""

from __future__ import annotations

import pytest
import torch

# a3po-metrics: ground truth, every scored provider and exact_token_share; a3po: the plain
# training path (the recipe's).
CASES = [("a3po", {}), ("a3po-metrics", {})]


@pytest.mark.parametrize(("method", "options"), CASES)
def test_per_update_stats_equal_per_micro_batch_logging(
    fsdp_actor, ppo_step, monkeypatch, method, options
):
    from areal.utils import stats_tracker

    from areal_a3po import keys, prox_metrics

    logged: list[list] = []
    log = prox_metrics.log_prox_stats

    def recording(records):
        logged.append(list(records))
        return log(records)

    monkeypatch.setattr(prox_metrics, "log_prox_stats", recording)
    step = ppo_step(fsdp_actor, method, **options)
    assert len(logged) == 1  # one log for the update ...
    records = logged[0]
    n_seqs = step.batch["input_ids"].shape[0]
    assert len(records) == n_seqs  # ... of every micro-batch (one sequence each)
    batched = {k: v for k, v in step.stats.items() if k.startswith(keys.PREFIX)}

    stats_tracker.export_all()
    with stats_tracker.scope(keys.WORKER_SCOPE):
        for record in records:  # per micro-batch, as the plugin logged before
            log([record])
    alone = {
        k: v
        for k, v in stats_tracker.export_all().items()
        if k.startswith(keys.PREFIX) and not k.endswith("__count")
    }
    batched = {k: v for k, v in batched.items() if not k.endswith("__count")}
    assert sorted(batched) == sorted(alone)
    assert any(k.endswith("/abs_error/avg") for k in batched) == (method != "a3po")
    for key, value in alone.items():
        torch.testing.assert_close(batched[key], value, rtol=1e-5, atol=1e-6, msg=key)
    n_loss = int(step.batch["loss_mask"].sum())
    assert batched[keys.full(keys.N_VALID_TOKENS)] == n_loss
