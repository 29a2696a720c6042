"""Runner of the embedded default: one arm = one vLLM CPU server + one AReaL trainer process.

For each arm (a value of ``actor.prox_logp_method``) the runner
1. builds (once, cached) the tiny model + tokenizer from the seed: every arm starts from the same
   weights, read-only (AReaL writes its weight updates under the arm's own directory);
2. starts ``python -m areal_a3po.vllm_cpu.server`` (AReaL's vLLM server module + CPU bridge) on
   127.0.0.1 and waits for ``/health``;
3. runs ``python -m areal_a3po.embedded.train`` (AReaL's ``PPOTrainer``, SPMD, one process) against
   it with ``AREAL_LLM_SERVER_ADDRS`` and the loopback mode, counting finished training steps from
   the trainer's log for the progress bar;
4. stops both by process-group id (each is started in its own session), whatever happened.

Every process is bounded in time: server start, time to the first step, time between steps and the
whole arm have limits; a dead server stops the trainer at once (AReaL would retry forever).

Layout of ``out_dir``::

    model/                       tiny model + tokenizer (shared by the arms)
    <arm>/                       run dir returned to the caller: AReaL's StatsLogger tensorboard
                                 event files (stats_logger.tensorboard.path), summary.json
    <arm>/logs/{vllm,trainer}.log
    <arm>/areal/                 AReaL's fileroot (config.yaml, name_resolve, weight updates)
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from areal_a3po.embedded import task

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULT_CONFIG = PACKAGE_DIR / "default.yaml"
REPO_ROOT = PACKAGE_DIR.parent.parent  # directory that contains the areal_a3po package

DEFAULT_STEPS = 30
DEFAULT_STALENESS = 2
DEFAULT_SEED = 1
CI_STEPS = 4  # reduced size for CI: lags of 2 first appear at the third step
BASELINE_PROVIDER = "recompute"
A3PO_PROVIDER = "a3po"
FALLBACK_APPROX_PROVIDER = "loglinear"  # AReaL's built-in approximation (also skips recompute)

EXPERIMENT_NAME = "a3po-embedded"
LOOPBACK = "127.0.0.1"

# Limits (seconds). Generous for a loaded 2-core machine; a healthy arm is far below them.
SERVER_START_TIMEOUT = 240.0
FIRST_STEP_TIMEOUT = 300.0  # trainer start (imports, FSDP init, first rollouts)
STEP_TIMEOUT = 180.0  # between two finished steps
STOP_GRACE = 20.0
LOG_CAP_BYTES = 64 << 20  # stop writing a log past this (AReaL can log in a tight retry loop)

# Flags AReaL's vLLMConfig.build_args adds for every server (AReaL 1.0.4), besides the YAML's vllm:.
_AREAL_VLLM_FLAGS = {
    "load_format": "auto",
    "trust_remote_code": True,
    "tensor_parallel_size": 1,
    "pipeline_parallel_size": 1,
    "distributed_executor_backend": "mp",
    "disable_sliding_window": True,
    "no_enable_prefix_caching": True,
    "uvicorn_log_level": "warning",
}
# vLLMConfig fields that are AReaL-side only or not meaningful on CPU (never passed as flags here).
_SKIP_VLLM_KEYS = {
    "gpu_memory_utilization",
    "lora_modules",
    "enable_lora",
    "max_lora_rank",
    "max_loras",
}

_STEP_RE = re.compile(r"Train step (\d+)/\d+ done")
_REWARD_RE = re.compile(r"│ rollout/reward\s+│\s+([-+0-9.eE]+)\s")


class EmbeddedRunError(RuntimeError):
    """An arm failed; the message names the arm, what failed, and the log to read."""


@dataclass
class ArmResult:
    provider: str
    run_dir: str
    steps: int
    vllm_start_s: float = 0.0
    trainer_init_s: float = 0.0  # trainer start -> first finished step
    train_s: float = 0.0  # first finished step -> last finished step
    total_s: float = 0.0  # whole arm, server start to both processes gone
    step_times_s: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)  # rollout/reward per step, from the log


# --------------------------------------------------------------------------------------- helpers


def default_providers() -> list[str]:
    """``[recompute, a3po]`` when the a3po provider is installed, else ``[recompute, loglinear]``."""
    try:
        from importlib.metadata import entry_points

        names = {ep.name for ep in entry_points(group="areal_a3po.providers")}
    except Exception:  # noqa: BLE001 - metadata problems just mean "not installed"
        names = set()
    return [
        BASELINE_PROVIDER,
        A3PO_PROVIDER if A3PO_PROVIDER in names else FALLBACK_APPROX_PROVIDER,
    ]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _load_config(config_path: Path, overrides: Sequence[str]) -> dict:
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.load(str(config_path)), OmegaConf.from_dotlist(list(overrides)))
    return OmegaConf.to_container(cfg, resolve=True)


def _check_task_consistency(cfg: dict) -> None:
    """The YAML values that must match the task (one sequence per micro-batch, completion length)."""
    g, a = cfg["gconfig"], cfg["actor"]
    n_seqs = cfg["train_dataset"]["batch_size"] * g["n_samples"] // max(1, a["ppo_n_minibatches"])
    problems = []
    if g["max_new_tokens"] != task.MAX_NEW_TOKENS:
        problems.append(f"gconfig.max_new_tokens={g['max_new_tokens']} != {task.MAX_NEW_TOKENS}")
    if a["mb_spec"].get("max_tokens_per_mb") != task.MAX_SEQ_LEN:
        problems.append(f"actor.mb_spec.max_tokens_per_mb != task.MAX_SEQ_LEN={task.MAX_SEQ_LEN}")
    if a["mb_spec"].get("n_mbs") != n_seqs:
        problems.append(f"actor.mb_spec.n_mbs != sequences per PPO minibatch ({n_seqs})")
    if problems:
        raise ValueError("embedded config does not match the task: " + "; ".join(problems))


def vllm_server_cmd(vllm_cfg: dict, model_dir: str, port: int) -> list[str]:
    """Command line for AReaL's vLLM server module through the CPU bridge, like AReaL builds it."""
    args = dict(_AREAL_VLLM_FLAGS)
    for key, value in vllm_cfg.items():
        if key not in _SKIP_VLLM_KEYS:
            args[key] = value
    args.update(model=model_dir, tokenizer=model_dir, host=LOOPBACK, port=port)
    cmd = [sys.executable, "-m", "areal_a3po.vllm_cpu.server"]
    for key, value in args.items():  # same flag rules as areal.api.cli_args.get_py_cmd
        if value is None or value is False or value == "" or value == []:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            cmd.append(flag)
        elif isinstance(value, list):
            cmd += [flag, *map(str, value)]
        else:
            cmd += [flag, str(value)]
    return cmd


