"""Audio codecs: waveform <-> 8 codebooks per 80 ms frame. Mimi, or any codec with the same shape.

Both directions run on whole recordings: Mimi is causal, so encoding a recording at once gives the
codes a streaming encoder would have produced frame by frame, and the duplex loop still consumes
them one frame at a time.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from ..audio import FRAME_SAMPLES, SAMPLE_RATE, pad_to_frames


class Codec(Protocol):
    """What the engine needs from a codec."""

    sample_rate: int
    frame_samples: int
    num_codebooks: int

    def encode(self, wav: np.ndarray) -> torch.Tensor:
        """[B, samples] float audio at `sample_rate` -> [B, num_codebooks, frames] codes."""
        ...

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """[B, num_codebooks, frames] codes -> [B, frames * frame_samples] float audio."""
        ...


class MimiCodec:
    """transformers' `MimiModel`, first `num_codebooks` quantizers (Moshi uses 8)."""

    sample_rate = SAMPLE_RATE
    frame_samples = FRAME_SAMPLES

    def __init__(self, mimi: torch.nn.Module, num_codebooks: int = 8):
        self.mimi = mimi.eval()
        self.num_codebooks = num_codebooks

    @property
    def device(self) -> torch.device:
        return next(self.mimi.parameters()).device

    @torch.no_grad()
    def encode(self, wav: np.ndarray) -> torch.Tensor:
        wav = np.atleast_2d(np.asarray(wav, dtype=np.float32))
        n_frames = -(-wav.shape[1] // self.frame_samples)
        x = torch.from_numpy(np.stack([pad_to_frames(w, self.frame_samples) for w in wav]))[:, None]
        dtype = next(self.mimi.parameters()).dtype
        codes = self.mimi.encode(x.to(self.device, dtype), num_quantizers=self.num_codebooks).audio_codes
        return codes[:, :, :n_frames].long()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> np.ndarray:
        codes = torch.as_tensor(codes).to(self.device).long()
        wav = self.mimi.decode(codes).audio_values[:, 0]
        return wav.float().cpu().numpy()
