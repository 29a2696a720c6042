"""The multi-turn SmolLM2 pair (``recipes/cpu_smollm2_multiturn_*.yaml``): lengths, workflow, registry.

* The recipes through AReaL's ``load_expr_config`` against the task's real prompts (SmolLM2's
  tokenizer and chat template, from the GGUF file: no model conversion) and AReaL's feedback
  message as the tokenizer writes it: every trajectory fits ``actor.mb_spec.max_tokens_per_mb``
  and ``vllm.max_model_len`` and no two share a micro-batch; each bad value is refused naming its
  key.
* AReaL's ``MultiTurnWorkflow`` (as ``FixedLengthMultiTurnWorkflow``, with the recipe's
  arguments) over a stand-in engine that answers each request with scripted tokens at a given
  weight version: the trajectories' lengths are the ones the check assumes, a wrong answer (also
  one with reasoning-gym's partial credit) gets the feedback turn, a correct second answer earns
  ``rollout.agent.turn_discount``, and one trajectory carries two versions. Negative control: the
  task's partial-credit reward stops the retry.
* ``a3po compare --testbed smollm2-multiturn`` and the study scripts accept the testbed.

No SmolLM2 run, vLLM server or launch here (the header line's run is kept by
``benchmarks/smollm2_runs.py keep``, docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = [ROOT / "recipes" / f"cpu_smollm2_multiturn_{t}.yaml" for t in ("recompute", "a3po")]
VERSION = 4  # the stand-in engine's weight version for the first turn

pytest.importorskip("gguf", reason="scripts/setup_env.sh installs gguf")
pytestmark = pytest.mark.version_independent


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> str:
    """SmolLM2's tokenizer as the entry's conversion saves it (GGUF tokenizer, no weights)."""
    from transformers import AutoTokenizer

    from areal_a3po.testbeds.smollm2 import model

    src_dir, name = os.path.split(model.gguf_path())
    out = tmp_path_factory.mktemp("smollm2_tok")
    AutoTokenizer.from_pretrained(src_dir, gguf_file=name).save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def setup(tokenizer_dir, load_recipe, tmp_path_factory):
    """(config, prompt lengths of seed 1's splits, the recipe's workflow)."""
    from areal_a3po.testbeds.smollm2 import task, train
    from areal_a3po.testbeds.smollm2 import train_multiturn as mt
    from areal_a3po.testbeds.smollm2.workflow import FixedLengthMultiTurnWorkflow

    root = tmp_path_factory.mktemp("mt")
    cfg = load_recipe(RECIPES[1], root, f"actor.path={tokenizer_dir}")
    train_rows, held = train.build_splits(cfg.seed, train.DATASET_SIZE)
    lens = task.prompt_lengths(cfg.tokenizer_path, [*train_rows, *held])
    return cfg, lens, train_rows, FixedLengthMultiTurnWorkflow(**mt.workflow_kwargs(cfg))


# ----------------------------------------------------------------------------- the length check


def test_recipes_fit_every_trajectory_and_bad_lengths_raise_naming_keys(setup, load_recipe,
                                                                        tmp_path):  # fmt: skip
    from areal_a3po.testbeds.smollm2 import train_multiturn as mt

    cfg, lens, _, wf = setup
    for recipe in RECIPES:  # both twins as AReaL loads them
        twin = load_recipe(recipe, tmp_path, f"actor.path={cfg.actor.path}")
        mt.check_turn_discount(twin)
        mt.check_lengths(twin, lens, wf.feedback_len)
    assert wf.gconfig.ignore_eos and wf.gconfig.stop_token_ids == []
    assert (wf.max_turns, wf.turn_discount) == (mt.MAX_TURNS, 0.9)

    bad = [
        ("actor.mb_spec.max_tokens_per_mb", 160, "actor.mb_spec.max_tokens_per_mb=160: must be"),
        ("actor.mb_spec.max_tokens_per_mb", 150, "actor.mb_spec.max_tokens_per_mb=150: must be"),
        ("vllm.max_model_len", 128, "vllm.max_model_len=128: must be >="),
    ]
    for key, value, message in bad:
        broken = load_recipe(RECIPES[0], tmp_path, f"actor.path={cfg.actor.path}", f"{key}={value}")
        with pytest.raises(ValueError, match=message):
            mt.check_lengths(broken, lens, wf.feedback_len)
    with pytest.raises(ValueError, match="no actor.mb_spec.max_tokens_per_mb holds one"):
        mt.check_lengths(cfg, lens, 2 * min(lens))  # a feedback too long for any cap
    broken = load_recipe(RECIPES[0], tmp_path, "rollout.agent.turn_discount=0")
    with pytest.raises(ValueError, match=r"rollout.agent.turn_discount=0.0: must be in \(0, 1\]"):
        mt.check_turn_discount(broken)


# ----------------------------------------------------------------------------- the workflow


class ScriptedEngine:
    """Answers each request with the next scripted text, padded to max_new_tokens, one version a
    turn (the first turn at VERSION, the next after a weight update)."""

    def __init__(self, tokenizer, texts: list[str]) -> None:
        self.tok, self.texts, self.version, self.requests = tokenizer, list(texts), VERSION, []

    async def agenerate(self, req):
        from areal.api.io_struct import ModelResponse

        self.requests.append(req)
        n = req.gconfig.max_new_tokens
        ids = self.tok.encode(self.texts.pop(0) + "<|im_end|>", add_special_tokens=False)
        ids += self.tok.encode(" ok", add_special_tokens=False) * (n - len(ids))  # ignore_eos
        out = ModelResponse(
            input_tokens=list(req.input_ids), output_tokens=ids, output_logprobs=[-0.5] * n,
            output_versions=[self.version] * n, stop_reason="length", tokenizer=self.tok,
        )  # fmt: skip
        self.version += 1
        return out


def _episode(wf, row: dict, texts: list[str]):
    engine = ScriptedEngine(wf.tokenizer, texts)
    traj = asyncio.run(wf.arun_episode(engine, row))
    return {k: v[0] for k, v in traj.items()}, engine


def test_workflow_trajectories_have_checked_lengths_discounted_rewards_two_versions(setup):
    from areal_a3po.testbeds.smollm2 import task

    cfg, _, rows, wf = setup
    n, feedback = cfg.gconfig.max_new_tokens, wf.feedback_len
    row = next(r for r in rows if len(r["answer"]) == 1 and r["answer"] != "1")
    (prompt,) = task.prompt_lengths(cfg.tokenizer_path, [row])
    partial = "1" + row["answer"]  # contains the answer: reasoning-gym's partial credit
    assert task.reward_fn("p", partial + "<|im_end|>", [], [], **row) == 0.5

    first, engine = _episode(wf, row, [row["answer"]])
    assert float(first["rewards"]) == 1.0 and len(engine.requests) == 1
    assert len(first["input_ids"]) == prompt + n  # the shortest the check assumes
    assert engine.requests[0].gconfig.ignore_eos and engine.requests[0].gconfig.stop_token_ids == []

    second, engine = _episode(wf, row, [partial, row["answer"]])
    assert len(engine.requests) == 2
    assert float(second["rewards"]) == pytest.approx(cfg.rollout.agent.turn_discount)
    assert len(second["input_ids"]) == prompt + 2 * n + 1 + feedback  # the longest
    eos = prompt + n  # the EOS AReaL adds after the length-cut first turn
    assert int(second["input_ids"][eos]) == wf.tokenizer.eos_token_id
    versions, mask = second["versions"].tolist(), second["loss_mask"].tolist()
    assert versions[eos] == -1 and mask[eos] == 0
    trained = [v for v, m in zip(versions, mask, strict=True) if m]
    assert trained == [VERSION] * n + [VERSION + 1] * n  # two versions in one trajectory
    assert all(v == -1 for v, m in zip(versions, mask, strict=True) if not m)
    assert 2 * len(first["input_ids"]) > len(second["input_ids"])  # never two in a micro-batch

    wrong, _ = _episode(wf, row, ["99", "98"])
    assert float(wrong["rewards"]) == 0.0 and len(wrong["input_ids"]) == len(second["input_ids"])


def test_workflow_with_partial_credit_reward_does_not_retry(setup):
    """Negative control: the single-turn twins' reward (partial credit) ends the episode."""
    from areal_a3po.testbeds.smollm2 import train
    from areal_a3po.testbeds.smollm2 import train_multiturn as mt
    from areal_a3po.testbeds.smollm2.workflow import FixedLengthMultiTurnWorkflow

    cfg, _, rows, _ = setup
    row = next(r for r in rows if len(r["answer"]) == 1 and r["answer"] != "1")
    kwargs = {**mt.workflow_kwargs(cfg), "reward_fn": f"{train.TASK}.reward_fn"}
    traj, engine = _episode(FixedLengthMultiTurnWorkflow(**kwargs), row, ["1" + row["answer"], "x"])
    assert len(engine.requests) == 1 and float(traj["rewards"]) == 0.5


