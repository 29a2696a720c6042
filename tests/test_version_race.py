"""Generated tokens keep the weight version that served them (AReaL PR #1569, carried by the plugin).

AReaL's real ``RemoteInfEngine`` with its real backends talks HTTP to a server on 127.0.0.1 that
answers in the backend's own format and, while the request is in flight, moves the engine to the
next weight version (``set_version``, what the trainer does once the servers have loaded new
weights): ``VLLMBackend`` (``/v1/completions``) and, as the GPU recipes run it, AReaL's
``RemoteSGLangEngine`` with its ``SGLangBackend`` (``/generate``: ``meta_info`` with
``output_token_logprobs`` and ``finish_reason``, including SGLang's two aborts: one after some
tokens, which AReaL resubmits with the tokens appended, and "Abort before prefill", with no
tokens). Stand-ins: the workflow executor (only ``is_paused`` is read; the rollout loop around it
is not what is tested) and the inference server itself (the test's HTTP server).

areal 1.0.4 and AReaL 2.0.0 read the version twice per request and so label the tokens with the
new version; the plugin's coupling makes them keep the request's version (the negative control
runs AReaL's unpatched methods and sees the race). AReaL main reads it once (its own fix) and is
left unpatched. The v2 inference service of AReaL 2.0.0 and main
(``areal/v2/inference_service/inf_bridge.py``) reads ``self._version`` after the round trip again;
no recipe's launch path reaches it (``test_v2_inference_service_unreachable_from_every_recipe``).
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest

OLD, NEW = 10, 11


BACKENDS = ("vllm", "sglang")
ABORT_BEFORE_PREFILL = "abort before prefill"  # SGLang: aborted while queued, no tokens


def _vllm_answer(tokens: list[int], finish: str) -> dict:
    """A vLLM /v1/completions answer as AReaL requests it (tokens as ``token:<id>``)."""
    return {
        "choices": [
            {
                "finish_reason": finish,
                "logprobs": {
                    "tokens": [f"token:{t}" for t in tokens],
                    "token_logprobs": [-0.5] * len(tokens),
                },
            }
        ]
    }


def _sglang_answer(payload: dict, tokens: list[int], finish: str) -> dict:
    """An SGLang /generate answer (``return_logprob``, ``skip_tokenizer_init``): finish reasons
    as SGLang's ``FINISH_*.to_json()`` give them; "Abort before prefill" as its tokenizer
    manager answers a request aborted in the queue (no ``output_token_logprobs``)."""
    if finish == ABORT_BEFORE_PREFILL:
        reason = {"type": "abort", "message": "Abort before prefill"}
        return {
            "text": "",
            "meta_info": {"id": "r0", "finish_reason": reason, "prompt_tokens": 0,
                          "completion_tokens": 0},
        }  # fmt: skip
    reason = {
        "stop": {"type": "stop", "matched": 2},
        "length": {"type": "length", "length": len(tokens)},
        "abort": {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None},
    }[finish]
    return {
        "text": "",
        "output_ids": tokens,
        "meta_info": {
            "id": "r0",
            "finish_reason": reason,
            "prompt_tokens": len(payload["input_ids"]),
            "completion_tokens": len(tokens),
            "cached_tokens": 0,
            "output_token_logprobs": [[-0.5, t, None] for t in tokens],
        },
    }


def _engine(backend: str, config):
    """(the engine the trainer calls, the RemoteInfEngine under it): AReaL's own classes."""
    from areal.infra.remote_inf_engine import RemoteInfEngine

    if backend == "vllm":
        from areal.engine.vllm_remote import VLLMBackend

        engine = RemoteInfEngine(config, VLLMBackend())
        return engine, engine
    from areal.engine.sglang_remote import RemoteSGLangEngine

    engine = RemoteSGLangEngine(config)  # agenerate -> its RemoteInfEngine with SGLangBackend
    assert isinstance(engine._engine, RemoteInfEngine)
    return engine, engine._engine


