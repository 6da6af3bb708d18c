"""DuplexSession: step semantics, batching, seeding, forcing, the context window, bad input."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from duplex_steer.engine.model import DuplexModel
from duplex_steer.engine.session import SessionInputError


def _codes(seed: int, batch: int, frames: int, card: int = 64) -> torch.Tensor:
    return torch.randint(0, card, (batch, 8, frames), generator=torch.Generator().manual_seed(seed))


def test_first_step_returns_nothing_then_frames(tiny):
    session = tiny.session(batch_size=3, greedy=True)
    codes = _codes(0, 3, 3)
    assert session.step(codes[:, :, 0]) is None
    out = session.step(codes[:, :, 1])
    assert out.text.shape == (3,) and out.audio.shape == (3, 8)
    assert session.frame == 2
    assert ((out.audio >= 0) & (out.audio < 64)).all()


def test_batch_items_are_independent(tiny):
    codes = _codes(1, 3, 12)
    together = tiny.session(batch_size=3, greedy=True).run(codes)
    for b in range(3):
        alone = tiny.session(batch_size=1, greedy=True).run(codes[b : b + 1])
        assert torch.equal(alone.text[0], together.text[b])
        assert torch.equal(alone.audio[0], together.audio[b])


def test_sampling_is_reproducible_with_a_seed(tiny):
    codes = _codes(2, 2, 15)
    a = tiny.session(batch_size=2, seed=7).run(codes)
    b = tiny.session(batch_size=2, seed=7).run(codes)
    c = tiny.session(batch_size=2, seed=8).run(codes)
    assert torch.equal(a.text, b.text) and torch.equal(a.audio, b.audio)
    assert not torch.equal(a.audio, c.audio)


def test_forced_tokens_come_back_as_the_models_frames(tiny):
    session = tiny.session(batch_size=2, seed=0)
    codes = _codes(3, 2, 8)
    text = torch.tensor([[5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]])
    audio = torch.arange(6 * 2 * 8).view(6, 2, 8) % 64
    outs = [session.step(codes[:, :, t], text=text[t], audio=audio[t]) for t in range(6)]
    outs.append(session.step(codes[:, :, 6]))
    for t in range(1, 7):  # step t returns frame t, forced at step t - 1
        assert torch.equal(outs[t].text, text[t - 1])
        assert torch.equal(outs[t].audio[:, 0], audio[t - 1][:, 0])
        if t >= 2:  # codebooks 1-7 (delay 1) of frame 1 are initial tokens, not forceable
            assert torch.equal(outs[t].audio[:, 1:], audio[t - 1][:, 1:])


def test_negative_forced_entries_are_not_forced(tiny):
    codes = _codes(4, 2, 4)
    free = tiny.session(batch_size=2, greedy=True)
    forced = tiny.session(batch_size=2, greedy=True)
    free_out = [free.step(codes[:, :, t]) for t in range(3)]
    forced_out = [forced.step(codes[:, :, t], text=torch.tensor([-1, 9])) for t in range(3)]
    assert torch.equal(forced_out[1].text, torch.tensor([free_out[1].text[0], 9]))


def test_past_the_context_window_attention_covers_the_last_context_frames(tiny):
    """Stepping past `context` frames equals a teacher-forced pass with the sliding-window mask."""
    spec = dataclasses.replace(tiny.spec, context=5)
    small = DuplexModel(tiny.hf, spec, tiny.codec, tiny.tokenizer, source="tiny-context5", is_random=True)
    user = _codes(5, 1, 14)
    store: list[torch.Tensor] = []
    handle = small.layers[-1].register_forward_hook(lambda m, a, out: store.append(out.clone()))
    try:
        rec = small.session(batch_size=1, greedy=True).run(user)
        n = len(store)
        codes = torch.cat([rec.text[:, None, 1:], rec.audio[:, :, 1:], user[:, :, 1:]], 1)
        small.forward_codes(codes)
    finally:
        handle.remove()
    stream = torch.cat(store[:n], 1)[:, :13]
    assert (stream - store[n]).abs().max() < 1e-4
    # and the window matters: with an unlimited window the late frames differ
    wide = small.forward_codes(codes).hidden
    full = DuplexModel(tiny.hf, dataclasses.replace(tiny.spec, context=256), tiny.codec, tiny.tokenizer,
                       source="tiny", is_random=True).forward_codes(codes).hidden
    assert (wide[:, 8:] - full[:, 8:]).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (torch.zeros(2, 7, dtype=torch.long), "shape [2, 8]"),
        (torch.zeros(2, 8), "integer codes"),
        (torch.full((2, 8), 64), "audio codes in [0, 64)"),
        (torch.full((2, 8), -3), "audio codes in [0, 64)"),
    ],
)
def test_bad_user_codes_get_a_clear_error(tiny, codes, message):
    with pytest.raises(SessionInputError, match=re.escape(message)):
        tiny.session(batch_size=2).step(codes)


def test_minus_one_means_no_input(tiny):
    session = tiny.session(batch_size=1, greedy=True)
    for _ in range(3):
        session.step(torch.full((1, 8), -1))
    assert torch.isfinite(session.last_hidden).all()


def test_noise_groups_share_sampling_noise(tiny):
    codes = _codes(6, 1, 10).expand(3, -1, -1)
    rec = tiny.session(batch_size=3, seed=4, noise_groups=[0, 0, 1]).run(codes)
    assert torch.equal(rec.text[0], rec.text[1]) and torch.equal(rec.audio[0], rec.audio[1])
    assert not torch.equal(rec.audio[0], rec.audio[2])


def test_keyed_noise_makes_a_rows_samples_independent_of_its_batch(tiny):
    codes = _codes(8, 3, 14)
    together = tiny.session(batch_size=3, noise_keys=[11, 22, 33]).run(codes)
    reordered = tiny.session(batch_size=2, noise_keys=[33, 22]).run(codes[[2, 1]])
    alone = tiny.session(batch_size=1, noise_keys=[22]).run(codes[1:2])
    for other, row in ((reordered, 1), (alone, 0)):
        assert torch.equal(other.text[row], together.text[1]) and torch.equal(other.audio[row], together.audio[1])
    assert torch.equal(reordered.audio[0], together.audio[2])
    shared = tiny.session(batch_size=2, noise_keys=[5, 5]).run(codes[[0, 0]])
    assert torch.equal(shared.audio[0], shared.audio[1])
    assert not torch.equal(shared.audio[0], tiny.session(batch_size=1, noise_keys=[6]).run(codes[:1]).audio[0])


def test_keyed_noise_needs_one_key_per_row_and_no_groups(tiny):
    with pytest.raises(SessionInputError, match="noise_keys has 1 entries for batch size 2"):
        tiny.session(batch_size=2, noise_keys=[1])
    with pytest.raises(SessionInputError, match="not both"):
        tiny.session(batch_size=2, noise_keys=[1, 2], noise_groups=[0, 1])


# Reading a device value on the host (item, int, bool, tolist, cpu, ...) forces a GPU to drain its queue.
# There is no GPU here, so the test makes every such read raise while the session steps; the user codes'
# range check reads the caller's host tensor with numpy, which is host memory and stays allowed.
DEVICE_READS = ("item", "tolist", "cpu", "__int__", "__index__", "__float__", "__bool__")


@pytest.mark.parametrize("kind", ["greedy", "seeded", "groups", "keyed"])
def test_a_step_reads_no_device_value_on_the_host(tiny, kind, monkeypatch):
    from duplex_steer.steering import PerceptionVector, Steering, apply

    options = {"greedy": {"greedy": True}, "seeded": {"seed": 3}, "groups": {"seed": 3, "noise_groups": [0, 0]},
               "keyed": {"noise_keys": [7, 8]}}[kind]
    vector = PerceptionVector({1: torch.ones(64)}, {"model": tiny.fingerprint(), "method": "test"})
    codes = _codes(9, 2, 8)
    with apply(tiny, Steering(vector, [1], alpha=2.0, span=3), onsets=[[2], [4]]) as ctl:
        session = tiny.session(batch_size=2, **options)
        calls: list[str] = []
        for name in DEVICE_READS:
            def read(self, *args, name=name, **kwargs):
                calls.append(name)
                raise AssertionError(f"Tensor.{name} called during DuplexSession.step (a host sync on a GPU)")
            monkeypatch.setattr(torch.Tensor, name, read)
        for t in range(7):
            if t == 5:
                ctl.trigger(1, 6)  # a live onset, as a detector would add it
            session.step(codes[:, :, t], text=torch.tensor([-1, 5]) if t == 3 else None)
        monkeypatch.undo()
    assert calls == []
    assert session.frame == 7
