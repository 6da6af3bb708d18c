"""`FrameKVCache`: the streaming session's key/value cache, and the matching mask for whole sequences.

A sliding window of `context` frames, the reference's rule: the streaming session (`engine.session`)
writes one frame per step into the cache; a teacher-forced pass (`DuplexModel.forward_codes`) sees the
same window through `window_mask`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class FrameKVCache:
    """Key/value cache over a sliding window of `context` frames for a lockstep batch.

    Implements the one method transformers' attention calls (`update`). Buffers grow by doubling up
    to `context` slots, then act as a ring: attention is order-free once RoPE is applied, so the
    window is always the last `context` frames including the current one (the reference's rule).
    """

    def __init__(self, num_layers: int, context: int, initial_capacity: int = 64):
        self.context = context
        self.initial_capacity = min(initial_capacity, context)
        self.position = 0  # absolute frame index being written; set by the session before each step
        self.keys: list[Tensor | None] = [None] * num_layers
        self.values: list[Tensor | None] = [None] * num_layers

    def _ensure(self, layer_idx: int, like: Tensor) -> None:
        buf = self.keys[layer_idx]
        need = min(self.position + 1, self.context)
        if buf is not None and buf.shape[2] >= need:
            return
        cap = buf.shape[2] if buf is not None else self.initial_capacity
        while cap < need:
            cap = min(2 * cap, self.context)
        B, H, _, D = like.shape
        new_k = like.new_zeros(B, H, cap, D)
        new_v = like.new_zeros(B, H, cap, D)
        if buf is not None:
            n = buf.shape[2]
            new_k[:, :, :n] = buf
            new_v[:, :, :n] = self.values[layer_idx]
        self.keys[layer_idx], self.values[layer_idx] = new_k, new_v

    def update(self, key: Tensor, value: Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        if key.shape[2] != 1:
            raise RuntimeError("FrameKVCache takes one frame per call; use DuplexModel.forward_codes for sequences")
        self._ensure(layer_idx, key)
        slot = self.position % self.context
        k_buf, v_buf = self.keys[layer_idx], self.values[layer_idx]
        k_buf[:, :, slot] = key[:, :, 0]
        v_buf[:, :, slot] = value[:, :, 0]
        n = min(self.position + 1, self.context)
        return k_buf[:, :, :n], v_buf[:, :, :n]


def window_mask(length: int, context: int, device: torch.device) -> Tensor:
    """Boolean [1, 1, T, T] mask: causal and limited to the last `context` frames."""
    pos = torch.arange(length, device=device)
    delta = pos[:, None] - pos[None, :]
    return ((delta >= 0) & (delta < context))[None, None]


__all__ = ["FrameKVCache", "window_mask"]