def _generate(
    answers: list[tuple[list[int], str, bool]], backend: str = "vllm", requests: list | None = None
) -> tuple[list[int], list[int]]:
    """One ``agenerate`` against a local server; per request: (tokens, finish, update lands).

    Returns the response's ``output_versions`` and the version each request was sent with;
    ``requests`` collects the JSON bodies the server received.
    """
    from aiohttp import web
    from areal.api.cli_args import GenerationHyperparameters, InferenceEngineConfig
    from areal.api.io_struct import ModelRequest

    engine, remote = _engine(
        backend, InferenceEngineConfig(experiment_name="race", trial_name="t", request_retries=1)
    )
    engine.set_version(OLD)
    remote.workflow_executor = SimpleNamespace(is_paused=lambda: False)  # stand-in, see above
    sent: list[int] = []
    todo = list(answers)

    async def answer(request):
        payload = await request.json()
        if requests is not None:
            requests.append(payload)
        tokens, finish, update = todo.pop(0)
        sent.append(engine.get_version())  # outside agenerate: the engine's current version
        if update:
            engine.set_version(engine.get_version() + 1)  # the weight update lands meanwhile
        if backend == "vllm":
            return web.json_response(_vllm_answer(tokens, finish))
        return web.json_response(_sglang_answer(payload, tokens, finish))

    async def run():
        app = web.Application()
        app.router.add_post("/v1/completions" if backend == "vllm" else "/generate", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        remote.addresses = [f"127.0.0.1:{port}"]
        try:
            gconfig = GenerationHyperparameters(max_new_tokens=3, n_samples=1)
            req = ModelRequest(rid="r0", input_ids=[1, 2], gconfig=gconfig)
            return await asyncio.wait_for(engine.agenerate(req), timeout=60)
        finally:
            await runner.cleanup()

    response = asyncio.run(run())
    assert not todo, f"{len(todo)} prepared answers were never requested"
    return list(response.output_versions), sent


def _agenerate_reads_version_twice() -> bool:
    from areal.infra.remote_inf_engine import RemoteInfEngine

    from areal_a3po.coupling.remote_inf_engine import version_reads

    return version_reads(RemoteInfEngine.agenerate) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_version_race_update_during_request_tokens_keep_request_version(backend):
    from areal_a3po.coupling.remote_inf_engine import CORRECTED

    before = (CORRECTED.requests, CORRECTED.corrected)
    versions, sent = _generate([([5, 6, 7], "stop", True)], backend)
    assert sent == [OLD]
    assert versions == [OLD] * 3, "tokens generated by version 10 must not be labelled 11"
    counted = (CORRECTED.requests - before[0], CORRECTED.corrected - before[1])
    assert counted == ((1, 1) if _agenerate_reads_version_twice() else (0, 0))


@pytest.mark.parametrize("backend", BACKENDS)
def test_version_race_interrupted_generation_each_chunk_its_own_version(backend):
    # The update aborts the first request after two tokens; the rest is generated at the new one.
    requests: list[dict] = []
    versions, sent = _generate([([5, 6], "abort", True), ([7], "stop", False)], backend, requests)
    assert sent == [OLD, NEW]
    assert versions == [OLD, OLD, NEW]
    if backend == "sglang":  # AReaL resubmits with the generated tokens appended
        assert [r["input_ids"] for r in requests] == [[1, 2], [1, 2, 5, 6]]
        assert [r["sampling_params"]["max_new_tokens"] for r in requests] == [3, 1]
        assert all(r["return_logprob"] is True for r in requests)


def test_version_race_sglang_abort_before_prefill_resubmitted_tokens_keep_their_versions():
    """SGLang aborts a queued request with no tokens ("Abort before prefill") while the update
    lands, then generates; an earlier chunk keeps its version, the resubmitted ones the new one."""
    requests: list[dict] = []
    versions, sent = _generate(
        [([5], "abort", True), ([], ABORT_BEFORE_PREFILL, False), ([6, 7], "stop", False)],
        "sglang",
        requests,
    )
    assert sent == [OLD, NEW, NEW]
    assert versions == [OLD, NEW, NEW]
    assert [r["input_ids"] for r in requests] == [[1, 2], [1, 2, 5], [1, 2, 5]]


def test_version_race_patched_exactly_where_agenerate_reads_version_twice():
    from areal.infra.remote_inf_engine import RemoteInfEngine

    from areal_a3po.coupling import gate

    patched = hasattr(RemoteInfEngine.agenerate, "__wrapped__")
    assert patched == _agenerate_reads_version_twice()
    details = [p.detail for p in gate.applied_patch_points() if p.target.endswith(".agenerate")]
    assert len(details) == 1
    assert details[0].startswith("tokens labelled") == patched


# (backend, answers, the labels the plugin keeps, AReaL's own labels)
UNFIXED = {
    "vllm": ("vllm", [([5, 6, 7], "stop", True)], [OLD] * 3, [NEW] * 3),
    "sglang": ("sglang", [([5, 6, 7], "stop", True)], [OLD] * 3, [NEW] * 3),
    "sglang-abort-before-prefill": (
        "sglang",
        [([5], "abort", True), ([], ABORT_BEFORE_PREFILL, False), ([6, 7], "stop", False)],
        [OLD, NEW, NEW],
        [NEW, NEW, NEW],
    ),
}


@pytest.mark.parametrize("case", sorted(UNFIXED))
def test_version_race_without_the_fix_areal_labels_the_new_version(case, monkeypatch):
    """Negative control: AReaL's own methods (1.0.4, 2.0.0) label the tokens generated by version
    10 with version 11, where the plugin keeps 10 (the tests above)."""
    if not _agenerate_reads_version_twice():
        pytest.skip("this AReaL reads the version once per request (its own fix, PR #1569)")
    backend, answers, kept, unfixed = UNFIXED[case]
    assert _generate(answers, backend)[0] == kept  # with the plugin's patch
    import areal.infra.remote_inf_engine as module

    cls = module.RemoteInfEngine
    monkeypatch.setattr(cls, "agenerate", cls.agenerate.__wrapped__)
    monkeypatch.setattr(cls, "get_version", cls.get_version.__wrapped__)
    monkeypatch.setattr(module, "arequest_with_retry", module.arequest_with_retry.__wrapped__)
    versions, sent = _generate(answers, backend)
    assert sent[0] == OLD
    assert versions == unfixed


# ----------------------------------------------------------------------------- AReaL 2.x's v2


def _areal_sources(*names: str) -> dict[str, ast.Module]:
    """The installed AReaL's modules that mention one of ``names``, parsed, by package path."""
    import areal

    root = Path(areal.__file__).parent
    out = {}
    for p in root.rglob("*.py"):
        text = p.read_text()
        if "__pycache__" not in p.parts and any(n in text for n in names):
            out[str(p.relative_to(root.parent))] = ast.parse(text)
    return out


def _calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == name
    ]


