"""AReaL's FSDPPPOActor on this machine, one rank, in this process: for benches and tests.

Nothing is mocked: :func:`fsdp_actor` builds ``areal.engine.fsdp_engine.FSDPPPOActor`` in a world
of size 1 on loopback (gloo on CPU, or one GPU), from :func:`actor_config` (small fp32 defaults) or
a recipe's actor read by :func:`load_recipe` (AReaL's own config loader). The model is a randomly
initialised Qwen2 with a word-level tokenizer, built in code (:func:`build_tiny_qwen2`; the tiny
testbed keeps its own builder, :mod:`.tiny.model`: a byte-level tokenizer that vLLM and AReaL encode
alike, untied weights). torch and AReaL are imported only inside the functions.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_VOCAB = 64  # build_tiny_qwen2's vocabulary unless given: ids 3.. are words "t3", "t4", ...


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_tiny_qwen2(
    path: str | os.PathLike,
    seed: int = 0,
    *,
    vocab: int = DEFAULT_VOCAB,
    hidden: int = 64,
    intermediate: int = 128,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 1,
    max_positions: int = 128,
    weights: bool = True,
) -> str:
    """Save a randomly initialised Qwen2 (default: 2 layers, head_dim 32, tied embeddings) and a
    word-level tokenizer (``<pad>`` 0, ``<s>`` 1, ``</s>`` 2) to ``path``; an existing model there
    is reused. Seeds torch's global generator with ``seed``. ``weights=False``: the config and
    tokenizer only (AReaL's ``init_from_scratch`` initialises the model from the config)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    if (path / "config.json").exists():
        return str(path)
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    if weights:
        Qwen2ForCausalLM(cfg).to(torch.float32).save_pretrained(path)
    else:
        cfg.save_pretrained(path)
    words = {"<pad>": 0, "<s>": 1, "</s>": 2} | {f"t{i}": i for i in range(3, vocab)}
    tok = Tokenizer(models.WordLevel(vocab=words, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    ).save_pretrained(path)
    return str(path)


def actor_config(model_path: str, **overrides: Any) -> Any:
    """AReaL's ``PPOActorConfig`` for a small model on one CPU rank: fp32, sdpa, one PPO
    minibatch, lr 1e-2 without warm-up or weight decay, the decoupled loss with the recompute, no
    KL, no dropout, AReaL's default ``mb_spec``; ``overrides`` are PPOActorConfig fields."""
    from areal.api.cli_args import OptimizerConfig, PPOActorConfig

    fields: dict[str, Any] = dict(
        experiment_name="a3po-local",
        trial_name="t0",
        path=model_path,
        backend="fsdp:d1",
        attn_impl="sdpa",
        dtype="float32",
        grad_reduce_dtype="float32",
        optimizer_dtype="float32",
        optimizer=OptimizerConfig(lr=1e-2, weight_decay=0.0, warmup_steps_proportion=0.0),
        ppo_n_minibatches=1,
        use_decoupled_loss=True,
        prox_logp_method="recompute",
        kl_ctl=0.0,
        temperature=1.0,
        disable_dropout=True,
    )
    fields.update(overrides)
    return PPOActorConfig(**fields)


def load_recipe(recipe: str | os.PathLike, fileroot: str | os.PathLike, *overrides: str) -> Any:
    """A recipe through AReaL's own ``load_expr_config(argv, GRPOConfig)``, its cluster files
    under ``fileroot``; ``overrides`` are ``key=value`` arguments as on the command line."""
    from areal.api.cli_args import GRPOConfig, load_expr_config

    argv = [
        "--config",
        str(recipe),
        f"cluster.fileroot={fileroot}",
        f"cluster.name_resolve.nfs_record_root={fileroot}/name_resolve",
        *overrides,
    ]
    cfg, _ = load_expr_config(argv, GRPOConfig)
    return cfg


@contextlib.contextmanager
def dist_env() -> Iterator[None]:
    """World size 1 on loopback, as torchrun would set it for a single rank; the process group
    is destroyed and the environment restored on exit."""
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


def count_forwards(engine: Any) -> None:
    """Count the engine's forward passes (the recompute stage) in ``engine.n_forward``."""
    engine.n_forward = 0
    forward = engine.forward

    def counting_forward(*args: Any, **kwargs: Any) -> Any:
        engine.n_forward += 1
        return forward(*args, **kwargs)

    engine.forward = counting_forward


@contextlib.contextmanager
def fsdp_actor(config: Any, version: int = 0, total_steps: int = 10) -> Iterator[Any]:
    """AReaL's FSDPPPOActor from ``config`` (world size 1, :func:`dist_env`), initialised for
    ``total_steps`` steps, at weight version ``version``, its forward passes counted
    (:func:`count_forwards`); destroyed on exit."""
    from areal.api.io_struct import FinetuneSpec
    from areal.engine.fsdp_engine import FSDPPPOActor

    with dist_env():
        actor = FSDPPPOActor(config)
        try:
            actor.create_process_group()
            actor.initialize(
                None,
                FinetuneSpec(total_train_epochs=1, dataset_size=total_steps, train_batch_size=1),
            )
            actor.set_version(version)
            count_forwards(actor)
            yield actor
        finally:
            actor.destroy()
