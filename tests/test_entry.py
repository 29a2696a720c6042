"""The recipes' entry scripts (areal_a3po/entry/) on CPU: how AReaL's launchers start them, their
data and reward, and the workflow AReaL builds from their arguments.

No model or dataset is downloaded: a word-level tokenizer with a chat template is built in tmp_path,
GSM8K's hub download is replaced by a tiny in-memory dataset (the only mock: there is no network),
and the DAPO-Math loader reads a JSONL written here. AReaL 2.x: the vendored source snapshots
(/work/shared/vendor, ``AREAL_VENDOR_DIR``) are imported in a subprocess.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from areal_a3po.entry import ENTRIES, entry_path

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT / "recipes" / "gsm8k_grpo_qwen2.5-1.5b_a3po.yaml"
DAPO = ROOT / "recipes" / "dapo_math_grpo_qwen3-8b_recompute.yaml"
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|> {% if enable_thinking %}<think> {% endif %}"
    "{% endif %}"
)
VENDOR = Path(os.environ.get("AREAL_VENDOR_DIR", "/work/shared/vendor"))


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "What is 2 + 3 ? Please put your final answer within \\boxed{} . Solve x".split()
    specials = ["[PAD]", "[UNK]", "<|user|>", "<|assistant|>", "<think>", "[EOS]"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(specials + words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]"
    )
    tok.chat_template = CHAT_TEMPLATE
    out = tmp_path_factory.mktemp("tokenizer")
    tok.save_pretrained(out)
    return str(out)


def overrides(tmp_path: Path, tokenizer_dir: str, *extra: str) -> list[str]:
    return [
        f"actor.path={tokenizer_dir}",
        f"cluster.fileroot={tmp_path}",
        f"cluster.name_resolve.nfs_record_root={tmp_path}/name_resolve",
        *extra,
    ]


def resolve_workflow(kwargs: dict):
    """AReaL's own workflow resolution (what a rollout worker does with the entry's arguments)."""
    from areal.infra.remote_inf_engine import RemoteInfEngine
    from areal.utils import logging

    from areal_a3po.entry import _areal_api

    host = SimpleNamespace(logger=logging.getLogger("TestEntry"), config=None)
    return RemoteInfEngine._resolve_workflow(host, _areal_api.RLVR_WORKFLOW, kwargs)


# ----------------------------------------------------------------------------- how it is started


def test_entry_module_prints_each_script_path_and_rejects_unknown_names():
    for name in ENTRIES:
        out = subprocess.run(
            [sys.executable, "-m", "areal_a3po.entry", name],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()
        assert out == entry_path(name) and out.endswith(".py") and Path(out).is_file()
    bad = subprocess.run(
        [sys.executable, "-m", "areal_a3po.entry", "gsm8k_rl"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "gsm8k_grpo" in bad.stderr


@pytest.mark.slow  # 7-15 s (other interpreters, or AReaL 2.x sources unpacked): --quick skips it
def test_entry_script_run_as_a_file_reaches_arealas_argument_parser():
    # torchrun (SPMD local / Slurm) runs the path as a script: sys.path[0] is the entry folder, so
    # the package's modules there must not shadow installed ones, and imports must be absolute.
    folder = Path(entry_path("gsm8k_grpo")).parent
    for module in folder.glob("*.py"):
        if not module.stem.startswith("__"):
            assert importlib_find(module.stem) is None, module.stem
    for name in ENTRIES:
        proc = subprocess.run(
            [sys.executable, entry_path(name)], capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "the following arguments are required: --config" in proc.stderr


def importlib_find(name: str):
    import importlib.util

    return importlib.util.find_spec(name)


# ----------------------------------------------------------------------------- GSM8K


def test_gsm8k_entry_areal_loader_workflow_and_reward_agree(tmp_path, tokenizer_dir, monkeypatch):
    import datasets
    from areal.dataset import gsm8k as areal_gsm8k
    from areal.utils.dynamic_import import import_from_string
    from areal.utils.hf_utils import load_hf_tokenizer
    from areal.workflow.rlvr import RLVRWorkflow

    from areal_a3po.entry import gsm8k_grpo

    rows = [
        {"question": "What is 2 + 3 ?", "answer": "2 + 3 = 5\n#### 5"},
        {"question": "Solve x", "answer": "x = 7\n#### 7"},
    ]
    calls = []

    def hub(path, name=None, split=None, **kwargs):  # stands in for the hub download
        calls.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(areal_gsm8k, "load_dataset", hub)
    cfg = gsm8k_grpo.load_config(["--config", str(GSM8K), *overrides(tmp_path, tokenizer_dir)])
    tokenizer = load_hf_tokenizer(cfg.tokenizer_path)
    # Single-controller: AReaL would hand the loading to data-service workers (RDataset) if
    # train_dataset.scheduling_spec were set; the recipe sets it to null (its header says why).
    from areal.infra.data_service.rdataset import RDataset

    assert cfg.train_dataset.scheduling_spec is None and cfg.valid_dataset.scheduling_spec is None
    from areal.api.cli_args import SchedulingSpec

    with_service = copy.deepcopy(cfg)  # AReaL's default: one data-service worker
    for ds in (with_service.train_dataset, with_service.valid_dataset):
        ds.scheduling_spec = SchedulingSpec(cmd="python3 -m areal.infra.rpc.guard")
    remote, _ = gsm8k_grpo.build_datasets(with_service, tokenizer)
    assert isinstance(remote, RDataset) and calls == []
    # SPMD: each trainer rank loads it in-process with AReaL's GSM8K loader.
    monkeypatch.setenv("AREAL_SPMD_MODE", "1")
    train, valid = gsm8k_grpo.build_datasets(cfg, tokenizer)
    assert calls == [("openai/gsm8k", "main", "train"), ("openai/gsm8k", "main", "test")]
    assert train.num_rows == valid.num_rows == 2
    assert train[0]["messages"][0]["content"].startswith("What is 2 + 3 ?")

    train_kwargs, eval_kwargs = gsm8k_grpo.workflow_kwargs(cfg)
    workflow = resolve_workflow(train_kwargs)
    assert isinstance(workflow, RLVRWorkflow) and workflow.enable_thinking is False
    assert resolve_workflow(eval_kwargs).gconfig.temperature == gsm8k_grpo.EVAL_TEMPERATURE
    assert workflow.gconfig.temperature == cfg.gconfig.temperature == 1.0
    ids = workflow.get_input_ids_fn(
        workflow.data_extract_prompt_fn(train[0]), workflow.tokenizer, workflow.enable_thinking
    )
    assert ids[: len(tokenizer.encode("<|user|> What"))] == tokenizer.encode("<|user|> What")
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<|assistant|>")

    reward = import_from_string(train_kwargs["reward_fn"])  # AReaL's GSM8K reward, as a worker
    assert reward("p", "so the answer is \\boxed{5}", [], [], **train[0]) == 1.0
    assert reward("p", "so the answer is \\boxed{6}", [], [], **train[0]) == 0.0


# ----------------------------------------------------------------------------- DAPO-Math


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_math_entry_jsonl_loader_workflow_and_reward_agree(tmp_path, tokenizer_dir):
    from areal.utils.dynamic_import import import_from_string
    from areal.utils.hf_utils import load_hf_tokenizer

    from areal_a3po.entry import math_grpo, math_task

    data = write_jsonl(
        tmp_path / "dapo.jsonl",
        [
            {"prompt": "What is 2 + 3 ?", "solutions": ["5"]},
            {"prompt": "Solve x", "solutions": ["7", "\\frac{14}{2}"]},
            {"prompt": " ".join(["x"] * (math_task.MAX_PROMPT_TOKENS + 1)), "solutions": ["1"]},
        ],
    )
    argv = [
        "--config",
        str(DAPO),
        *overrides(tmp_path, tokenizer_dir, f"train_dataset.path={data}"),
    ]
    cfg = math_grpo.load_config(argv)
    tokenizer = load_hf_tokenizer(cfg.tokenizer_path)
    train, valid = math_grpo.build_datasets(cfg, tokenizer)
    assert valid is None
    assert train.num_rows == 2  # the over-long prompt is dropped (boba_grpo.py's 1024 tokens)
    assert train[1] == {
        "messages": [{"role": "user", "content": "Solve x"}],
        "solutions": ["7", "\\frac{14}{2}"],
    }

    kwargs = math_grpo.workflow_kwargs(cfg)
    workflow = resolve_workflow(kwargs)
    assert workflow.enable_thinking is True
    ids = workflow.get_input_ids_fn(
        workflow.data_extract_prompt_fn(train[0]), workflow.tokenizer, workflow.enable_thinking
    )
    assert ids[-1] == tokenizer.convert_tokens_to_ids("<think>")  # thinking on, as boba_grpo.py

    reward = import_from_string(kwargs["reward_fn"])
    assert reward("p", "<think> 5 </think> \\boxed{5}", [], [], **train[0]) == 1.0
    assert reward("p", "\\boxed{7}", [], [], **train[1]) == 1.0
    assert reward("p", "\\boxed{8}", [], [], **train[1]) == 0.0

    # train_dataset.max_length, when set, is the prompt limit.
    short = math_grpo.load_config([*argv, "+train_dataset.max_length=2"])
    assert math_grpo.build_datasets(short, tokenizer)[0].num_rows == 1


def test_math_loader_missing_file_or_fields_clear_error(tmp_path, tokenizer_dir):
    from areal.utils.hf_utils import load_hf_tokenizer

    from areal_a3po.entry.math_task import load_jsonl_dataset

    tokenizer = load_hf_tokenizer(tokenizer_dir)
    with pytest.raises(FileNotFoundError, match=r"train_dataset\.path=.*docs/recipes\.md"):
        load_jsonl_dataset(str(tmp_path / "absent.jsonl"), tokenizer)
    raw = write_jsonl(tmp_path / "raw.jsonl", [{"prompt": "Solve x", "answer": "7"}])
    with pytest.raises(ValueError, match=r"missing \['solutions'\]"):
        load_jsonl_dataset(str(raw), tokenizer)


def test_entry_api_non_rollout_workflow_raises_with_reason():
    from areal_a3po.entry import _areal_api

    with pytest.raises(RuntimeError, match="not a RolloutWorkflow.*proxy"):
        _areal_api.check_rollout_workflow("areal.api.cli_args.PPOConfig")
    with pytest.raises(RuntimeError, match="areal.reward.no_such_reward"):
        _areal_api._lookup("areal.reward", "no_such_reward", "a reward")


# ----------------------------------------------------------------------------- AReaL 2.x

PROBE = """
import inspect, json
from areal_a3po.entry import _areal_api as api
trainer = api.trainer_class()
train = inspect.signature(trainer.train).parameters
data = inspect.signature(api._lookup("areal.dataset", "get_custom_dataset", "")).parameters
from areal.infra.launcher.ray import DEFAULT_MAIN_FUNC_NAME
from areal.api.cli_args import parse_cli_args
print(json.dumps({
    "areal": __import__("areal").__file__,
    "config": api.config_class().__name__,
    "workflow": api.check_rollout_workflow().__name__,
    "proxy": trainer._requires_proxy_workflow(None, api.RLVR_WORKFLOW),
    "train_args": [p for p in ("workflow", "workflow_kwargs", "eval_workflow",
                               "eval_workflow_kwargs") if p in train],
    "dataset_args": [p for p in ("split", "dataset_config", "tokenizer") if p in data],
    "reward": callable(api._lookup("areal.reward.gsm8k", "gsm8k_reward_fn", "")),
    "grader": callable(api._lookup("areal.reward", "get_math_verify_worker", "")),
    "ray_main": DEFAULT_MAIN_FUNC_NAME,
    "skips_py": "argv[0].endswith(\\".py\\")" in inspect.getsource(parse_cli_args),
}))
"""


SNAPSHOTS = ("areal-2.0.0.tar.gz", "areal-main-cbff54d.tar.gz")  # release 2.0.0 and main


@pytest.mark.slow  # 7-15 s (other interpreters, or AReaL 2.x sources unpacked): --quick skips it
def test_entry_api_on_areal_2x_source_finds_every_piece(tmp_path):
    missing = [name for name in SNAPSHOTS if not (VENDOR / name).is_file()]
    if missing:
        pytest.skip(f"AReaL 2.x snapshots {missing} not in {VENDOR} (set AREAL_VENDOR_DIR)")
    procs = {}
    for name in SNAPSHOTS:  # one fresh interpreter per snapshot, both at once
        with tarfile.open(VENDOR / name) as tar:
            members = [m for m in tar.getmembers() if "/areal/" in f"/{m.name}"]
            tar.extractall(tmp_path / name, members=members, filter="data")
        src = next(p.parent.parent for p in (tmp_path / name).glob("*/areal/__init__.py"))
        env = {**os.environ, "PYTHONPATH": str(src), "AREAL_A3PO_DISABLE": "1"}
        procs[name] = (
            src,
            subprocess.Popen(
                [sys.executable, "-c", PROBE],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            ),
        )
    for name, (src, proc) in procs.items():
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, (name, err[-3000:])
        found = json.loads(out.strip().splitlines()[-1])
        assert found["areal"].startswith(str(src)), (name, found["areal"])
        assert found == {
            "areal": found["areal"],
            "config": "GRPOConfig",
            "workflow": "RLVRWorkflow",
            "proxy": False,
            "train_args": ["workflow", "workflow_kwargs", "eval_workflow", "eval_workflow_kwargs"],
            "dataset_args": ["split", "dataset_config", "tokenizer"],
            "reward": True,
            "grader": True,
            "ray_main": "main",
            "skips_py": True,
        }, name
