"""Setup for ``bench_trainer.py``: model, batch, state restore, peak memory (no timing here).

A randomly initialised Qwen2-shaped model (no download), a rollout batch with asynchronous-RL
version lags as AReaL's RLVRWorkflow returns it, behave log-probs from the model itself, and the
parameter/optimizer snapshot every timed update starts from.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import torch

CURRENT_VERSION = 8
SIZES = {
    # name: hidden, intermediate, layers, heads, kv_heads, vocab, n_seqs, prompt, response, max_lag
    "default": (512, 1408, 6, 8, 2, 8192, 8, 32, 96, 4),
    "quick": (128, 256, 2, 4, 1, 1024, 4, 16, 48, 4),
}
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "cpu_tiny_a3po.yaml"


def recipe_setting(recipe: Path = RECIPE) -> tuple[tuple, dict]:
    """The tiny recipe's own configuration: sizes as in :data:`SIZES`, and its ``actor.mb_spec``.

    Read from the recipe (batch size x samples, mb_spec, max_head_offpolicyness) and from the
    embedded task and model (prompt and answer lengths, the tiny model's shape and vocabulary).
    """
    import yaml

    from areal_a3po.testbeds.tiny import model, task

    cfg = yaml.safe_load(recipe.read_text())
    spec = model.TinyModelSpec()
    n_seqs = cfg["train_dataset"]["batch_size"] * cfg["gconfig"]["n_samples"]
    sizes = (
        spec.hidden_size,
        spec.intermediate_size,
        spec.num_hidden_layers,
        spec.num_attention_heads,
        spec.num_key_value_heads,
        len(model.SPECIAL_TOKENS) + len(task.VOCAB),
        n_seqs,
        task.PROMPT_LEN,
        task.MAX_NEW_TOKENS,
        cfg["rollout"]["max_head_offpolicyness"],
    )
    return sizes, dict(cfg["actor"]["mb_spec"])


SMOLLM2_RECIPE = RECIPE.with_name("cpu_smollm2_a3po.yaml")


def smollm2_setting(model_dir: Path, recipe: Path = SMOLLM2_RECIPE) -> tuple[str, int, tuple, dict]:
    """The SmolLM2 recipe's own configuration on the real model: (model path, parameters, sizes
    as in :data:`SIZES` (the shape fields unused), actor fields (``mb_spec``, ``pad_to_maximum``)).

    The model is converted into ``model_dir`` (or reused from an earlier conversion there); each
    sequence is as long as ``max_tokens_per_mb`` (the longest the recipe allows: prompt +
    ``max_new_tokens``), batch size x samples of them.
    """
    import yaml
    from transformers import AutoConfig

    from areal_a3po.testbeds.smollm2 import model as smollm2

    cfg = yaml.safe_load(recipe.read_text())
    path = smollm2.build_model_dir(str(model_dir))
    mc = AutoConfig.from_pretrained(path)
    h, i, n, v = mc.hidden_size, mc.intermediate_size, mc.num_hidden_layers, mc.vocab_size
    n_params = n * (4 * h * h + 3 * h * i + 2 * h) + 2 * v * h + h  # untied embeddings
    response = cfg["gconfig"]["max_new_tokens"]
    mb_spec = dict(cfg["actor"]["mb_spec"])
    sizes = (
        h,
        i,
        n,
        mc.num_attention_heads,
        mc.num_key_value_heads,
        v,
        cfg["train_dataset"]["batch_size"] * cfg["gconfig"]["n_samples"],
        mb_spec["max_tokens_per_mb"] - response,
        response,
        cfg["rollout"]["max_head_offpolicyness"],
    )
    return path, n_params, sizes, {"mb_spec": mb_spec, "pad_to_maximum": True}


def build_model(path: Path, hidden, inter, layers, heads, kv_heads, vocab) -> tuple[str, int]:
    """A randomly initialised Qwen2 (no download) and a word-level tokenizer; returns n_params."""
    from areal_a3po.testbeds.local_actor import build_tiny_qwen2

    sizes = dict(hidden=hidden, intermediate=inter, layers=layers, heads=heads, kv_heads=kv_heads)
    model_dir = build_tiny_qwen2(path, vocab=vocab, max_positions=1024, **sizes)
    from transformers import Qwen2ForCausalLM

    n_params = sum(p.numel() for p in Qwen2ForCausalLM.from_pretrained(model_dir).parameters())
    return model_dir, n_params


def make_batch(n_seqs, prompt, response, vocab, max_lag, seed=0) -> list[dict[str, torch.Tensor]]:
    """Rollouts as AReaL's RLVRWorkflow returns them, with asynchronous-RL version lags.

    Each sequence starts generating ``lag`` versions behind (0..max_lag) and, as a partial rollout
    does when new weights arrive mid-generation, moves to newer versions at random positions.
    """
    g = torch.Generator().manual_seed(seed)
    seq = prompt + response
    out = []
    for r in range(n_seqs):
        versions = torch.full((1, seq), -1, dtype=torch.int32)
        v = CURRENT_VERSION - (r % (max_lag + 1))
        cuts = sorted(torch.randint(prompt + 1, seq, (2,), generator=g).tolist())
        versions[0, prompt:] = v
        for c in cuts:  # weight updates during generation
            v = min(v + 1, CURRENT_VERSION)
            versions[0, c:] = v
        loss_mask = torch.zeros(1, seq, dtype=torch.int32)
        loss_mask[0, prompt:] = 1
        out.append(
            {
                "input_ids": torch.randint(3, vocab, (1, seq), generator=g, dtype=torch.int64),
                "attention_mask": torch.ones(1, seq, dtype=torch.bool),
                "loss_mask": loss_mask,
                "versions": versions,
                "rewards": torch.tensor([float(r % 2)]),
            }
        )
    return out


def with_behave(traj, recomputed, g: torch.Generator, exact_at_lag0: bool = False):
    """Behave log-probs: the model's own, shifted to the inference layout, plus lag-sized noise;
    ``exact_at_lag0``: none at lag 0 (an inference engine with the trainer's very weights)."""
    for t, lp in zip(traj, recomputed, strict=True):
        own = torch.roll(lp.reshape(1, -1).float().cpu(), shifts=1, dims=-1)  # token i at i
        lag = (CURRENT_VERSION - t["versions"]).clamp(min=0).float()
        noise = 0.05 * (lag if exact_at_lag0 else 1 + lag) * torch.randn(own.shape, generator=g)
        t["logprobs"] = (own + noise).clamp(max=0.0) * t["loss_mask"]
    return traj


def fresh(traj, prox=None):
    out = [{k: v.clone() for k, v in t.items()} for t in traj]
    if prox is not None:
        for t, p in zip(out, prox, strict=True):
            t["prox_logp"] = p.clone()
    return out


class State:
    """Parameters and optimizer state to restore before every update."""

    def __init__(self, engine):
        self.engine = engine
        self.params = [p.detach().clone() for p in engine.model.parameters()]
        self.optim = copy.deepcopy(engine.optimizer.state_dict())

    @torch.no_grad()
    def restore(self) -> None:
        self.engine.optimizer.zero_grad(set_to_none=True)  # same allocator level at every start
        for p, saved in zip(self.engine.model.parameters(), self.params, strict=True):
            p.copy_(saved)
        self.engine.optimizer.load_state_dict(copy.deepcopy(self.optim))


def peak_bytes(fn: Callable[[], object]) -> int:
    """Peak of torch CPU allocator bytes held during ``fn`` above the level at its start."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    # Every allocation (+bytes) and free (-bytes) of the CPU allocator, in time order.
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    level = peak = 0
    for _, nbytes in events:
        level += nbytes
        peak = max(peak, level)
    return peak