def core_split() -> tuple[list[str], dict[str, str], list[str], dict[str, str]] | None:
    """Give vLLM and the trainer one core each (taskset + thread counts), when there are two.

    Both are CPU-bound; sharing the cores, vLLM's background generation slows whichever trainer
    stage runs beside it, so stage times (and what A-3PO removes) would measure the contention.
    Returns (server prefix, server env, trainer prefix, trainer env), or None (no split).
    """
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2 or shutil.which("taskset") is None:
        return None
    server, trainer = str(cores[0]), ",".join(str(c) for c in cores[1:])
    n = str(len(cores) - 1)
    return (
        ["taskset", "-c", server],
        {"VLLM_CPU_OMP_THREADS_BIND": server, "OMP_NUM_THREADS": "1"},
        ["taskset", "-c", trainer],
        {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n},
    )


def _base_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO_ROOT), env.get("PYTHONPATH", "")] if p)
    env.update(
        PYTHONUNBUFFERED="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        WANDB_MODE="disabled",
        VLLM_NO_USAGE_STATS="1",
        DO_NOT_TRACK="1",
        AREAL_A3PO_LOOPBACK="1",
        VLLM_HOST_IP=LOOPBACK,
        GLOO_SOCKET_IFNAME="lo",
    )
    return env


class _Proc:
    """A child started in its own session; stopped by its process-group id, never by name."""

    def __init__(
        self, name: str, cmd: list[str], env: dict, log_path: Path, limit_s: float, on_line=None
    ):
        self.name = name
        # coreutils timeout bounds the process even if this runner is killed without cleanup;
        # it signals the whole process group of the command.
        cmd = ["timeout", "--kill-after=15", f"{int(limit_s)}", *cmd]
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        self._written = 0
        self._on_line = on_line
        self.popen = subprocess.Popen(
            cmd,
            env=env,
            cwd=str(log_path.parent),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, name=f"{name}-log", daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for raw in iter(self.popen.stdout.readline, b""):
            if self._written < LOG_CAP_BYTES:
                self._log.write(raw)
                self._written += len(raw)
                if self._written >= LOG_CAP_BYTES:
                    self._log.write(b"\n[a3po runner] log capped here\n")
                self._log.flush()
            if self._on_line is not None:
                try:
                    self._on_line(raw.decode("utf-8", "replace"))
                except Exception:  # noqa: BLE001 - progress parsing must never break the run
                    pass

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> None:
        """SIGTERM to the whole process group, then SIGKILL to whatever is left of it."""
        pgid = self.popen.pid  # start_new_session: the child leads its own process group
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline:
            self.popen.poll()
            try:
                os.killpg(pgid, 0)  # members (vLLM engine, reward workers) may outlive the leader
            except ProcessLookupError:
                break
            time.sleep(0.5)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._reader.join(timeout=5)
        self._log.close()

    def tail(self, n: int = 30) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])


