"""``areal.api.cli_args``: vLLM's behaviour log-probs at the sampling temperature (``vllm.logprobs_mode``).

Why: vLLM returns each sampled token's log-prob *before* temperature unless told otherwise (its
``--logprobs-mode`` defaults to ``raw_logprobs``), while AReaL's trainer computes
``log_softmax(logits / actor.temperature)``. AReaL (1.0.4, 2.0.0, main) never passes the flag, so
at ``gconfig.temperature`` != 1 the behaviour log-probs that reach the loss are not the trainer's
(about 0.2 nats per token on SmolLM2-135M at T = 0.7). ``processed_logprobs`` makes vLLM return
them after temperature (and after top-p/top-k, see below), i.e. exactly the trainer's.

* ``vLLMConfig`` gains the init field ``logprobs_mode`` (YAML ``vllm.logprobs_mode``, default
  ``processed_logprobs``), only where AReaL's class has no field of that name (an AReaL that adds
  one keeps its own, untouched, and this module then leaves the flag to AReaL). AReaL's
  ``build_args`` turns every field into a flag, so the value reaches ``--logprobs-mode`` on every
  launch path (single-controller ``launch_server``, SPMD ``vllm_server``, Ray, inference service).
* :func:`checked_args`, called by the ``build_cmd_from_args`` wrapper of :mod:`.vllm`: the value is
  validated, then passed if the installed vLLM accepts the flag (its ``EngineArgs`` dataclass has a
  ``logprobs_mode`` field, read from vLLM's source without importing vLLM) and dropped, with a
  warning naming the key, if it does not. Logged once per process.
* ``load_expr_config`` warns once when the experiment samples with top-p/top-k on the vLLM backend
  with processed log-probs: vLLM renormalises them over the kept tokens, the trainer does not.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from areal_a3po.api import A3POConfigError
from areal_a3po.coupling import gate

KEY = "vllm.logprobs_mode"
FIELD = "logprobs_mode"
PROCESSED = "processed_logprobs"
RAW = "raw_logprobs"
ALLOWED = (PROCESSED, RAW)
_MARK = "__a3po_logprobs_mode__"  # on the wrapped load_expr_config
_FIELD_MARK = "__a3po_logprobs_mode_field__"  # on a vLLMConfig whose field is the plugin's
_said: set[str] = set()  # once-per-process messages already logged


def _once(key: str, level: str, message: str) -> None:
    if key not in _said:
        _said.add(key)
        getattr(gate.logger(), level)(message)


def check_mode(value: Any) -> str:
    """``value`` if it is an allowed ``vllm.logprobs_mode``, else an error naming the key."""
    if isinstance(value, str) and value in ALLOWED:
        return value
    hint = ""
    if value in ("raw_logits", "processed_logits"):
        hint = (
            f" vLLM's {value} returns logits, not log-probs, and AReaL would read them as "
            "behaviour log-probs."
        )
    raise A3POConfigError(
        f"{KEY} must be one of {list(ALLOWED)}, got {value!r}.{hint} {PROCESSED} (the plugin's "
        "default): log-probs after temperature, as AReaL's trainer computes them; "
        f"{RAW}: vLLM's default, before temperature."
    )


def engine_args_fields(path: str) -> set[str] | None:
    """The annotated fields of class ``EngineArgs`` in the vLLM source file ``path`` (no import);
    None if the file has no such class."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "EngineArgs":
            return {
                s.target.id
                for s in node.body
                if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
            }
    return None


@functools.cache
def vllm_accepts_logprobs_mode() -> bool | None:
    """Whether the installed vLLM's server takes ``--logprobs-mode``: its CLI is generated from the
    ``EngineArgs`` dataclass, so the flag exists iff the dataclass has the field. None: no vLLM
    (or no ``EngineArgs``) found in this process, so nothing to check against."""
    loaded = sys.modules.get("vllm.engine.arg_utils")
    engine_args = getattr(loaded, "EngineArgs", None)
    if dataclasses.is_dataclass(engine_args):  # already imported here: ask the class itself
        return FIELD in {f.name for f in dataclasses.fields(engine_args)}
    spec = importlib.util.find_spec("vllm")  # top level: does not import vllm
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = os.path.join(root, "engine", "arg_utils.py")
        if os.path.isfile(path):
            try:
                fields = engine_args_fields(path)
            except (OSError, SyntaxError, ValueError):
                return None
            return None if fields is None else FIELD in fields
    return None


def own_field(cls) -> bool:
    """Whether ``vLLMConfig``'s ``logprobs_mode`` is the plugin's (not AReaL's own)."""
    return bool(getattr(cls, _FIELD_MARK, False))