# ----------------------------------------------------------------------------- registry and CLIs


def test_testbed_option_picks_the_multiturn_twins_and_scripts_accept_it(tmp_path, monkeypatch):
    from areal_a3po import cli, testbeds
    from areal_a3po.compare import runner

    bed = testbeds.get("smollm2-multiturn")
    for twin, recipe in zip(("recompute", "a3po"), RECIPES, strict=True):
        assert runner.recipe_path(twin, bed.name).name == recipe.name
        assert runner.header_command(recipe) == (
            f"python3 -m {bed.entry_module} --config $RECIPE scheduler.type=local"
        )
    single = testbeds.get("smollm2")
    assert bed.expected_step_s["free"] > single.expected_step_s["free"]  # longer trajectories
    with pytest.raises(SystemExit):
        cli.main(["compare", "--testbed", "smollm2-multi", "--out", str(tmp_path)])

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import fidelity

    seen = []
    monkeypatch.setattr(fidelity, "_run", seen.append)
    argv = ["run", "--testbed", bed.name, "--staleness", "2,4", "--seeds", "1", "--out",
            str(tmp_path), "--name", "smollm2-multiturn"]  # fmt: skip
    assert fidelity.main(argv) == 0 and seen[0].testbed == bed.name
    with pytest.raises(SystemExit):
        fidelity.main([*argv[:2], "smollm2-multi", *argv[3:]])