def _wait_health(server: _Proc, port: int, timeout: float) -> None:
    url = f"http://{LOOPBACK}:{port}/health"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise EmbeddedRunError(
                f"vLLM server exited with code {server.popen.returncode} before becoming healthy; "
                f"see {server.log_path}\n{server.tail()}"
            )
        try:
            with opener.open(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1.0)
    raise EmbeddedRunError(f"vLLM server not healthy after {timeout:.0f}s; see {server.log_path}")


# ------------------------------------------------------------------------------------------ arms


def run_arm(
    provider: str,
    out_dir: str | os.PathLike,
    steps: int = DEFAULT_STEPS,
    staleness: int = DEFAULT_STALENESS,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
    config: str | os.PathLike = DEFAULT_CONFIG,
    extra_overrides: Sequence[str] = (),
    position: int = 0,
) -> ArmResult:
    """Run one arm (``actor.prox_logp_method = provider``); returns its timings and reward curve."""
    from areal_a3po.embedded.model import build_model_dir

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", provider) or provider == "model":
        raise ValueError(
            f"provider name {provider!r} must be a plain identifier other than 'model'"
        )
    out = Path(out_dir).resolve()
    run_dir = out / provider
    if run_dir.exists():
        shutil.rmtree(run_dir)  # never mix event files of two runs in one directory
    logs = run_dir / "logs"
    logs.mkdir(parents=True)
    model_dir = build_model_dir(str(out / "model"), list(task.VOCAB), seed=seed)

    fileroot = run_dir / "areal"
    overrides = [
        f"experiment_name={EXPERIMENT_NAME}",
        f"trial_name={provider}",
        f"seed={seed}",
        f"total_train_steps={steps}",
        f"rollout.max_head_offpolicyness={staleness}",
        f"actor.prox_logp_method={provider}",
        f"actor.path={model_dir}",
        f"cluster.fileroot={fileroot}",
        f"cluster.name_resolve.nfs_record_root={fileroot / 'name_resolve'}",
        f"stats_logger.tensorboard.path={run_dir}",
        *extra_overrides,
    ]
    cfg = _load_config(Path(config), overrides)
    _check_task_consistency(cfg)

    result = ArmResult(provider=provider, run_dir=str(run_dir), steps=steps)
    env = _base_env()
    env["VLLM_CPU_KVCACHE_SPACE"] = env.get("VLLM_CPU_KVCACHE_SPACE", "1")
    t_arm = time.monotonic()

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"{provider:>10}", unit="step", position=position, leave=True)
        bar.set_postfix_str("starting vLLM")

    # AReaL's StatsLogger prints "Train step N/M done." and then that step's stats table.
    state = {"done": 0, "last": time.monotonic(), "reward": None}
    step_rewards: dict[int, float] = {}
    lock = threading.Lock()

    def on_trainer_line(line: str) -> None:
        m = _STEP_RE.search(line)
        if m:
            now = time.monotonic()
            with lock:
                n = int(m.group(1))
                if n > state["done"]:
                    result.step_times_s.append(now - state["last"])
                    state["done"], state["last"] = n, now
            return
        m = _REWARD_RE.search(line)
        if m:
            with lock:
                state["reward"] = step_rewards[state["done"]] = float(m.group(1))

    server = trainer = None
    try:
        port = _free_port()
        arm_limit = SERVER_START_TIMEOUT + FIRST_STEP_TIMEOUT + steps * STEP_TIMEOUT + 120
        split = core_split()
        server_prefix, server_env, trainer_prefix, trainer_env = split or ([], {}, [], {})
        server_cmd = server_prefix + vllm_server_cmd(cfg["vllm"], model_dir, port)
        (logs / "vllm_cmd.txt").write_text(" ".join(server_cmd) + "\n")
        server = _Proc(
            "vllm", server_cmd, {**env, **server_env}, logs / "vllm.log", limit_s=arm_limit
        )
        _wait_health(server, port, SERVER_START_TIMEOUT)
        result.vllm_start_s = time.monotonic() - t_arm
        if bar is not None:
            bar.set_postfix_str(f"vLLM up in {result.vllm_start_s:.0f}s, starting trainer")

        tenv = dict(env)
        tenv.update(
            AREAL_SPMD_MODE="1",
            AREAL_LLM_SERVER_ADDRS=f"{LOOPBACK}:{port}",
            WORLD_SIZE="1",
            RANK="0",
            LOCAL_RANK="0",
            LOCAL_WORLD_SIZE="1",
            MASTER_ADDR=LOOPBACK,
            MASTER_PORT=str(_free_port()),
            **trainer_env,
        )
        cmd = trainer_prefix + [
            sys.executable,
            "-m",
            "areal_a3po.embedded.train",
            "--config",
            str(Path(config).resolve()),
            *overrides,
        ]
        (logs / "trainer_cmd.txt").write_text(" ".join(cmd) + "\n")
        t_trainer = time.monotonic()
        state["last"] = t_trainer
        trainer = _Proc(
            "trainer", cmd, tenv, logs / "trainer.log", limit_s=arm_limit, on_line=on_trainer_line
        )

        shown = 0
        while True:
            time.sleep(0.5)
            with lock:
                done, last, reward = state["done"], state["last"], state["reward"]
            if bar is not None and done > shown:
                bar.update(done - shown)
                shown = done
                if reward is not None:
                    bar.set_postfix_str(f"reward {reward:.3f}")
            if not trainer.alive():
                break
            if not server.alive():
                raise EmbeddedRunError(
                    f"[{provider}] vLLM server died (code {server.popen.returncode}) during training; "
                    f"see {server.log_path}\n{server.tail()}"
                )
            limit = FIRST_STEP_TIMEOUT if done == 0 else STEP_TIMEOUT
            if time.monotonic() - last > limit:
                raise EmbeddedRunError(
                    f"[{provider}] no training step finished for {limit:.0f}s (after {done} steps); "
                    f"see {trainer.log_path}\n{trainer.tail()}"
                )
        rc = trainer.popen.returncode
        if rc != 0 or state["done"] < steps:
            raise EmbeddedRunError(
                f"[{provider}] trainer exited with code {rc} after {state['done']}/{steps} steps; "
                f"see {trainer.log_path}\n{trainer.tail()}"
            )
        if result.step_times_s:
            result.trainer_init_s = result.step_times_s[0]
            result.train_s = sum(result.step_times_s[1:])
    finally:
        for proc in (trainer, server):
            if proc is not None:
                proc.stop()
        result.total_s = time.monotonic() - t_arm
        with lock:
            result.rewards = [step_rewards[k] for k in sorted(step_rewards) if k >= 1]
        if bar is not None:
            bar.close()
        (run_dir / "summary.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result


def run_default(
    out_dir: str,
    steps: int = DEFAULT_STEPS,
    staleness: int = DEFAULT_STALENESS,
    seed: int = DEFAULT_SEED,
    providers: Sequence[str] | None = None,
    progress: bool = True,
    on_arm_done: Callable[[ArmResult], None] | None = None,
) -> list[str]:
    """Run the embedded default, one arm per provider (sequentially); returns the run dirs.

    Each run dir holds the tensorboard event files written by AReaL's StatsLogger for that arm.
    ``providers=None`` means :func:`default_providers`.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    if staleness < 0:
        raise ValueError("staleness must be >= 0")
    providers = list(providers) if providers else default_providers()
    if len(set(providers)) != len(providers):
        raise ValueError(f"duplicate providers: {providers}")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    run_dirs = []
    for i, provider in enumerate(providers):
        res = run_arm(
            provider,
            out_dir,
            steps=steps,
            staleness=staleness,
            seed=seed,
            progress=progress,
            position=i,
        )
        run_dirs.append(res.run_dir)
        if on_arm_done is not None:
            on_arm_done(res)
    return run_dirs


def run_reduced(
    out_dir: str,
    steps: int = CI_STEPS,
    staleness: int = DEFAULT_STALENESS,
    seed: int = DEFAULT_SEED,
    providers: Sequence[str] | None = None,
    progress: bool = False,
) -> list[str]:
    """The CI size of :func:`run_default`: same loop and config, ``CI_STEPS`` steps per arm."""
    return run_default(
        out_dir, steps=steps, staleness=staleness, seed=seed, providers=providers, progress=progress
    )
