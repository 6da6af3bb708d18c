"""`MelCodec`: a small deterministic codec with Mimi's shape (8 codebooks per 80 ms frame at 24 kHz).

What it is: every 80 ms frame becomes 8 log-mel columns (10 ms hop, 1024-sample window ending at the
column's last sample, so a frame reads only itself and the previous frame: causal and frame-local),
flattened to one vector and quantized by 8 residual k-means stages fitted on a corpus
(`MelCodec.fit`). Decoding sums the chosen centroids and inverts the mel spectrogram with
Griffin-Lim (librosa): robotic but intelligible for the speech it was fitted on. It has no neural
network and needs no download; it exists so that a small model can be trained and heard on a CPU
(the organism). It is not a substitute for Mimi on real speech.

Saved as `codec.safetensors` (the centroids) + `codec.json` (the settings).
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..errors import DuplexSteerError

CODEC_WEIGHTS = "codec.safetensors"
CODEC_CONFIG = "codec.json"


_MEL_LINEAR_HZ = 200.0 / 3  # Slaney's mel scale: linear below 1 kHz (3 mel per 200 Hz), logarithmic above
_MEL_LOG_START_HZ = 1000.0
_MEL_LOG_STEP = np.log(6.4) / 27.0


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    mel = hz / _MEL_LINEAR_HZ
    high = hz >= _MEL_LOG_START_HZ
    mel[high] = _MEL_LOG_START_HZ / _MEL_LINEAR_HZ + np.log(hz[high] / _MEL_LOG_START_HZ) / _MEL_LOG_STEP
    return mel


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    hz = _MEL_LINEAR_HZ * mel
    start = _MEL_LOG_START_HZ / _MEL_LINEAR_HZ
    high = mel >= start
    hz[high] = _MEL_LOG_START_HZ * np.exp(_MEL_LOG_STEP * (mel[high] - start))
    return hz


def slaney_mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] float32 triangular filters on Slaney's mel scale, area-normalised: the same
    arithmetic as `librosa.filters.mel(sr=..., n_fft=..., n_mels=..., fmin=..., fmax=...)` (its defaults
    htk=False, norm='slaney'), bit for bit (tests/test_mel_codec.py), without importing librosa."""
    fft_hz = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    edges = _hz_to_slaney_mel(np.asarray([fmin, fmax], dtype=np.float64))
    mel_hz = _slaney_mel_to_hz(np.linspace(edges[0], edges[1], n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = np.subtract.outer(mel_hz, fft_hz)
    weights = np.zeros((n_mels, len(fft_hz)), dtype=np.float32)
    for i in range(n_mels):
        weights[i] = np.maximum(0, np.minimum(-ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]))
    weights *= (2.0 / (mel_hz[2 : n_mels + 2] - mel_hz[:n_mels]))[:, np.newaxis]
    return weights


class CodecError(DuplexSteerError, ValueError):
    """A codec file or input that cannot be used."""


def check_codes(codes: torch.Tensor, num_codebooks: int, card: int) -> torch.Tensor:
    """`codes` as a long CPU tensor [B, num_codebooks, frames] with every code in 0..card-1, or CodecError."""
    codes = torch.as_tensor(codes).long().cpu()
    if codes.dim() != 3 or codes.shape[1] != num_codebooks:
        raise CodecError(f"codes must be [B, {num_codebooks}, frames], got {tuple(codes.shape)}")
    if codes.numel() and (codes.min() < 0 or codes.max() >= card):
        raise CodecError(f"codes must lie in 0..{card - 1}")
    return codes


@dataclass(frozen=True)
class MelSettings:
    """Analysis settings; `hop * columns_per_frame` must equal the 1920-sample frame."""

    n_fft: int = 1024
    hop: int = 240
    n_mels: int = 48
    fmin: float = 40.0
    fmax: float = 10_000.0
    floor: float = 1e-4  # log(mel + floor): silence is log(floor) exactly
    griffin_lim_iters: int = 32

    @property
    def columns_per_frame(self) -> int:
        return FRAME_SAMPLES // self.hop


class MelCodec:
    """Log-mel frames quantized by residual k-means; see the module docstring."""

    sample_rate = SAMPLE_RATE
    frame_samples = FRAME_SAMPLES
    context_frames = 1  # silent frames after which an utterance's codes are its own (the window reads one back)

    def __init__(self, codebooks: torch.Tensor, settings: MelSettings = MelSettings()):
        if codebooks.dim() != 3:
            raise CodecError(f"codebooks must be [stages, card, dim], got {tuple(codebooks.shape)}")
        self.settings = settings
        self.codebooks = codebooks.float().contiguous()
        self.num_codebooks, self.card, dim = self.codebooks.shape
        if dim != settings.n_mels * settings.columns_per_frame:
            raise CodecError(f"codebook width {dim} does not match {settings.n_mels} mels x "
                             f"{settings.columns_per_frame} columns")
        self._window = torch.hann_window(settings.n_fft)

    @functools.cached_property
    def mel_filters(self) -> np.ndarray:
        """[n_mels, n_fft // 2 + 1] Slaney mel filterbank (librosa's `filters.mel` defaults, computed here:
        importing librosa, with scipy and numba, takes seconds and encoding never needs the rest of it)."""
        s = self.settings
        return slaney_mel_filters(SAMPLE_RATE, s.n_fft, s.n_mels, s.fmin, s.fmax)

    @functools.cached_property
    def _mel_basis(self) -> torch.Tensor:
        return torch.from_numpy(self.mel_filters).float()

    @functools.cached_property
    def _mel_inverse(self) -> np.ndarray:
        return np.linalg.pinv(self.mel_filters).astype(np.float32)

    # --- analysis ---------------------------------------------------------------------------------
    def features(self, wav: np.ndarray) -> torch.Tensor:
        """[B, samples] audio -> [B, frames, 8 * n_mels] log-mel frame vectors (frames = ceil(samples / 1920))."""
        s = self.settings
        wav = np.atleast_2d(np.asarray(wav, dtype=np.float32))
        n_frames = max(1, -(-wav.shape[1] // FRAME_SAMPLES))
        x = torch.zeros(wav.shape[0], s.n_fft - s.hop + n_frames * FRAME_SAMPLES)
        x[:, s.n_fft - s.hop : s.n_fft - s.hop + wav.shape[1]] = torch.from_numpy(wav)
        spec = torch.stft(x, s.n_fft, s.hop, window=self._window, center=False, return_complex=True).abs()
        mel = torch.log(self._mel_basis @ spec + s.floor)  # [B, n_mels, 8F]
        B = mel.shape[0]
        return mel.view(B, s.n_mels, n_frames, s.columns_per_frame).permute(0, 2, 3, 1).reshape(B, n_frames, -1)

    def quantize(self, feats: torch.Tensor) -> torch.Tensor:
        """[N, dim] frame vectors -> [N, stages] codes (greedy residual nearest centroid)."""
        residual = feats.clone()
        codes = []
        for book in self.codebooks:
            idx = torch.cdist(residual, book).argmin(1)
            codes.append(idx)
            residual -= book[idx]
        return torch.stack(codes, 1)

    def encode(self, wav: np.ndarray) -> torch.Tensor:
        """[B, samples] float audio at 24 kHz -> [B, 8, frames] codes."""
        feats = self.features(wav)
        B, F, D = feats.shape
        return self.quantize(feats.reshape(B * F, D)).view(B, F, -1).permute(0, 2, 1).contiguous()

    # --- synthesis --------------------------------------------------------------------------------
    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, 8, frames] codes -> [B, frames, dim] frame vectors."""
        codes = check_codes(codes, self.num_codebooks, self.card)
        out = torch.zeros(codes.shape[0], codes.shape[2], self.codebooks.shape[2])
        for k, book in enumerate(self.codebooks):
            out += book[codes[:, k]]
        return out

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """[B, 8, frames] codes -> [B, frames * 1920] float audio (Griffin-Lim mel inversion)."""
        return self.invert(self.dequantize(codes))

    def invert(self, feats: torch.Tensor) -> np.ndarray:
        """[B, frames, dim] log-mel frame vectors -> [B, frames * 1920] float audio (Griffin-Lim)."""
        import librosa

        s = self.settings
        B, F, _ = feats.shape
        out = np.zeros((B, F * FRAME_SAMPLES), np.float32)
        for b in range(B):
            mel = feats[b].view(F, s.columns_per_frame, s.n_mels).reshape(-1, s.n_mels).T
            mel = (mel.exp() - s.floor).clamp(min=0).numpy()
            if not mel.any():
                continue
            stft = np.maximum(self._mel_inverse @ mel, 0.0)  # least-squares, not NNLS: 100x faster
            wav = librosa.griffinlim(stft, n_iter=s.griffin_lim_iters, hop_length=s.hop, n_fft=s.n_fft,
                                     center=True, length=F * FRAME_SAMPLES - s.hop, random_state=0)
            # Column j describes the window ending at sample (j + 1) * hop; center=True puts it at j * hop.
            shift = s.n_fft // 2 - s.hop
            out[b, shift : shift + len(wav)] = wav[: F * FRAME_SAMPLES - shift]
        return out

    # --- fitting and files ------------------------------------------------------------------------
    @classmethod
    def fit(cls, wavs: list[np.ndarray], card: int = 64, stages: int = 8, settings: MelSettings = MelSettings(),
            iters: int = 20, seed: int = 0, max_frames: int = 60_000) -> MelCodec:
        """Fit the residual k-means stages on the frames of `wavs` (seeded, deterministic)."""
        probe = cls(torch.zeros(1, 1, settings.n_mels * settings.columns_per_frame), settings)
        feats = torch.cat([probe.features(w[None])[0] for w in wavs])
        gen = torch.Generator().manual_seed(seed)
        if len(feats) > max_frames:
            feats = feats[torch.randperm(len(feats), generator=gen)[:max_frames]]
        if len(feats) < card:
            raise CodecError(f"need at least {card} frames to fit {card} centroids, got {len(feats)}")
        residual, books = feats.clone(), []
        for _ in range(stages):
            book = kmeans(residual, card, iters, gen)
            books.append(book)
            residual -= book[torch.cdist(residual, book).argmin(1)]
        return cls(torch.stack(books), settings)

    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"codebooks": self.codebooks.half()}, str(folder / CODEC_WEIGHTS))
        (folder / CODEC_CONFIG).write_text(json.dumps({"codec": "mel-rvq", **asdict(self.settings)}, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> MelCodec:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            cfg = json.loads((folder / CODEC_CONFIG).read_text())
            books = load_file(str(folder / CODEC_WEIGHTS))["codebooks"]
        except (OSError, KeyError, json.JSONDecodeError) as exc:
            raise CodecError(f"{folder} does not hold a mel codec ({CODEC_CONFIG} + {CODEC_WEIGHTS}): {exc}") from None
        cfg.pop("codec", None)
        return cls(books.float(), MelSettings(**cfg))


def kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Lloyd's k-means with k-means++ seeding; empty clusters are re-seeded on the worst-fit points."""
    first = torch.randint(len(x), (1,), generator=gen)
    centers = [x[first[0]]]
    dist = ((x - centers[0]) ** 2).sum(1)
    for _ in range(1, k):
        pick = torch.multinomial(dist / dist.sum() if dist.sum() > 0 else torch.ones_like(dist), 1, generator=gen)
        centers.append(x[pick[0]])
        dist = torch.minimum(dist, ((x - centers[-1]) ** 2).sum(1))
    c = torch.stack(centers)
    for _ in range(iters):
        d = torch.cdist(x, c)
        assign = d.argmin(1)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).float()
        empty = counts == 0
        c = torch.where(empty[:, None], c, sums / counts.clamp(min=1)[:, None])
        if empty.any():
            worst = d.min(1).values.topk(int(empty.sum())).indices
            c[empty] = x[worst]
    return c