def checked_args(args: dict[str, Any], cls) -> dict[str, Any]:
    """``cls.build_cmd_from_args``' arguments with ``logprobs_mode`` decided (a new dict; the
    caller's is not changed). Untouched where the field is AReaL's own or absent from ``args``."""
    if not own_field(cls) or FIELD not in args:
        return args
    mode = check_mode(args[FIELD])
    accepts = vllm_accepts_logprobs_mode()
    if accepts is False:
        args = {k: v for k, v in args.items() if k != FIELD}
        if mode == PROCESSED:
            _once(
                "dropped",
                "warning",
                f"{KEY}: {PROCESSED} not passed: the installed vLLM has no --logprobs-mode (its "
                "EngineArgs has no logprobs_mode field), so it returns log-probs before "
                "temperature; at gconfig.temperature != 1 they differ from the trainer's "
                "(log_softmax(logits / actor.temperature)). Install a vLLM with --logprobs-mode, "
                f"or sample at temperature 1; {KEY}: {RAW} silences this warning.",
            )
        return args
    if mode == PROCESSED:
        unchecked = "" if accepts else " (no vLLM found in this process to check the flag against)"
        _once(
            "processed",
            "info",
            f"{KEY}: {PROCESSED}: vLLM is started with --logprobs-mode {PROCESSED}{unchecked}, so "
            "the behaviour log-probs are after temperature, as AReaL's trainer computes them "
            "(log_softmax(logits / actor.temperature)); vLLM's default would return them before "
            f"temperature. To switch it off: {KEY}: {RAW}.",
        )
    return args


def _backend_is_vllm(cfg) -> bool:
    from areal.api import alloc_mode

    rollout = getattr(getattr(cfg, "rollout", None), "backend", None)
    if isinstance(rollout, str) and rollout:
        try:
            return alloc_mode.ModelAllocation.from_str(rollout).backend == "vllm"
        except Exception:  # AReaL's own check reports a bad spec; a prefix is enough here
            return rollout.split(":", 1)[0].strip() == "vllm"
    legacy = getattr(cfg, "allocation_mode", None)  # SPMD launchers' (deprecated) key
    if isinstance(legacy, str) and legacy:
        try:
            return alloc_mode._AllocationMode.from_str(legacy).gen_backend == "vllm"
        except Exception:
            return False
    return False


def _top_k_default(gconfig) -> int | None:
    f = getattr(type(gconfig), "__dataclass_fields__", {}).get("top_k")
    return f.default if f is not None and isinstance(f.default, int) else None


def sampling_filter_warning(cfg) -> str | None:
    """The warning for an experiment whose vLLM processed log-probs are renormalised by top-p/top-k
    (the trainer's are not), or None."""
    gconfig = getattr(cfg, "gconfig", None)
    mode = getattr(getattr(cfg, "vllm", None), FIELD, None)
    if gconfig is None or mode != PROCESSED or getattr(gconfig, "greedy", False):
        return None
    if not _backend_is_vllm(cfg):
        return None
    top_p, top_k = getattr(gconfig, "top_p", 1.0), getattr(gconfig, "top_k", 0)
    default_k = _top_k_default(gconfig)  # AReaL's "no filter" default (int(1e8))
    filters = []
    if top_p is not None and top_p < 1.0:
        filters.append(f"gconfig.top_p: {top_p}")
    if top_k is not None and 0 < top_k and (default_k is None or top_k < default_k):
        filters.append(f"gconfig.top_k: {top_k}")
    if not filters:
        return None
    return (
        f"{' and '.join(filters)} with {KEY}: {PROCESSED} on the vLLM backend: vLLM renormalises "
        "the behaviour log-probs over the tokens top-p/top-k keep, AReaL's trainer applies only "
        "the temperature, so they differ on every token (top-k: when below the vocabulary size). "
        "For log-probs that match: gconfig.top_p: 1.0 and gconfig.top_k at its default (or 0); "
        f"or, at gconfig.temperature: 1.0 only, {KEY}: {RAW} (before the filter, as the trainer)."
    )


def _wrap_load_expr_config(module: ModuleType) -> None:
    original = module.load_expr_config
    if getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def load_expr_config(argv, config_cls):
        cfg, config_file = original(argv, config_cls)
        message = sampling_filter_warning(cfg)
        if message is not None:
            _once("filter", "warning", message)
        return cfg, config_file

    setattr(load_expr_config, _MARK, True)
    module.load_expr_config = load_expr_config


def _add_field(cls) -> None:
    f = dataclasses.field(
        default=PROCESSED,
        metadata={
            "help": "vLLM --logprobs-mode, added by areal-a3po: processed_logprobs (log-probs "
            "after temperature, as the trainer) or raw_logprobs (vLLM's default).",
            "choices": list(ALLOWED),
        },
    )
    f.name, f.type, f._field_type, f.kw_only = FIELD, str, dataclasses._FIELD, True
    cls.__dataclass_fields__[FIELD] = f
    cls.__annotations__[FIELD] = str
    setattr(cls, FIELD, PROCESSED)  # class default, like a dataclass field's
    setattr(cls, _FIELD_MARK, True)
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, logprobs_mode: str = PROCESSED, **kwargs):
        init(self, *args, **kwargs)
        self.logprobs_mode = check_mode(logprobs_mode)

    cls.__init__ = __init__


def patch(module: ModuleType) -> None:
    cls = module.vLLMConfig
    target = "areal.api.cli_args."
    if FIELD in cls.__dataclass_fields__ and not own_field(cls):
        gate.record(target + "vLLMConfig." + FIELD, "AReaL's own field: left to AReaL")
    elif not own_field(cls):
        _add_field(cls)
        gate.record(
            target + "vLLMConfig." + FIELD,
            f"init field (YAML {KEY}, default {PROCESSED}): --logprobs-mode on every launch "
            "path, dropped with a warning where vLLM lacks the flag",
        )
    _wrap_load_expr_config(module)
    gate.record(
        target + "load_expr_config",
        "warns once when gconfig.top_p/top_k renormalise vLLM's processed log-probs",
    )
