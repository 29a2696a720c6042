"""Pass rate of the converted SmolLM2 on the reasoning-gym task's held-out set, before training.

    python benchmarks/smollm2_pass_rate.py MODEL_DIR --temperatures "" \
        --out docs/benchmarks/smollm2/heldout_untrained.json

vLLM CPU offline generation on the held-out set the recipes evaluate (one set for every seed and
arm: ``gym_task.build_heldout_rows``), scored by reasoning-gym's scorer through ``gym_task.score``:
greedy (the recipes' ``eval_gconfig``: one greedy answer per prompt, 24 new tokens) and sampled
at each ``--temperatures`` value (``--samples`` per prompt; ``""``: greedy only). The greedy
score is deterministic: it is the untrained model's held-out reward, the baseline of the gain
(``benchmarks/validity.py``); each prompt's greedy score is kept beside it. ``--config JSON``
(repeatable) measures other difficulties of the task (``gym_task.TASK_CONFIG`` keys); default:
the recipes' own. This is how the task's difficulty and the training temperature were chosen
(gym_task.py; ``initial_pass_rate.json`` was measured on the former per-seed split of seed 1).
"""

from __future__ import annotations

import argparse
import json
import os
import time

MAX_NEW_TOKENS = 24
PRODUCED_BY = (
    "benchmarks/smollm2_pass_rate.py: vLLM CPU offline (float32, enforce_eager, seed 1) on the "
    "held-out set every seed and arm evaluates (gym_task.build_heldout_rows), scored by "
    "gym_task.score (reasoning-gym's scorer); MODEL_DIR: the converted SmolLM2-135M-Instruct "
    "(areal_a3po/testbeds/smollm2/model.py, build stamp in model_build)"
)


def measure(llm, tok, config: dict, samples: int, temperatures: list[float]) -> dict:
    from vllm import SamplingParams

    from areal_a3po.testbeds.smollm2 import task as gym_task

    gym_task.TASK_CONFIG.clear()
    gym_task.TASK_CONFIG.update(config)
    gym_task.gym_dataset.cache_clear()
    rows = gym_task.build_heldout_rows()
    prompts = []
    for row in rows:
        ids = tok.apply_chat_template(row["messages"], add_generation_prompt=True, tokenize=True)
        prompts.append(
            {"prompt_token_ids": list(ids["input_ids"] if hasattr(ids, "keys") else ids)}
        )
    modes = [("greedy", SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS))]
    modes += [
        (f"T={t:g}", SamplingParams(temperature=t, max_tokens=MAX_NEW_TOKENS, n=samples, seed=1))
        for t in temperatures
    ]
    result: dict = {
        "task": gym_task.TASK,
        "config": config,
        "prompts": len(rows),
        "heldout": {"seed": gym_task.HELDOUT_SEED, "size": len(rows),
                    "digest": gym_task.heldout_digest(rows)},
    }  # fmt: skip
    for name, params in modes:
        scores, lengths = [], []
        for row, gen in zip(rows, llm.generate(prompts, params, use_tqdm=False), strict=True):
            for out in gen.outputs:
                text = tok.decode(out.token_ids)
                scores.append(gym_task.score(text, row["rg_seed"], row["rg_size"], row["rg_index"]))
                lengths.append(len(out.token_ids))
        result[name] = {
            "pass_rate": round(sum(scores) / len(scores), 4),
            "completions": len(scores),
            "mean_tokens": round(sum(lengths) / len(lengths), 2),
            "truncated_share": round(sum(n >= MAX_NEW_TOKENS for n in lengths) / len(lengths), 4),
        }
        if name == "greedy":
            result[name]["scores"] = [round(v, 4) for v in scores]  # per prompt, in set order
    return result


def _command(args) -> str:
    cmd = ["python", "benchmarks/smollm2_pass_rate.py", "MODEL_DIR", "--out", args.out,
           "--samples", str(args.samples), "--temperatures", args.temperatures or '""']  # fmt: skip
    cmd += [x for c in args.config or [] for x in ("--config", f"'{json.dumps(c)}'")]
    return " ".join(cmd)


def main() -> None:
    from areal_a3po.testbeds.smollm2 import model as smollm2
    from areal_a3po.testbeds.smollm2 import task as gym_task

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--temperatures", default="1.0,0.7")
    p.add_argument("--config", action="append", type=json.loads, default=None)
    args = p.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    import vllm
    from vllm import LLM

    t0 = time.monotonic()
    llm = LLM(model=args.model_dir, dtype="float32", enforce_eager=True, max_model_len=128,
              block_size=32, max_num_seqs=32, seed=1)  # fmt: skip
    temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
    configs = args.config or [dict(gym_task.TASK_CONFIG)]
    results = [measure(llm, llm.get_tokenizer(), c, args.samples, temps) for c in configs]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(os.path.join(args.model_dir, smollm2.STAMP)) as f:
        build = json.load(f)
    with open(args.out, "w") as f:
        json.dump({"produced_by": PRODUCED_BY, "command": _command(args),
                   "model_dir": os.path.basename(args.model_dir.rstrip("/")), "model_build": build,
                   "vllm": vllm.__version__, "max_new_tokens": MAX_NEW_TOKENS, "results": results,
                   "wall_s": round(time.monotonic() - t0, 1)}, f, indent=1)  # fmt: skip
        f.write("\n")
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
