"""Attention recovery: eager weights, sdpa restored, frame bookkeeping, steered vs unsteered masses, plot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplex_steer.engine.conversation import ConversationPrompt
from duplex_steer.errors import DuplexSteerError
from duplex_steer.hooks import HookError, record
from duplex_steer.steering import PerceptionVector, Steering
from duplex_steer.steering.attention import (
    AttentionError,
    attention_mass,
    capture_attention,
    compare_attention,
    comparison_controller,
    conversation_codes,
    eager_attention,
    mass_on_frames,
    plot_attention_recovery,
)
from duplex_steer.steering.compare import oracle, steer_recording

STEER_LAYER = 1


@pytest.fixture(scope="module")
def vector(tiny):
    g = torch.Generator().manual_seed(0)
    return PerceptionVector({STEER_LAYER: torch.randn(64, generator=g)}, {"model": tiny.fingerprint(), "method": "test"})


def _codes(frames: int, batch: int = 1, seed: int = 2) -> torch.Tensor:
    codes = torch.randint(0, 64, (batch, 17, frames), generator=torch.Generator().manual_seed(seed))
    codes[:, 0] = codes[:, 0] % 100
    return codes


def _wav(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.05, int(24_000 * seconds)).astype(np.float32)


PROMPT = ConversationPrompt(voice=(_wav(0.3, 1), 24_000), silence_s=0.16)


@pytest.fixture(scope="module")
def steered(tiny, vector):
    """A strongly steered comparison that starts with a prompt (frame_offset > 0), with the streamed states."""
    with record(tiny) as states:
        cmp = steer_recording(tiny, (_wav(1.0, 0), 24_000), Steering(vector, [STEER_LAYER], alpha=50.0, span=3),
                              oracle(0.4), seed=0, prompt=PROMPT)
    assert cmp.result.frame_offset > 0 and cmp.onset_frames == [5]
    return cmp, states


def test_eager_weights_are_causal_probabilities(tiny):
    weights = capture_attention(tiny, _codes(10, batch=2), [0, 3], range(0, 10))
    for w in weights.values():
        assert w.shape == (2, tiny.spec.num_heads, 10, 10)
        assert torch.allclose(w.sum(-1), torch.ones(2, tiny.spec.num_heads, 10), atol=1e-5)
        future = torch.ones(10, 10, dtype=torch.bool).triu(1)
        assert torch.equal(w[..., future], torch.zeros_like(w[..., future])), "attention on future frames"
        assert (w[..., ~future] > 0).all()


def test_analysis_restores_sdpa_and_leaves_outputs_unchanged(tiny):
    codes = _codes(9)
    before = tiny.forward_codes(codes)
    attention_mass(tiny, codes, [0, 2], onset=4, k_first=2, query_window=4)
    after = tiny.forward_codes(codes)
    configs = [tiny.hf.config, *(layer.self_attn.config for layer in tiny.layers)]
    assert all(c._attn_implementation == "sdpa" for c in configs)
    assert all(not layer.self_attn._forward_pre_hooks and not layer.self_attn._forward_hooks for layer in tiny.layers)
    assert torch.equal(before.hidden, after.hidden) and torch.equal(before.text_logits, after.text_logits)
    torch.testing.assert_close(before.audio_logits, after.audio_logits, rtol=0, atol=0, equal_nan=True)
    with pytest.raises(RuntimeError, match="boom"), eager_attention(tiny):
        assert tiny.hf.config._attn_implementation == "eager"
        raise RuntimeError("boom")
    assert all(c._attn_implementation == "sdpa" for c in configs)
    assert all(not layer.self_attn._forward_pre_hooks for layer in tiny.layers)


def test_eager_replay_computes_the_same_states_as_sdpa(tiny):
    """The engine's mask is boolean; eager attention would add it as 0/1. The analysis converts it."""
    codes = _codes(12)
    with record(tiny) as sdpa:
        tiny.forward_codes(codes)
    with record(tiny) as eager:
        capture_attention(tiny, codes, [1], range(0, 12))
    for layer in range(tiny.num_layers):
        assert (sdpa.stacked(layer) - eager.stacked(layer)).abs().max() <= 1e-5, f"layer {layer}"


def test_mass_is_the_sum_over_the_onset_keys():
    # uniform causal attention: query q spreads 1 / (q + 1) over keys 0..q
    T, onset, k = 12, 5, 3
    w = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    queries = range(onset, T)
    got = mass_on_frames(w[onset:], range(onset, onset + k))
    want = torch.tensor([min(q - onset + 1, k) / (q + 1) for q in queries])
    assert torch.allclose(got, want)


