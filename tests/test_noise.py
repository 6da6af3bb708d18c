"""Keyed sampling noise: known hash values, batch independence, the exponential race it feeds."""

from __future__ import annotations

import torch

from duplex_steer.engine.noise import KeyedNoise, key_for, mix32
from duplex_steer.engine.session import sample_token


def _lowbias32(x: int) -> int:
    """The published lowbias32 in plain Python integers (reference for the tensor version)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_mix32_matches_the_reference_hash_on_the_whole_32_bit_range():
    values = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF, 123456789]
    assert mix32(torch.tensor(values)).tolist() == [_lowbias32(v) for v in values]
    assert _lowbias32(1) not in (0, 1)  # mixes (0 is its fixed point)


def test_keys_are_stable_and_distinct():
    assert key_for(0, "penguins-false", 0) == key_for(0, "penguins-false", 0)
    assert len({key_for(0, "penguins-false", r) for r in range(50)}) == 50
    assert key_for(0, "a", 1) != key_for(0, "a1")
    assert 0 <= key_for("x") < 2**64


def test_a_rows_noise_does_not_depend_on_the_other_rows():
    a, b, c = key_for(0, "a", 0), key_for(0, "b", 0), key_for(1, "a", 0)
    together = KeyedNoise([a, b, c]).race(17, 9, 250)
    assert together.shape == (3, 9, 250)
    assert torch.equal(KeyedNoise([b, a]).race(17, 9, 250)[1], together[0])
    assert not torch.equal(together[0], together[2])  # another run seed: other noise
    assert not torch.equal(together[0], KeyedNoise([a]).race(18, 9, 250)[0])  # another frame
    assert not torch.equal(together[0, 0], together[0, 1])  # another stream


def test_keyed_variates_are_exponential_and_sample_the_categorical():
    noise = KeyedNoise([key_for("dist", i) for i in range(4000)])
    race = noise.race(3, 9, 64)
    assert race.min() > 0 and torch.isfinite(race).all()
    assert abs(float(race.mean()) - 1.0) < 0.01 and abs(float(race.var()) - 1.0) < 0.03
    probs = torch.tensor([0.5, 0.3, 0.2])
    logits = probs.log().expand(4000, 3)
    tokens = torch.cat([sample_token(logits, False, 1.0, 3, race=race[:, s]) for s in range(9)])
    freq = torch.bincount(tokens, minlength=3).float() / tokens.numel()
    assert torch.allclose(freq, probs, atol=0.01)
