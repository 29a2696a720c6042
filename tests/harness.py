"""Real AReaL on CPU for tests: a tiny Qwen2 built locally and AReaL's own FSDPPPOActor.

Nothing is mocked: the actor is ``areal.engine.fsdp_engine.FSDPPPOActor`` (gloo, world size 1),
the loss is AReaL's ``grpo_loss_fn`` (patched by the plugin's import hook), statistics go through
AReaL's ``stats_tracker``. One sequence per micro-batch (CPU attention would leak across packed
sequences otherwise).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import torch

PROMPT_LEN = 6
RESPONSE_LEN = 10
SEQ_LEN = PROMPT_LEN + RESPONSE_LEN
VOCAB = 64


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_tiny_qwen2(path: str | os.PathLike, seed: int = 0) -> str:
    """Save a randomly initialised 2-layer Qwen2 (head_dim 32) and a word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    if (path / "config.json").exists():
        return str(path)
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    model = Qwen2ForCausalLM(cfg).to(torch.float32)
    model.save_pretrained(path)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2} | {f"t{i}": i for i in range(3, VOCAB)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    ).save_pretrained(path)
    return str(path)


@contextlib.contextmanager
def dist_env():
    """World size 1 on loopback, as torchrun would set it for a single rank."""
    env = {
        "WORLD_SIZE": "1",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(free_port()),
        "GLOO_SOCKET_IFNAME": "lo",
    }
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def actor_config(model_path: str, fileroot: str, **overrides):
    """A PPOActorConfig for the tiny model on CPU (overrides are PPOActorConfig fields)."""
    from areal.api.cli_args import MicroBatchSpec, OptimizerConfig, PPOActorConfig

    kwargs = dict(
        experiment_name="a3po-test",
        trial_name="t0",
        path=model_path,
        backend="fsdp:d1",
        attn_impl="sdpa",
        dtype="float32",
        grad_reduce_dtype="float32",
        optimizer_dtype="float32",
        mb_spec=MicroBatchSpec(max_tokens_per_mb=SEQ_LEN),
        optimizer=OptimizerConfig(lr=1e-2, weight_decay=0.0, warmup_steps_proportion=0.0),
        ppo_n_minibatches=1,
        use_decoupled_loss=True,
        prox_logp_method="recompute",
        kl_ctl=0.0,
        temperature=1.0,
        disable_dropout=True,
    )
    kwargs.update(overrides)
    return PPOActorConfig(**kwargs)


def make_actor(config, total_steps: int = 10):
    from areal.api.io_struct import FinetuneSpec
    from areal.engine.fsdp_engine import FSDPPPOActor

    actor = FSDPPPOActor(config)
    actor.create_process_group()
    actor.initialize(
        None, FinetuneSpec(total_train_epochs=1, dataset_size=total_steps, train_batch_size=1)
    )
    return actor


def count_forwards(engine) -> None:
    """Count the engine's forward passes (the recompute stage) in ``engine.n_forward``."""
    engine.n_forward = 0
    forward = engine.forward

    def counting_forward(*args, **kwargs):
        engine.n_forward += 1
        return forward(*args, **kwargs)

    engine.forward = counting_forward


def make_batch(
    n_seqs: int = 4,
    current_version: int = 3,
    lags: list[int] | None = None,
    seed: int = 0,
    behave_noise: float = 0.3,
    logp_source=None,
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


def hf_token_logprobs(model_path: str):
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