def test_attention_mass_equals_a_hand_sum_over_the_weights(tiny):
    codes = _codes(14, batch=2)
    onset, k, window = 6, 3, 5
    full = capture_attention(tiny, codes, [2], range(0, 14))[2]  # [B, H, 14, 14]
    m = attention_mass(tiny, codes, [2], onset=onset, k_first=k, query_window=window)
    assert m.query_frames == range(6, 11) and m.key_frames == range(6, 9)
    hand = torch.zeros(2, tiny.spec.num_heads, window)
    for b in range(2):
        for h in range(tiny.spec.num_heads):
            for i, q in enumerate(range(onset, onset + window)):
                hand[b, h, i] = sum(float(full[b, h, q, key]) for key in range(onset, onset + k))
    assert torch.allclose(m.per_head[2], hand, atol=1e-6)
    assert torch.allclose(m.mass[2], hand.mean(1), atol=1e-6)
    assert torch.allclose(m.window_mean(2), hand.mean((1, 2)), atol=1e-6)
    clipped = attention_mass(tiny, codes, 2, onset=11, k_first=k, query_window=window)
    assert clipped.query_frames == range(11, 14)  # clipped to the replay


def test_replay_reproduces_the_streamed_steered_states(tiny, steered):
    """Bookkeeping: codes column i = absolute frame i + 1, position p = step p, steering at absolute frames."""
    cmp, stream = steered
    codes = conversation_codes(tiny, cmp.result, PROMPT)
    n = cmp.result.frame_offset + cmp.result.user_codes.shape[-1]
    assert codes.shape == (2, 17, n)
    with record(tiny) as replay:
        capture_attention(tiny, codes, [0], range(0, n), comparison_controller(cmp))
    for layer in range(tiny.num_layers):
        assert stream.frames[layer] == list(range(n)) and replay.frames[layer] == list(range(n))
        diff = (stream.stacked(layer) - replay.stacked(layer)).abs().max()
        assert diff <= 1e-4, f"layer {layer}: replay differs from the stream by {diff}"
    with pytest.raises(AttentionError, match="prompt"):
        conversation_codes(tiny, cmp.result)
    with pytest.raises(AttentionError, match="not the prompt"):
        conversation_codes(tiny, cmp.result, ConversationPrompt(voice=(_wav(0.3, 1), 24_000), silence_s=0.5))


def test_alpha_zero_gives_identical_masses(tiny, vector):
    cmp = steer_recording(tiny, (_wav(0.8, 3), 24_000), Steering(vector, [STEER_LAYER], alpha=0.0, span=3),
                          oracle(0.4), seed=0)
    out = compare_attention(tiny, cmp, [0, 1, 2, 3], k_first=3, query_window=4)
    assert out.frame_offset == 0 and out.onset == 5 and out.query_frames == [5, 6, 7, 8]
    for layer in out.layers:
        assert torch.equal(out.unsteered[layer], out.steered[layer])
        assert torch.equal(out.difference[layer], torch.zeros(4))


def test_large_alpha_changes_attention_only_from_the_onset(tiny, steered, tmp_path):
    cmp, _ = steered
    onset = cmp.result.frame_offset + cmp.onset_frames[0]  # absolute
    codes = conversation_codes(tiny, cmp.result, PROMPT)
    weights = capture_attention(tiny, codes, [0, 1, 2, 3], range(0, codes.shape[-1]), comparison_controller(cmp))
    for layer, w in weights.items():
        assert torch.equal(w[0, :, :onset], w[1, :, :onset]), f"layer {layer}: rows before the onset changed"
        if layer > STEER_LAYER:  # the vector enters after layer 1: later layers see it at the onset row itself
            assert not torch.allclose(w[0, :, onset], w[1, :, onset])
    out = compare_attention(tiny, cmp, [0, 1, 2, 3], k_first=3, query_window=6, prompt=PROMPT)
    assert out.onset == 5 and out.steered_frames == [5, 6, 7] and out.query_frames == list(range(5, 11))
    assert torch.equal(out.unsteered[STEER_LAYER][0], out.steered[STEER_LAYER][0])  # row `onset` precedes the vector
    assert any(out.difference[layer].abs().max() > 1e-3 for layer in out.layers)
    summary = out.summary()
    assert set(summary) == {0, 1, 2, 3} and out.to_json()["frame_offset"] == cmp.result.frame_offset

    png = plot_attention_recovery(out, tmp_path / "attention.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_bad_requests_raise_clear_errors(tiny):
    codes = _codes(8)
    with pytest.raises(HookError, match="out of range"):
        attention_mass(tiny, codes, [tiny.num_layers], onset=2)
    with pytest.raises(DuplexSteerError, match="out of range"):
        capture_attention(tiny, codes, [-tiny.num_layers - 1], range(0, 8))
    with pytest.raises(AttentionError, match="onset"):
        attention_mass(tiny, codes, [0], onset=8)
    with pytest.raises(AttentionError, match="at least 1"):
        attention_mass(tiny, codes, [0], onset=2, k_first=0)
    assert tiny.hf.config._attn_implementation == "sdpa"