def _under_v2_version_branch(tree: ast.Module, call: ast.Call) -> bool:
    """The call sits in the body of an ``if <config>._version == "v2":``."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        is_v2 = (
            isinstance(test, ast.Compare)
            and isinstance(test.left, ast.Attribute)
            and test.left.attr == "_version"
            and isinstance(test.ops[0], ast.Eq)
            and getattr(test.comparators[0], "value", None) == "v2"
        )
        if is_v2 and any(call in ast.walk(stmt) for stmt in node.body):
            return True
    return False


def test_v2_inference_service_unreachable_from_every_recipe(tmp_path, load_recipe):
    """The v2 ``InfBridge.agenerate`` labels tokens with ``self._version`` read after the
    HTTP round trip (the #1569 race; the plugin does not patch it). The only path to it from a
    trainer: ``InfBridge`` is built by the v2 data proxy only, which AReaL's
    ``RolloutControllerV2`` (and AReaL's own v2 inference CLI) starts, and every
    ``RolloutControllerV2(...)`` outside ``areal/v2`` sits under ``if config._version == "v2":``.
    Every GPU recipe, loaded with AReaL's loader, keeps ``rollout._version`` and
    ``actor._version`` at ``v1``, and every launch line starts the plugin's entry script or one of
    AReaL's v1 launchers. Read from the installed AReaL's own sources (AReaL 2.0.0 and main)."""
    try:
        found = importlib.util.find_spec("areal.v2.inference_service.inf_bridge") is not None
    except ModuleNotFoundError:  # no areal.v2 package at all (areal 1.0.4)
        found = False
    if not found:
        pytest.skip("this AReaL has no v2 inference service (areal 1.0.4)")
    from areal.v2.inference_service.inf_bridge import InfBridge

    from tests.recipe_headers import GPU_RECIPES, commands

    source = inspect.getsource(InfBridge.agenerate)
    answered = source.index("await self._send_request(")
    assert "[self._version] * len(" in source[answered:], "the race this test is about is gone"

    trees = _areal_sources("InfBridge", "RolloutControllerV2", "inference_service.data_proxy")
    bridges = {path for path, tree in trees.items() if _calls(tree, "InfBridge")}
    assert bridges == {"areal/v2/inference_service/data_proxy/app.py"}, bridges
    starters = {
        path
        for path, tree in trees.items()
        if "data_proxy" not in path
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and n.value == "areal.v2.inference_service.data_proxy"
    }
    assert starters == {
        "areal/v2/inference_service/controller/controller.py",  # RolloutControllerV2
        "areal/v2/cli/inference/launcher.py",  # AReaL's standalone v2 inference CLI
    }, starters
    outside = [
        (path, call)
        for path, tree in trees.items()
        if not path.startswith("areal/v2/")
        for call in _calls(tree, "RolloutControllerV2")
    ]
    assert outside, "no RolloutControllerV2 call outside areal/v2: the checks below prove nothing"
    for path, call in outside:
        assert _under_v2_version_branch(trees[path], call), f"{path}:{call.lineno}"

    for recipe in GPU_RECIPES:
        assert "_version" not in recipe.read_text(), recipe.name
        cfg = load_recipe(recipe, tmp_path)
        assert (cfg.rollout._version, cfg.actor._version) == ("v1", "v1"), recipe.name
        for label, command in commands(recipe):
            module = command.split()[2] if command.split()[1] == "-m" else None
            assert module and module.startswith(("areal_a3po.entry.", "areal.infra.launcher.")), (
                recipe.name,
                label,
            )
