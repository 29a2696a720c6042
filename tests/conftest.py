"""Shared fixtures: the tiny model, AReaL's real FSDPPPOActor, one trainer step, configs.

Test modules take these fixtures instead of importing from each other or from ``tests/harness.py``
(the plain functions behind them). Mark a test ``slow`` when it runs an end-to-end job or spawns
heavy processes; ``scripts/test.sh --quick`` leaves those out, CI (``.ci/run``) runs everything.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import harness as H


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A randomly initialised 2-layer Qwen2 + word-level tokenizer, saved once per session.

    Read-only for tests: actors load it and train in memory.
    """
    return H.build_tiny_qwen2(tmp_path_factory.mktemp("tiny-model") / "model")


@pytest.fixture(scope="session")
def behave_logprobs(tiny_model) -> H.LogpSource:
    """input_ids -> the tiny model's own per-token log-probs (the inference engine's layout)."""
    return H.hf_token_logprobs(tiny_model)


@pytest.fixture(scope="session")
def actor_config(tiny_model) -> Callable:
    """``actor_config(**fields)``: AReaL's PPOActorConfig for the tiny model on CPU."""
    return functools.partial(H.actor_config, tiny_model)


@pytest.fixture(scope="session")
def make_actor(actor_config) -> Callable[..., contextlib.AbstractContextManager]:
    """``with make_actor(**fields) as actor``: AReaL's FSDPPPOActor built from
    ``actor_config(**fields)`` (gloo, world size 1), at version ``H.CURRENT_VERSION``, its forward
    passes counted in ``actor.n_forward``; destroyed when the block ends."""

    def build(**fields):
        return H.fsdp_actor(actor_config(**fields))

    return build


@pytest.fixture(scope="module")
def fsdp_actor(make_actor) -> Iterator:
    """One FSDPPPOActor per test module, shared by its tests (``ppo_step`` switches providers)."""
    with make_actor(prox_logp_method="recompute") as actor:
        yield actor


@pytest.fixture(scope="session")
def ppo_step(behave_logprobs) -> Callable[..., H.PPOStep]:
    """``ppo_step(actor, method=None, *, seed=0, keep_params=False, **a3po)``: one actor step
    of PPOTrainer.train on an FSDPPPOActor or its single controller (see ``H.ppo_step``)."""
    return functools.partial(H.ppo_step, behave_source=behave_logprobs)


@pytest.fixture(scope="session")
def make_batch() -> Callable:
    """``make_batch(n_seqs, current_version, lags, seed, ...)``: a padded rollout batch."""
    return H.make_batch


@pytest.fixture(scope="session")
def load_recipe() -> Callable:
    """``load_recipe(recipe, fileroot, *overrides)``: AReaL's load_expr_config -> GRPOConfig."""
    return H.load_recipe


@pytest.fixture(scope="session")
def recipes_dir() -> Path:
    return H.ROOT / "recipes"


@pytest.fixture(scope="session")
def fresh_python() -> H.FreshPython:
    """Runs code in a freshly spawned interpreter (``.run``, ``.result``, ``.PROBE``)."""
    return H.FreshPython()
