"""Keyed sampling noise: a row's random draws depend only on its key, the frame and the stream.

A `torch.Generator` is one stream for the whole batch, so what a row draws depends on which rows
share its batch and in which order: re-batching, sharding or resuming a run changes its samples.
Keyed noise is counter-based instead: the exponential variate that rank j of the top-k list gets at
frame t in stream s (0 = text, 1 + k = audio codebook k) is a hash of (key, t, s, j), mapped to a
uniform in (0, 1) with 23 bits and then to -log(u). Rows with the same key draw the same noise
(common random numbers), whatever batch they are in. The hash is 32-bit `lowbias32` (integer
multiply-xorshift, good avalanche), computed on int64 tensors without overflow, so one step's
noise for the whole batch is a few vectorised integer operations on the model's device.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
_GOLDEN = 0x9E3779B9
MAX_STREAMS = 64  # text + audio codebooks per frame


def key_for(*parts: object) -> int:
    """A 64-bit noise key from any printable parts, e.g. (run seed, item id, repetition); stable across runs."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2^32 for x in [0, 2^32) and a 32-bit constant c, with no int64 overflow."""
    low, high = c & 0x7FFFFFFF, c >> 31
    out = x * low
    if high:
        out = out + ((x & 1) << 31)
    return out & MASK32


def mix32(x: Tensor) -> Tensor:
    """lowbias32 hash of 32-bit values held in an int64 tensor."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


class KeyedNoise:
    """Per-row exponential race variates for one step, keyed by each row's 64-bit key."""

    def __init__(self, keys: Sequence[int], device: torch.device | str = "cpu"):
        lo = torch.tensor([int(key) & MASK32 for key in keys], dtype=torch.long, device=device)
        hi = torch.tensor([(int(key) >> 32) & MASK32 for key in keys], dtype=torch.long, device=device)
        self.rows = mix32(lo ^ mix32(hi ^ _GOLDEN))  # [B] one 32-bit state per row
        self.device = self.rows.device
        self._ranks: Tensor | None = None

    def _rank_codes(self, width: int) -> Tensor:
        if self._ranks is None or self._ranks.shape[0] < width:
            self._ranks = mix32(torch.arange(width, device=self.device) + _GOLDEN)
        return self._ranks[:width]

    def race(self, frame: int, streams: int, width: int) -> Tensor:
        """Exponential(1) variates [B, streams, width] for `frame`: a pure function of (key, frame, stream, rank)."""
        if not 0 < streams <= MAX_STREAMS:
            raise ValueError(f"streams must be in 1..{MAX_STREAMS}, got {streams}")
        counters = (frame * MAX_STREAMS + torch.arange(streams, device=self.device)) & MASK32
        state = mix32(self.rows[:, None] ^ mix32(counters)[None, :])  # [B, streams]
        bits = mix32(state[:, :, None] ^ self._rank_codes(width)[None, None, :])
        uniform = ((bits >> 9).to(torch.float32) + 0.5) * (2.0**-23)  # in (0, 1): 1 - 2^-24 at most
        return -torch.log(uniform)


__all__ = ["KeyedNoise", "key_for", "mix32"]
