"""Steering: exactness (alpha 0, window edges, residual delta), per-item onsets, schedules, comparison."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplex_steer.hooks import record
from duplex_steer.steering import PerceptionVector, Steering, apply
from duplex_steer.steering.compare import oracle, steer_recording
from duplex_steer.steering.steer import SteeringError, linear_decay


@pytest.fixture(scope="module")
def vector(tiny):
    g = torch.Generator().manual_seed(0)
    return PerceptionVector({1: torch.randn(64, generator=g), 2: torch.randn(64, generator=g)},
                            {"model": tiny.fingerprint(), "method": "test"})


def _codes(frames: int, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 64, (batch, 8, frames), generator=torch.Generator().manual_seed(seed))


def test_alpha_zero_is_bit_identical(tiny, vector):
    user = _codes(12)
    base = tiny.session(batch_size=2, seed=1).run(user)
    with apply(tiny, Steering(vector, [2], alpha=0.0, span=3), onsets=[[4], [6]]):
        same = tiny.session(batch_size=2, seed=1).run(user)
    assert torch.equal(base.text, same.text) and torch.equal(base.audio, same.audio)


def test_residual_changes_by_exactly_alpha_w_mu_inside_the_window_only(tiny, vector):
    user = _codes(12)
    layer, alpha, span, onsets = 2, 3.0, 3, [[4], [7]]
    with record(tiny, [layer]) as base:
        tiny.session(batch_size=2, greedy=True).run(user)
    with apply(tiny, Steering(vector, [layer], alpha=alpha, span=span), onsets=onsets), \
            record(tiny, [layer]) as steered:
        tiny.session(batch_size=2, greedy=True).run(user)
    a, b = base.stacked(layer), steered.stacked(layer)
    for item, (onset,) in enumerate(onsets):
        assert torch.equal(a[item, :onset], b[item, :onset]), "frames before the onset must be untouched"
        for k in range(span):
            want = alpha * linear_decay(k, span) * vector[layer]
            if k == 0:  # the first steered frame sees identical inputs: the difference is exactly the addition
                assert torch.allclose(b[item, onset] - a[item, onset], want, atol=1e-5)
    # items are steered independently: item 1's frames 4-6 are untouched by item 0's window
    assert torch.equal(a[1, :7], b[1, :7])


def test_window_edges_in_a_teacher_forced_pass(tiny, vector):
    """The same controller gates a whole-sequence pass by absolute frame: only [onset, onset+span) change."""
    codes = torch.randint(0, 64, (1, 17, 10), generator=torch.Generator().manual_seed(2))
    codes[:, 0] = codes[:, 0] % 100
    with record(tiny, [1]) as base:
        tiny.forward_codes(codes)
    with apply(tiny, Steering(vector, [1], alpha=2.0, span=2), onsets=[[5]]), record(tiny, [1]) as steered:
        tiny.forward_codes(codes)
    delta = (steered.stacked(1) - base.stacked(1))[0]
    changed = [t for t in range(10) if delta[t].abs().max() > 0]
    assert changed == [5, 6]
    assert torch.allclose(delta[5], 2.0 * vector[1], atol=1e-5)
    assert torch.allclose(delta[6], 1.0 * vector[1], atol=1e-5)


def test_settings_errors(vector):
    with pytest.raises(SteeringError, match="span"):
        Steering(vector, [1], span=0)
    with pytest.raises(SteeringError, match="schedule"):
        Steering(vector, [1], schedule="cosine")
    with pytest.raises(Exception, match="not 3"):
        Steering(vector, [3])


def test_steer_recording_steers_only_the_second_copy(tiny, vector):
    wav = np.random.default_rng(0).normal(0, 0.05, 24_000).astype(np.float32)
    cmp = steer_recording(tiny, (wav, 24_000), Steering(vector, [1], alpha=50.0, span=3), oracle(0.4), seed=0)
    assert cmp.onset_frames == [5]
    assert cmp.steered_frames == [5, 6, 7]
    r = cmp.result
    assert torch.equal(r.text_tokens[0, :6], r.text_tokens[1, :6])  # identical until the first steered step
    assert not torch.equal(r.text_tokens[0], r.text_tokens[1])
    out = cmp.to_json(tiny.label)
    assert out["onset_frames"] == [5] and len(out["steered"]["pieces"]) == r.text_tokens.shape[1]


def _host_coefficients(ctl, frames: range):
    """The host-side rule the device tables must reproduce: a float32 [B, T] sum of alpha * w(t - onset)."""
    coef = None
    for b in range(ctl.batch_size):
        for onset in ctl.onsets[b] if ctl.enabled[b] else []:
            if onset >= frames.stop or onset + ctl.steering.span <= frames.start:
                continue
            coef = torch.zeros(ctl.batch_size, len(frames)) if coef is None else coef
            for j, t in enumerate(frames):
                coef[b, j] += ctl.steering.weight(t - onset)
    return coef


@pytest.mark.parametrize("schedule", ["linear", "constant", "exponential"])
def test_device_coefficients_equal_the_host_rule_exactly(vector, schedule):
    from duplex_steer.steering.steer import SteeringController

    ctl = SteeringController(Steering(vector, [1], alpha=5.5, span=4, schedule=schedule), 3,
                             [[2, 4], [], [0, 9]], enabled=[True, True, False])
    calls = [range(t, t + 1) for t in range(14)] + [range(0, 14), range(3, 7), range(12, 20)]
    for step, frames in enumerate(calls):
        if step == 5:
            ctl.trigger(1, 6)  # live onsets reach the device table
        if step == 8:
            ctl.enabled[2] = True
        want, got = _host_coefficients(ctl, frames), ctl.coefficients(frames)
        assert (want is None) == (got is None), frames
        if want is not None:
            assert got.dtype == torch.float32 and torch.equal(got, want), frames


def test_streamed_coefficients_across_blocks_equal_the_host_rule(vector):
    """A streamed frame reads a precomputed block of coefficients: frames on both sides of a block edge,
    onsets whose windows straddle it, and an onset triggered inside a block all keep the host rule."""
    from duplex_steer.steering.steer import COEFFICIENT_BLOCK, SteeringController

    edge = COEFFICIENT_BLOCK
    ctl = SteeringController(Steering(vector, [1], alpha=2.0, span=5), 2, [[edge - 2, edge - 1], [3]])
    for t in [*range(0, 8), *range(edge - 4, edge + 8), 2 * edge + 1, edge - 3]:
        if t == edge + 2:
            ctl.trigger(1, edge + 3)
        want, got = _host_coefficients(ctl, range(t, t + 1)), ctl.coefficients(range(t, t + 1))
        assert (want is None) == (got is None), t
        if want is not None:
            assert torch.equal(got, want), t


def test_steered_tokens_equal_those_of_host_coefficients(tiny, vector):
    from duplex_steer.hooks import intervene
    from duplex_steer.steering.steer import SteeringController

    user = _codes(16, batch=3)
    steering = Steering(vector, [2], alpha=8.0, span=3)
    onsets = [[3, 5], [8], []]
    for options in ({"greedy": True}, {"seed": 5}):
        host = SteeringController(steering, 3, [list(o) for o in onsets])
        with intervene(tiny, 2, vector[2], lambda frames, host=host: _host_coefficients(host, frames)):
            want = tiny.session(batch_size=3, **options).run(user)
        with apply(tiny, steering, onsets=onsets):
            got = tiny.session(batch_size=3, **options).run(user)
        assert torch.equal(got.text, want.text) and torch.equal(got.audio, want.audio)
        unsteered = tiny.session(batch_size=3, **options).run(user)
        assert not torch.equal(got.audio[:2], unsteered.audio[:2])  # the steering does something


def test_steer_at_onsets_adds_the_vector_from_each_recording_onset_on_absolute_frames(tiny, vector):
    """After a prompt (session frames = prompt frames + recording frames) the addition starts exactly at
    each item's onset recording frame; an item with a negative onset is never steered."""
    from duplex_steer.engine.conversation import ConversationPrompt, converse
    from duplex_steer.steering.steer import steer_at_onsets

    rng = np.random.default_rng(3)
    wavs = [rng.normal(0, 0.05, 24_000).astype(np.float32) for _ in range(3)]
    prompt = ConversationPrompt(voice=(rng.normal(0, 0.05, 7_200).astype(np.float32), 24_000), silence_s=0.16,
                                normalize_voice=False)
    layer, alpha, span, onsets = 1, 4.0, 3, [5, 8, -1]
    with record(tiny, [layer]) as base:
        plain = converse(tiny, wavs, greedy=True, prompt=prompt, decode_audio=False)
    with steer_at_onsets(tiny, Steering(vector, [layer], alpha=alpha, span=span), onsets) as before_frame, \
            record(tiny, [layer]) as steered:
        converse(tiny, wavs, greedy=True, prompt=prompt, decode_audio=False, before_frame=before_frame)
    offset = plain.frame_offset
    assert offset > 0 and steered.frames[layer] == base.frames[layer]  # absolute frames, prompt included
    frames = base.frames[layer]
    delta = steered.stacked(layer) - base.stacked(layer)  # [B, frames, dim]
    for item, onset in enumerate(onsets[:2]):
        first = frames.index(offset + onset)
        assert delta[item, :first].abs().max() == 0, "frames before the onset must be untouched"
        assert torch.allclose(delta[item, first], alpha * vector[layer], atol=1e-5)
    assert delta[2].abs().max() == 0


