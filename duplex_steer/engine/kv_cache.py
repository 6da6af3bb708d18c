"""`FrameKVCache`: the streaming session's key/value cache, and the matching mask for whole sequences.

A sliding window of `context` frames, the reference's rule: the streaming session (`engine.session`)
writes one frame per step into the cache; a teacher-forced pass (`DuplexModel.forward_codes`) sees the
same window through `window_mask`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

UNHINTED_FRAMES = 375  # window slots allocated first when the conversation's length is not known (30 s)


class FrameKVCache:
    """Key/value cache over a sliding window of `context` frames for a lockstep batch.

    Implements the one method transformers' attention calls (`update`). Each layer's buffers are
    allocated once, at the first frame, with `capacity` = min(context, max_frames) slots (`max_frames`:
    the conversation's length when the caller knows it, e.g. `DuplexSession.run`, the ZBB runner,
    `converse`), and act as a ring from then on: attention is order-free once RoPE is applied, so the
    window is always the last `context` frames including the current one (the reference's rule).
    Nothing is allocated or copied per step. Without a hint the window starts at `UNHINTED_FRAMES`
    (30 s; the 7B's full 3000-frame window at batch 32 would take 50 GB in bfloat16), and a conversation
    that outlasts its window doubles it (a few times at most, up to `context`).
    """

    def __init__(self, num_layers: int, context: int, max_frames: int | None = None):
        if context < 1:
            raise ValueError(f"context must be at least 1 frame, got {context}")
        self.context = context
        self.capacity = min(context, UNHINTED_FRAMES)
        self.position = 0  # absolute frame index being written; set by the session before each step
        self.keys: list[Tensor | None] = [None] * num_layers
        self.values: list[Tensor | None] = [None] * num_layers
        if max_frames is not None:
            self.reserve(max_frames)

    @property
    def allocated(self) -> bool:
        return any(k is not None for k in self.keys)

    def reserve(self, max_frames: int) -> None:
        """Size the window for a conversation of at most `max_frames` frames (before the first frame)."""
        if self.allocated:
            raise RuntimeError("reserve() must be called before the cache's first frame")
        self.capacity = max(1, min(self.context, int(max_frames)))

    def _window(self, layer_idx: int, like: Tensor) -> tuple[Tensor, Tensor]:
        k_buf, v_buf = self.keys[layer_idx], self.values[layer_idx]
        if k_buf is None:
            B, H, _, D = like.shape
            k_buf, v_buf = like.new_zeros(B, H, self.capacity, D), like.new_zeros(B, H, self.capacity, D)
        elif self.position >= k_buf.shape[2] and k_buf.shape[2] < self.context:
            # the conversation outlasts its window: double it (frames keep their slots until the ring wraps)
            n = k_buf.shape[2]
            extra = min(2 * n, self.context) - n
            k_buf = torch.cat([k_buf, k_buf.new_zeros(*k_buf.shape[:2], extra, k_buf.shape[3])], 2)
            v_buf = torch.cat([v_buf, v_buf.new_zeros(*v_buf.shape[:2], extra, v_buf.shape[3])], 2)
        self.keys[layer_idx], self.values[layer_idx] = k_buf, v_buf
        return k_buf, v_buf

    def update(self, key: Tensor, value: Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        if key.shape[2] != 1:
            raise RuntimeError("FrameKVCache takes one frame per call; use DuplexModel.forward_codes for sequences")
        k_buf, v_buf = self._window(layer_idx, key)
        slot = self.position % self.context
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
