"""The fast step (engine.fast_step): the same tokens as the eager step, built-in steering, captures, no hooks."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from duplex_steer.engine.fast_step import FastStep, FastStepError
from duplex_steer.engine.model import DuplexModel
from duplex_steer.engine.session import sample_token
from duplex_steer.hooks import record
from duplex_steer.steering import PerceptionVector, Steering, apply
from duplex_steer.steering.steer import SteeringController, attach

OPTIONS = [{"greedy": True}, {"seed": 3}, {"seed": 3, "noise_groups": [0, 0]}, {"noise_keys": [4, 5]}]
ONSETS = [[3], [9]]


def _codes(seed: int, batch: int, frames: int) -> torch.Tensor:
    return torch.randint(0, 64, (batch, 8, frames), generator=torch.Generator().manual_seed(seed))


def _steering(model) -> Steering:
    vector = PerceptionVector({1: torch.randn(64, generator=torch.Generator().manual_seed(5))},
                              {"model": model.fingerprint(), "method": "test"})
    return Steering(vector, [1], alpha=6.0, span=3)


def _eager(model, user, steering: Steering | None, **options):
    if steering is None:
        return model.session(batch_size=user.shape[0], **options).run(user)
    with apply(model, steering, onsets=ONSETS):
        return model.session(batch_size=user.shape[0], **options).run(user)


def _fast(model, user, steering: Steering | None, compile: bool, **options):
    session = model.session(batch_size=user.shape[0], fast=True, **options)
    if not compile:  # the same static step, run without torch.compile (fast to test)
        session.fast_step = FastStep(model, user.shape[0], model.spec.context, sample_token, session.sampling,
                                     compile=False)
    if steering is not None:
        attach(session, SteeringController(steering, user.shape[0], [list(o) for o in ONSETS]))
    return session.run(user)


@pytest.mark.parametrize("context", [256, 5])  # 5: the 16-frame conversation wraps the ring
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("steered", [False, True])
def test_the_static_step_gives_the_eager_tokens(tiny, context, options, steered):
    model = DuplexModel(tiny.hf, dataclasses.replace(tiny.spec, context=context), tiny.codec, tiny.tokenizer,
                        source="tiny", is_random=True)
    steering = _steering(model) if steered else None
    user = _codes(context, 2, 16)
    want, got = _eager(model, user, steering, **options), _fast(model, user, steering, False, **options)
    assert torch.equal(got.text, want.text) and torch.equal(got.audio, want.audio)
    if steered:
        assert not torch.equal(got.audio, _fast(model, user, None, False, **options).audio)


def test_forcing_and_input_embeddings_match_the_eager_step(tiny):
    user, emb = _codes(1, 2, 6), torch.randn(64, generator=torch.Generator().manual_seed(1))
    eager, fast = tiny.session(batch_size=2, seed=2), tiny.session(batch_size=2, seed=2, fast=True)
    fast.fast_step = FastStep(tiny, 2, tiny.spec.context, sample_token, fast.sampling, compile=False)
    for t in range(6):
        kwargs = {"text": torch.tensor([-1, 7]), "audio": torch.tensor([[3] * 8, [-1] * 8])} if t < 3 else {}
        if t == 1:
            kwargs["input_embedding"] = emb
        a, b = eager.step(user[:, :, t], **kwargs), fast.step(user[:, :, t], **kwargs)
        assert (a is None and b is None) or (torch.equal(a.text, b.text) and torch.equal(a.audio, b.audio))
        # the whole ring under a mask, not a slice: equal up to float summation order
        assert torch.allclose(eager.last_hidden, fast.last_hidden, atol=1e-5)


def test_hooks_are_refused_rather_than_skipped(tiny):
    session = tiny.session(batch_size=1, fast=True)
    with record(tiny, [1]), pytest.raises(FastStepError, match="forward hooks"):
        session.step(torch.zeros(1, 8, dtype=torch.long))
    with pytest.raises(FastStepError, match="eager"):
        tiny.session(batch_size=1).add_steering(SteeringController(_steering(tiny), 1))


def test_captured_layers_are_the_recorded_residual_streams(tiny):
    user = _codes(3, 2, 8)
    with record(tiny, [1, 3]) as rec:
        tiny.session(batch_size=2, greedy=True).run(user)
    session = tiny.session(batch_size=2, greedy=True, fast=True)
    session.fast_step = FastStep(tiny, 2, tiny.spec.context, sample_token, session.sampling, compile=False)
    session.capture_layers([1, -1])
    states = {1: [], 3: []}
    for t in range(8):
        session.step(user[:, :, t])
        for layer in states:
            states[layer].append(session.layer_states[layer])
    for layer in states:
        assert torch.allclose(torch.stack(states[layer], 1), rec.stacked(layer), atol=1e-5)


@pytest.mark.slow
def test_the_compiled_step_gives_the_eager_tokens(tiny):
    """torch.compile (inductor, C++) of the whole step: minutes to compile on a small CPU, hence slow."""
    steering = _steering(tiny)
    user = _codes(7, 2, 12)
    for options, steer in (({"greedy": True}, None), ({"seed": 3}, steering), ({"noise_keys": [4, 5]}, steering)):
        want, got = _eager(tiny, user, steer, **options), _fast(tiny, user, steer, True, **options)
        assert torch.equal(got.text, want.text) and torch.equal(got.audio, want.audio)


def test_the_static_step_reads_no_device_value_on_the_host(tiny, monkeypatch):
    session = tiny.session(batch_size=2, seed=3, fast=True)
    session.fast_step = FastStep(tiny, 2, tiny.spec.context, sample_token, session.sampling, compile=False)
    controller = SteeringController(_steering(tiny), 2, [[2], []])
    attach(session, controller)
    user = _codes(4, 2, 6)
    for name in ("item", "tolist", "cpu", "__int__", "__index__", "__float__", "__bool__"):
        def read(self, *args, name=name, **kwargs):
            raise AssertionError(f"Tensor.{name} called during a fast step (a host sync on a GPU)")
        monkeypatch.setattr(torch.Tensor, name, read)
    for t in range(6):
        if t == 3:
            controller.trigger(1, 4)
        session.step(user[:, :, t])
    monkeypatch.undo()
    assert session.frame == 6