def test_row_controllers_give_each_distinct_steering_its_own_rows(tiny, vector):
    """Rows sharing a Steering share its controller; a row with a Steering of its own (the random control's
    per-item direction) gets the addition of its own direction, exactly, and unsteered rows none."""
    from duplex_steer.steering import row_controllers

    user = _codes(10, batch=4)
    layer, onset = 2, 4
    shared = Steering(vector, [layer], alpha=1.0, span=2)
    own = Steering(vector.random_like(3), [layer], alpha=1.0, span=2)
    with record(tiny, [layer]) as base:
        tiny.session(batch_size=4, greedy=True).run(user)
    controllers, handle = row_controllers(tiny, [shared, None, own, shared])
    assert controllers[0] is controllers[3] and controllers[1] is None and controllers[2] is not controllers[0]
    assert controllers[0].enabled == [True, False, False, True] and controllers[2].enabled == [False, False, True, False]
    for b in (0, 2, 3):
        controllers[b].onsets[b].append(onset)
    with record(tiny, [layer]) as steered:
        tiny.session(batch_size=4, greedy=True).run(user)
    handle.remove()
    delta = steered.stacked(layer)[:, onset] - base.stacked(layer)[:, onset]
    assert torch.allclose(delta[0], vector[layer], atol=1e-5) and torch.allclose(delta[3], vector[layer], atol=1e-5)
    assert torch.allclose(delta[2], own.vector[layer], atol=1e-5)
    assert torch.equal(steered.stacked(layer)[1], base.stacked(layer)[1])  # the unsteered row: untouched
    with record(tiny, [layer]) as after:  # the handle removed every hook
        tiny.session(batch_size=4, greedy=True).run(user)
    assert torch.equal(after.stacked(layer), base.stacked(layer))
