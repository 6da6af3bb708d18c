"""Hooks: recording, additive interventions gated on absolute frames and batch items, cleanup."""

from __future__ import annotations

import pytest
import torch

from duplex_steer.hooks import DiskSink, HookError, MeanSink, intervene, patch_add, record


def _codes(frames: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (batch, 8, frames), generator=torch.Generator().manual_seed(seed))


def test_record_streaming_and_teacher_forced_agree_on_frame_indices(tiny):
    user = _codes(10)
    with record(tiny, [1, 3], frames=lambda t: t >= 4) as rec:
        tiny.session(batch_size=2, greedy=True).run(user)
    assert rec.frames[1] == list(range(4, 10))
    assert rec.stacked(3).shape == (2, 6, 64)


def test_bad_layer_is_a_clear_error(tiny):
    with pytest.raises(HookError, match="out of range"), record(tiny, [4]):
        pass
    with pytest.raises(HookError, match="needs"):
        patch_add(tiny, 0, torch.zeros(3), lambda frames: None)


def test_hooks_are_removed_even_after_an_exception(tiny):
    with pytest.raises(RuntimeError), intervene(tiny, 2, torch.ones(64), lambda f: torch.ones(2, len(f))):
        raise RuntimeError("boom")
    assert all(not layer._forward_hooks for layer in tiny.layers)


def test_inactive_intervention_is_bit_identical(tiny):
    user = _codes(8)
    base = tiny.session(batch_size=2, seed=3).run(user)
    with intervene(tiny, 2, torch.randn(64), lambda frames: None):
        same = tiny.session(batch_size=2, seed=3).run(user)
    assert torch.equal(base.text, same.text) and torch.equal(base.audio, same.audio)


def test_addition_is_exact_and_gated_per_frame_and_item(tiny):
    """Residual at the patched layer changes by exactly coef[b, t] * v, only where coef != 0."""
    user = _codes(9)
    v = torch.randn(64)
    coef_of = {(0, 3): 2.0, (1, 5): -1.5}

    def coefficients(frames):
        c = torch.tensor([[coef_of.get((b, t), 0.0) for t in frames] for b in range(2)])
        return c if c.any() else None

    layer = 1
    with record(tiny, [layer]) as base:
        tiny.session(batch_size=2, greedy=True).run(user)
    # capture the patched layer's output after the intervention (hooks run in registration order)
    with intervene(tiny, layer, v, coefficients), record(tiny, [layer]) as steered:
        tiny.session(batch_size=2, greedy=True).run(user)
    a, b = base.stacked(layer), steered.stacked(layer)
    for bi in range(2):
        first = min(t for (bb, t) in coef_of if bb == bi)
        assert torch.equal(a[bi, :first], b[bi, :first])  # untouched before the item's own window
        t = first
        assert torch.allclose(b[bi, t] - a[bi, t], coef_of[(bi, t)] * v, atol=1e-5)


def test_mean_and_disk_sinks(tiny, tmp_path):
    user = _codes(6)
    with record(tiny, [0]) as keep:
        tiny.session(batch_size=2, greedy=True).run(user)
    with record(tiny, [0], sink=MeanSink()) as mean:
        tiny.session(batch_size=2, greedy=True).run(user)
    assert torch.allclose(mean.mean(0), keep.stacked(0).reshape(-1, 64).mean(0), atol=1e-5)
    sink = DiskSink(tmp_path / "states", chunk_frames=4)
    with record(tiny, [0], sink=sink):
        tiny.session(batch_size=2, greedy=True).run(user)
    frames, states = sink.load(0)
    assert frames.tolist() == list(range(6))
    assert torch.allclose(states.float(), keep.stacked(0), atol=1e-2)