def test_entry_main_passes_recipe_workflow_and_single_turn_evaluator_to_trainer(
    setup, tmp_path, monkeypatch
):
    """The entry as its header line runs it, up to AReaL's trainer (a recorder here: no launch);
    a bad length stops it before the trainer, naming the key."""
    import contextlib

    import areal

    from areal_a3po.testbeds import entry
    from areal_a3po.testbeds.smollm2 import model
    from areal_a3po.testbeds.smollm2 import train_multiturn as mt

    cfg = setup[0]
    calls = []

    class Recorder:
        def __init__(self, config, train_dataset, valid_dataset):
            calls.append({"train_rows": len(train_dataset), "valid_rows": len(valid_dataset)})

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def train(self, **kwargs):
            calls[-1].update(kwargs)

    monkeypatch.setattr(areal, "PPOTrainer", Recorder)
    monkeypatch.setattr(model, "build_model_dir", lambda path: path)  # the tokenizer dir as is
    monkeypatch.setattr(entry, "stopping_leftovers", contextlib.nullcontext)
    monkeypatch.setenv("AREAL_A3PO_LOOPBACK", "0")  # AReaL's network is not used (no launch)
    argv = ["--config", str(RECIPES[1]), f"cluster.fileroot={tmp_path}",
            f"cluster.name_resolve.nfs_record_root={tmp_path}/nr", f"actor.path={cfg.actor.path}",
            "total_train_steps=5"]  # fmt: skip
    mt.main(argv)
    (call,) = calls
    assert call["workflow"] == mt.WORKFLOW and call["workflow_kwargs"]["max_turns"] == 2
    assert call["workflow_kwargs"]["reward_fn"].endswith("task.exact_reward_fn")
    assert call["workflow_kwargs"]["turn_discount"] == 0.9
    assert call["eval_workflow"] == "areal.workflow.rlvr.RLVRWorkflow"
    assert call["eval_workflow_kwargs"]["reward_fn"].endswith("task.reward_fn")
    assert call["eval_workflow_kwargs"]["gconfig"].greedy and call["valid_rows"] == 64
    with pytest.raises(ValueError, match="vllm.max_model_len=150"):
        mt.main([*argv, "vllm.max_model_len=150"])
    assert len(calls) == 1
