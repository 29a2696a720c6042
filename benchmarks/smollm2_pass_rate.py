"""Pass rate of the converted SmolLM2 on the reasoning-gym task's held-out split, before training.

    python benchmarks/smollm2_pass_rate.py MODEL_DIR --out docs/benchmarks/smollm2/initial_pass_rate.json

vLLM CPU offline generation on the held-out split the recipes evaluate (seed 1:
``gym_task.build_heldout_rows``), scored by reasoning-gym's scorer through ``gym_task.score``:
greedy (the recipes' ``eval_gconfig``) and sampled at each ``--temperatures`` value (``--samples``
per prompt), 24 new tokens as in the recipes. ``--config JSON`` (repeatable) measures other
difficulties of the task (``gym_task.TASK_CONFIG`` keys); default: the recipes' own.
This is how the task's difficulty and the training temperature were chosen (gym_task.py).
"""

from __future__ import annotations

import argparse
import json
import os
import time

MAX_NEW_TOKENS = 24


def measure(llm, tok, config: dict, samples: int, temperatures: list[float]) -> dict:
    from vllm import SamplingParams

    from areal_a3po.embedded import gym_task, train_gym

    gym_task.TASK_CONFIG.clear()
    gym_task.TASK_CONFIG.update(config)
    gym_task.gym_dataset.cache_clear()
    rows = gym_task.build_heldout_rows(1, gym_task.build_rows(1, train_gym.DATASET_SIZE))
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
    result: dict = {"task": gym_task.TASK, "config": config, "prompts": len(rows)}
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
    return result


def main() -> None:
    from areal_a3po.embedded import gym_task

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model_dir")
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--temperatures", default="1.0,0.7")
    p.add_argument("--config", action="append", type=json.loads, default=None)
    args = p.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_HOST_IP", "127.0.0.1")
    from vllm import LLM

    t0 = time.monotonic()
    llm = LLM(model=args.model_dir, dtype="float32", enforce_eager=True, max_model_len=128,
              block_size=32, max_num_seqs=32, seed=1)  # fmt: skip
    temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
    configs = args.config or [dict(gym_task.TASK_CONFIG)]
    results = [measure(llm, llm.get_tokenizer(), c, args.samples, temps) for c in configs]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"model_dir": os.path.basename(args.model_dir.rstrip("/")),
                   "max_new_tokens": MAX_NEW_TOKENS, "results": results,
                   "wall_s": round(time.monotonic() - t0, 1)}, f, indent=1)  # fmt: skip
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
