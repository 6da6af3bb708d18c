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
from ..lazy import gc_paused
from .spec import tiny_mimi_config


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


@torch.no_grad()
def spread_codebooks(mimi: torch.nn.Module, seed: int) -> None:
    """Spread a random Mimi's codebooks over its own latent distribution.

    transformers initialises codebooks to zero, which makes every frame quantize to code 0 (the
    user stream would be constant). Codewords are drawn from the latents of a seeded noise signal,
    and each residual stage from the residual left by the previous ones.
    """
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 1, SAMPLE_RATE * 2, generator=gen) * 0.1
    param = next(mimi.parameters())
    latent = mimi.encoder(noise.to(param.device, param.dtype))[0]  # [1, hidden, frames]
    for rvq in (mimi.quantizer.semantic_residual_vector_quantizer, mimi.quantizer.acoustic_residual_vector_quantizer):
        residual = rvq.input_proj(latent) if rvq.input_proj is not None else latent
        flat = residual.transpose(1, 2).reshape(-1, residual.shape[1])
        for layer in rvq.layers:
            book = layer.codebook
            pick = torch.randint(0, flat.shape[0], (book.embed_sum.shape[0],), generator=gen)
            jitter = torch.randn(book.embed_sum.shape, generator=gen).to(flat.device)  # drawn on the CPU: same on any device
            book.embed_sum.copy_(flat[pick.to(flat.device)] + 1e-3 * jitter)
            book.cluster_usage.fill_(1.0)
            book.initialized.fill_(1.0)
            flat = flat - layer.codebook.decode(layer.codebook.encode(flat))


def random_tiny_mimi(card: int, seed: int, device: torch.device, dtype: torch.dtype):
    """A small random Mimi (transformers' `MimiModel`, `spec.tiny_mimi_config`) with seeded weights and
    codebooks spread over its latents: the codec of the random presets, and the placeholder an export
    writes for a model loaded without its codec."""
    with gc_paused():
        from transformers import MimiModel
    with torch.random.fork_rng(devices=[]):  # transformers' init draws from the global generator
        torch.manual_seed(seed)
        mimi = MimiModel._from_config(tiny_mimi_config(card), dtype=dtype).to(device)
    spread_codebooks(mimi, seed + 3)
    return mimi.eval()
