"""FrameKVCache: one allocation per conversation, and the same tokens as a plain, obviously-correct window."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from duplex_steer.engine.kv_cache import FrameKVCache
from duplex_steer.engine.model import DuplexModel
from duplex_steer.steering import PerceptionVector, Steering, apply


class ConcatWindowCache:
    """The rule written plainly: keep every frame's keys and values, attend to the last `context` in order."""

    def __init__(self, num_layers: int, context: int):
        self.context, self.position = context, 0
        self.keys: list[list[torch.Tensor]] = [[] for _ in range(num_layers)]
        self.values: list[list[torch.Tensor]] = [[] for _ in range(num_layers)]

    allocated = False

    def reserve(self, max_frames: int) -> None:
        pass

    def update(self, key, value, layer_idx, *args, **kwargs):
        self.keys[layer_idx].append(key)
        self.values[layer_idx].append(value)
        return (torch.cat(self.keys[layer_idx][-self.context :], 2),
                torch.cat(self.values[layer_idx][-self.context :], 2))


def _codes(seed: int, batch: int, frames: int) -> torch.Tensor:
    return torch.randint(0, 64, (batch, 8, frames), generator=torch.Generator().manual_seed(seed))


def _with_context(model: DuplexModel, context: int) -> DuplexModel:
    return DuplexModel(model.hf, dataclasses.replace(model.spec, context=context), model.codec, model.tokenizer,
                       source=f"tiny-context{context}", is_random=True)


def _play(model, user, plain: bool, steering: Steering | None = None, **options):
    session = model.session(batch_size=user.shape[0], **options)
    if plain:
        session.cache = ConcatWindowCache(model.num_layers, model.spec.context)
    if steering is None:
        return session.run(user), session
    with apply(model, steering, onsets=[[3], [9]]):
        return session.run(user), session


@pytest.mark.parametrize("context", [256, 5])  # 5: the 14-frame conversation wraps the ring twice
@pytest.mark.parametrize("options", [{"greedy": True}, {"seed": 3}, {"noise_keys": [1, 2]}])
@pytest.mark.parametrize("steered", [False, True])
def test_the_ring_gives_the_tokens_of_a_plain_window(tiny, context, options, steered):
    model = _with_context(tiny, context)
    steering = None
    if steered:
        vector = PerceptionVector({1: torch.randn(64, generator=torch.Generator().manual_seed(5))},
                                  {"model": model.fingerprint(), "method": "test"})
        steering = Steering(vector, [1], alpha=4.0, span=3)
    user = _codes(context, 2, 14)
    ring, _ = _play(model, user, False, steering, **options)
    plain, _ = _play(model, user, True, steering, **options)
    assert torch.equal(ring.text, plain.text) and torch.equal(ring.audio, plain.audio)


def test_the_window_is_allocated_once_and_never_copied(tiny):
    model = _with_context(tiny, 6)
    session = model.session(batch_size=2, greedy=True)
    user = _codes(1, 2, 15)
    session.step(user[:, :, 0])
    first = [b.data_ptr() for b in session.cache.keys + session.cache.values]
    assert all(k.shape[2] == 6 for k in session.cache.keys)
    for t in range(1, 15):
        session.step(user[:, :, t])
    assert [b.data_ptr() for b in session.cache.keys + session.cache.values] == first


def test_max_frames_sizes_the_window_and_a_short_hint_doubles_it(tiny):
    user = _codes(2, 1, 12)
    full = tiny.session(batch_size=1, seed=1)
    want = full.run(user)
    assert full.cache.keys[0].shape[2] == 12  # run() knows the conversation: min(context 256, 12 frames)
    short = tiny.session(batch_size=1, seed=1, max_frames=4)
    text = []
    for t in range(12):
        out = short.step(user[:, :, t])
        text.append(-1 if out is None else int(out.text[0]))
        assert short.cache.keys[0].shape[2] == (4 if t < 4 else 8 if t < 8 else 16)
    assert text == want.text[0].tolist()
    with pytest.raises(RuntimeError, match="before the cache's first frame"):
        short.cache.reserve(100)


def test_sequences_are_refused():
    cache = FrameKVCache(1, 8)
    with pytest.raises(RuntimeError, match="one frame per call"):
        cache.update(torch.zeros(1, 2, 3, 4), torch.zeros(1, 2, 3, 4), 0)


@pytest.mark.parametrize("name", ["kyutai-tiny-moshi", "kyutai-tiny-personaplex"])
def test_the_ring_gives_the_tokens_of_a_plain_window_on_the_reference_fixtures(name):
    from safetensors.torch import load_file

    from duplex_steer import load
    from tests.conftest import fixture_dir

    folder = fixture_dir(name)
    model = load(folder, device="cpu", lm_only=True)
    user = load_file(str(folder / "reference.safetensors"))["stream_user_codes"]
    for options in ({"greedy": True}, {"seed": 11}):
        ring, _ = _play(model, user, False, **options)
        plain, _ = _play(model, user, True, **options)
        assert torch.equal(ring.text, plain.text) and torch.equal(ring.audio, plain.audio)


def test_without_a_hint_the_window_starts_small_and_doubles_up_to_the_context(tiny):
    """No 7B-sized full window by default: UNHINTED_FRAMES slots, doubled when outlasted, capped at context."""
    from duplex_steer.engine.kv_cache import UNHINTED_FRAMES

    cache = FrameKVCache(1, 3000)
    assert cache.capacity == UNHINTED_FRAMES
    like = torch.zeros(1, 2, 1, 4)
    sizes = []
    for t in range(UNHINTED_FRAMES * 2 + 1):
        cache.position = t
        cache.update(like, like, 0)
        sizes.append(cache.keys[0].shape[2])
    assert sizes[0] == UNHINTED_FRAMES and sizes[UNHINTED_FRAMES] == 2 * UNHINTED_FRAMES
    assert sizes[-1] == min(3000, 4 * UNHINTED_FRAMES)
    small = FrameKVCache(1, 500)
    for t in range(600):
        small.position = t
        small.update(like, like, 0)
    assert small.keys[0].shape[2] == 500
