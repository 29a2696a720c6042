"""Real AReaL on CPU for tests: plain functions behind the fixtures in ``tests/conftest.py``.

Test modules use the fixtures, not this module (the one exception: scripts that a test runs in a
fresh interpreter import it, since fixtures do not reach there). Nothing is mocked: the actor is
``areal.engine.fsdp_engine.FSDPPPOActor`` (gloo, world size 1) from the package's
:mod:`areal_a3po.testbeds.local_actor` (which the benchmarks use too; here at the tests'
micro-batch and version), the loss is AReaL's ``grpo_loss_fn`` (patched by the plugin's import
hook), statistics go through AReaL's ``stats_tracker``. One sequence per micro-batch (CPU
attention would leak across packed sequences otherwise).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from areal_a3po.testbeds import local_actor
from areal_a3po.testbeds.local_actor import (  # noqa: F401  (the tests' names for them)
    build_tiny_qwen2,
    dist_env,
    free_port,
    load_recipe,
)
from areal_a3po.testbeds.tiny import task as tiny_task

ROOT = Path(__file__).resolve().parents[1]
PROMPT_LEN = 6
RESPONSE_LEN = 10
SEQ_LEN = PROMPT_LEN + RESPONSE_LEN
VOCAB = local_actor.DEFAULT_VOCAB  # the tiny model's (build_tiny_qwen2's default)
CURRENT_VERSION = 3  # the actor's weight version unless a test sets another
N_SEQS = 4  # sequences per rollout batch in one PPO step
# AReaL overrides that give the tiny recipes an evaluation (they have none): the task's 8 prompts,
# one greedy completion each (the entry script builds the set); evaluator.freq_steps sets when.
TINY_VALID_DATASET = "+valid_dataset={path:embedded-continue-alphabet,type:rl,batch_size:8}"
TINY_EVALUATION = (
    TINY_VALID_DATASET,
    f"+eval_gconfig={{n_samples:1,greedy:true,max_new_tokens:{tiny_task.MAX_NEW_TOKENS}}}",
)

LogpSource = Callable[[torch.Tensor], torch.Tensor]


def actor_config(model_path: str, **overrides):
    """The package's one-rank PPOActorConfig with the tests' micro-batch: one sequence each."""
    from areal.api.cli_args import MicroBatchSpec

    mb_spec = MicroBatchSpec(max_tokens_per_mb=SEQ_LEN)
    return local_actor.actor_config(model_path, **({"mb_spec": mb_spec} | overrides))


def fsdp_actor(config, version: int = CURRENT_VERSION, total_steps: int = 10):
    """The package's FSDPPPOActor context manager, at the tests' version unless given."""
    return local_actor.fsdp_actor(config, version, total_steps)


def make_batch(
    n_seqs: int = N_SEQS,
    current_version: int = CURRENT_VERSION,
    lags: list[int] | None = None,
    seed: int = 0,
    behave_noise: float = 0.3,
    logp_source: LogpSource | None = None,
) -> dict[str, torch.Tensor]:
    """A rollout batch shaped like AReaL's RLVRWorkflow output (padded, un-rolled).

    Row r's response tokens carry version ``current_version - lags[r]``; prompt tokens -1.
    ``logprobs`` (behave) are the model's own log-probs if ``logp_source`` is given (a callable
    on input_ids), plus noise, so the decoupled loss sees a realistic behave/theta gap.
    """
    g = torch.Generator().manual_seed(seed)
    lags = lags if lags is not None else [i % 4 for i in range(n_seqs)]
    input_ids = torch.randint(3, VOCAB, (n_seqs, SEQ_LEN), generator=g, dtype=torch.int64)
    loss_mask = torch.zeros(n_seqs, SEQ_LEN, dtype=torch.int32)
    loss_mask[:, PROMPT_LEN:] = 1
    versions = torch.full((n_seqs, SEQ_LEN), -1, dtype=torch.int32)
    for r, lag in enumerate(lags):
        versions[r, PROMPT_LEN:] = current_version - lag
    logprobs = -torch.rand(n_seqs, SEQ_LEN, generator=g, dtype=torch.float32) * 3.0 - 0.5
    if logp_source is not None:
        logprobs = logp_source(input_ids) + behave_noise * torch.randn(
            n_seqs, SEQ_LEN, generator=g, dtype=torch.float32
        ).clamp(-2, 2)
    logprobs = logprobs * loss_mask  # AReaL: behave log-probs are 0 on prompt tokens
    rewards = torch.tensor([1.0 if r % 2 == 0 else 0.0 for r in range(n_seqs)], dtype=torch.float32)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones(n_seqs, SEQ_LEN, dtype=torch.bool),
        "loss_mask": loss_mask,
        "logprobs": logprobs,
        "versions": versions,
        "rewards": rewards,
    }


def hf_token_logprobs(model_path: str) -> LogpSource:
    """log p(token_{i+1} | tokens_<=i) at position i (AReaL's rolled layout), position -1 = 0."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()

    @torch.no_grad()
    def fn(input_ids: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=input_ids).logits.float()
        lp = torch.log_softmax(logits[:, :-1], dim=-1)
        tok = torch.gather(lp, -1, input_ids[:, 1:, None]).squeeze(-1)
        # un-rolled layout, as the inference engine returns it: logprob of token i at position i
        return torch.cat([torch.zeros(input_ids.shape[0], 1), tok], dim=1)

    return fn


def snapshot_params(engine) -> dict[str, torch.Tensor]:
    """A copy of the engine's full (un-sharded) parameters."""
    out = {}
    for name, p in engine.model.named_parameters():
        t = p.full_tensor() if hasattr(p, "full_tensor") else p
        out[name] = t.detach().clone()
    return out


@dataclasses.dataclass
class PPOStep:
    """What one trainer step showed: see :func:`ppo_step`."""

    batch: dict[str, torch.Tensor]  # the rollout batch fed to the step (before AReaL's roll)
    version: int  # the actor's weight version during the step
    recomputed: bool  # the controller's should_compute_prox_logp(): compute_logp ran
    stats: dict[str, float]  # the actor's export_stats(): what the trainer logs for the step
    local: dict[str, float]  # single controller: what the controller process recorded itself
    forwards: int | None  # engine forward passes during the step (None through a controller)
    params_before: dict[str, torch.Tensor] | None = None  # with keep_params (FSDP actor only)
    params_after: dict[str, torch.Tensor] | None = None

    def staleness_counts(self) -> dict[int, int]:
        """Loss-mask tokens per version lag in the fed batch (what the staleness keys count)."""
        lags = self.version - self.batch["versions"][self.batch["loss_mask"].bool()]
        values, counts = torch.unique(lags, return_counts=True)
        return dict(zip(values.tolist(), counts.tolist(), strict=True))


def ppo_step(
    engine,
    method: str | None = None,
    *,
    behave_source: LogpSource,
    seed: int = 0,
    keep_params: bool = False,
    edit_batch: Callable[[dict[str, torch.Tensor]], None] | None = None,
    **a3po,
) -> PPOStep:
    """One actor step of ``PPOTrainer.train`` (areal/trainer/rl_trainer.py), line for line.

    ``engine`` is an FSDPPPOActor (SPMD) or its controller (single controller). With ``method``,
    ``actor.prox_logp_method`` is switched to it and ``actor.a3po`` to ``A3POConfig(**a3po)``
    first. The batch has ``N_SEQS`` sequences at lags 0..3 behind the engine's version, behave
    log-probs from ``behave_source`` plus noise; ``edit_batch`` may change it in place first
    (e.g. per-token versions of interrupted generations).
    """
    from areal.infra.controller.train_controller import TrainController
    from areal.utils import stats_tracker

    if method is not None:
        from areal_a3po.config import A3POConfig

        engine.config.prox_logp_method = method
        engine.config.a3po = A3POConfig(**a3po)
    elif a3po:
        raise TypeError(f"actor.a3po options {sorted(a3po)} given without a method to switch to")
    controller = isinstance(engine, TrainController)
    version = engine.get_version()
    batch = make_batch(N_SEQS, current_version=version, seed=seed, logp_source=behave_source)
    if edit_batch is not None:
        edit_batch(batch)
    rollout = [{k: v[i : i + 1] for k, v in batch.items()} for i in range(N_SEQS)]
    before = snapshot_params(engine) if keep_params else None
    forwards = getattr(engine, "n_forward", None)
    stats_tracker.export_all()  # drop anything earlier steps or tests recorded in this process
    recomputed = bool(engine.config.should_compute_prox_logp())
    if recomputed:
        for traj, logp in zip(rollout, engine.compute_logp(rollout), strict=True):
            traj["prox_logp"] = logp
    adv = engine.compute_advantages(rollout)
    engine.ppo_update(adv)
    engine.step_lr_scheduler()
    if controller:  # the trainer fans clear_batches out in single-controller mode only
        engine.clear_batches(rollout, adv)
    local = stats_tracker.export_all() if controller else {}
    return PPOStep(
        batch=batch,
        version=version,
        recomputed=recomputed,
        stats=engine.export_stats(),
        local=local,
        forwards=None if forwards is None else engine.n_forward - forwards,
        params_before=before,
        params_after=snapshot_params(engine) if keep_params else None,
    )


class FreshPython:
    """Python code in a freshly spawned interpreter, as torchrun or AReaL's scheduler starts one.

    The interpreter sees no ``AREAL_A3PO*`` variable from this process; ``PROBE`` reports whether
    the plugin is active there. Scripts print one ``RESULT<json>`` line for :meth:`result`.
    """

    PROBE = """
import json, sys
before = sorted(m for m in sys.modules if m.startswith(("areal_a3po", "torch", "areal"))
                and m not in ("areal_a3po", "areal_a3po._bootstrap"))
import areal.trainer.ppo.actor as actor_mod
from areal.api.cli_args import PPOActorConfig
out = {
    "before": before,
    "coupling_loaded": "areal_a3po.coupling" in sys.modules,
    "loss_patched": actor_mod.grpo_loss_fn.__module__ == "areal_a3po.loss",
    "has_a3po_field": "a3po" in PPOActorConfig.__dataclass_fields__,
}
print("RESULT" + json.dumps(out))
"""

    def run(
        self, args: list[str], env_extra: dict[str, str] | None = None, timeout: int = 300
    ) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AREAL_A3PO")}
        env.update(env_extra or {})
        return subprocess.run(
            [sys.executable, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def probe(self, env_extra: dict[str, str] | None = None) -> dict:
        """``PROBE``'s findings in a fresh interpreter."""
        return self.result(self.run(["-c", self.PROBE], env_extra))

    @staticmethod
    def result(proc: subprocess.CompletedProcess) -> dict:
        assert proc.returncode == 0, proc.stderr[-3000:]
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
        return json.loads(line[len("RESULT") :])


def on_areal_1_0() -> bool:
    """areal 1.0.x is installed: the leg that runs the end-to-end launcher tests (once per CI)."""
    from areal_a3po.coupling import gate

    return (gate.areal_version() or "").startswith("1.0.")


@contextlib.contextmanager
def spying(*names: str) -> Iterator[dict[str, list]]:
    """Record every call of these providers' compute: {name: [(inputs, log pi_prox)]}, cloned."""
    from areal_a3po import registry

    records: dict[str, list] = {n: [] for n in names}
    originals = {}
    for name in names:
        provider = registry.get_provider(name)
        compute = originals[name] = provider.compute

        def spy(inp, _compute=compute, _out=records[name]):
            prox = _compute(inp)
            _out.append((inp, prox.detach().clone()))
            return prox

        object.__setattr__(provider, "compute", spy)  # Provider is frozen; restored below
    try:
        yield records
    finally:
        for name, compute in originals.items():
            object.__setattr__(registry.get_provider(name), "compute", compute)


def loss_kwargs(method: str, current_version: int) -> dict:
    """AReaL's ``grpo_loss_fn`` keywords of the loss tests: decoupled PPO, symmetric clip 0.2."""
    return dict(
        eps_clip=0.2,
        eps_clip_higher=None,
        c_clip=None,
        current_version=current_version,
        prox_logp_method=method,
        use_decoupled_loss=True,
    )
