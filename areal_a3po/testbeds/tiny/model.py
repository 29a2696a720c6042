"""A tiny Qwen2 model and a character-level tokenizer, built in code and saved to a local directory.

Nothing is downloaded: the tokenizer is built with `tokenizers` over the task's characters and saved
with ``save_pretrained`` next to the model, so vLLM and AReaL both load it from the same directory
(``tokenizer_path`` and ``actor.path`` point there).

vLLM CPU needs head_dim >= 32, hence 2 heads of 32 on a 64-wide residual stream.
The character list comes from the task (:data:`areal_a3po.testbeds.tiny.task.VOCAB`); ids are
``<pad>``=0, ``<eos>``=1, then the characters in order.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from areal_a3po.testbeds import stamped_dir

PAD, EOS = "<pad>", "<eos>"
SPECIAL_TOKENS = (PAD, EOS)  # ids 0 and 1


@dataclass(frozen=True)
class TinyModelSpec:
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    num_key_value_heads: int = 2
    head_dim: int = 32  # vLLM CPU attention needs >= 32
    max_position_embeddings: int = 64
    # Untied: vLLM 0.32's in-place reload_weights (used for disk weight updates) asserts on the
    # tied lm_head (ParallelLMHead sharing the embedding) and leaves the model unusable.
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02


def build_tokenizer(chars: list[str], out_dir: str):
    """Character-level tokenizer: ``SPECIAL_TOKENS + chars``, saved to out_dir with ``save_pretrained``.

    It is a byte-level BPE without merges over single printable ASCII characters, i.e. the same
    pipeline as Qwen2's tokenizer. That matters: for a directory whose config.json says ``qwen2``,
    transformers 5 ``AutoTokenizer`` ignores the saved tokenizer class and rebuilds a
    ``Qwen2Tokenizer`` from the vocabulary (byte-level BPE, Qwen's split regex), so a word-level
    tokenizer would silently encode differently in AReaL and vLLM. With single-character tokens and
    no merges every class in the chain encodes text identically (prompts contain no spaces).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    for ch in chars:
        if len(ch) != 1 or not (33 <= ord(ch) <= 126):
            raise ValueError(
                f"vocabulary entries must be single printable ASCII characters, got {ch!r}"
            )
    vocab = {tok: i for i, tok in enumerate([*SPECIAL_TOKENS, *chars])}
    if len(vocab) != len(SPECIAL_TOKENS) + len(chars):
        raise ValueError("duplicate characters in the vocabulary")
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    core.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        eos_token=EOS,
        unk_token=PAD,  # else Qwen2Tokenizer adds "<|endoftext|>" as an extra unk id past the vocab
        model_max_length=TinyModelSpec.max_position_embeddings,
        clean_up_tokenization_spaces=False,
    )
    tok.save_pretrained(out_dir)
    return tok


def build_model(out_dir: str, vocab_size: int, seed: int, spec: TinyModelSpec = TinyModelSpec()):
    """Randomly initialised Qwen2ForCausalLM (float32, seeded), saved as safetensors to out_dir."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        head_dim=spec.head_dim,
        max_position_embeddings=spec.max_position_embeddings,
        tie_word_embeddings=spec.tie_word_embeddings,
        initializer_range=spec.initializer_range,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
        use_sliding_window=False,
        dtype="float32",
    )
    cpu_rng = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).to(torch.float32)
    finally:
        torch.random.set_rng_state(cpu_rng)
    model.generation_config = GenerationConfig(pad_token_id=0, bos_token_id=1, eos_token_id=1)
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


STAMP = "a3po_embedded_build.json"


def build_model_dir(
    out_dir: str, chars: list[str], seed: int, spec: TinyModelSpec = TinyModelSpec()
) -> str:
    """Tokenizer + model in one directory; reused when an identical build is already there.

    The build goes to a temporary sibling directory that is renamed into place, so a reader never
    sees half a model. A non-empty ``out_dir`` without this module's stamp is never overwritten.
    """
    stamp = {"chars": list(chars), "seed": int(seed), "spec": asdict(spec)}

    def build(tmp: str) -> None:
        tok = build_tokenizer(list(chars), tmp)
        build_model(tmp, vocab_size=len(tok), seed=seed, spec=spec)

    return stamped_dir.build_once(
        out_dir,
        STAMP,
        stamp,
        build,
        "is not empty and was not built by areal_a3po.testbeds.tiny.model; the tiny model is built "
        "only into an empty or missing directory (actor.path)",
    )
