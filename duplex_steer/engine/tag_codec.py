"""`TagCodec`: codebook 0 says what was said, codebooks 1-7 how it sounded.

Mimi's first codebook is distilled from a self-supervised speech model, so it carries phonetic content
more than voice. `TagCodec` gives the organism the same split at toy scale:

- **codebook 0**: the class of a small causal frame tagger (`FrameTagger`) over the log-mel columns of
  `MelCodec`'s analysis (10 ms hop): it reads the current 80 ms frame and the 7 before it (0.64 s),
  **no look-ahead**, and names the word being spoken in that frame (or silence). Trained
  on word-aligned speech of several TTS engines and voices (`duplex_steer.organism.hearing`), it gives
  the same words in different voices mostly the same codes.
- **codebooks 1-7**: residual k-means of the frame's log-mel vector minus the mean vector of its class:
  the acoustics (voice, pitch, level), which decoding needs.

Decoding sums the class mean and the residual centroids and inverts the mel as `MelCodec` does. Frame
t's codes depend on audio from frame t - `CONTEXT_FRAMES` to the end of frame t only, so an utterance
has the same codes wherever it follows that many silent frames (what per-utterance assembly needs).

Files: `codec.json` (settings, class labels, tagger shape) + `codec.safetensors` (tagger weights and input
statistics in float32, class means and residual centroids in float16).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from .mel_codec import CODEC_CONFIG, CODEC_WEIGHTS, CodecError, MelCodec, MelSettings, check_codes

SILENCE = "<silence>"
TAG_CODEC = "tag-rvq"
CONTEXT_FRAMES = 8  # frames before frame t its codes may depend on (7 read by the tagger + 1 by the mel window)


@dataclass(frozen=True)
class TaggerShape:
    """The tagger's size: a per-frame layer `channels` wide, then causal convolutions over frames
    (kernel `kernel`, one per dilation) with residual connections."""

    channels: int = 256
    kernel: int = 2
    dilations: tuple[int, ...] = (1, 2, 4)
    cepstra: int = 0  # > 0: each column enters as its first cepstral coefficients 1..cepstra (a smoothed
    # spectral envelope: pitch harmonics, which differ from voice to voice, are smoothed away) plus its level
    band_mels: int = 0  # > 0: the tagger reads only the lowest `band_mels` mel bands (32 of the 48: up to 3.4
    # kHz, the telephone band every voice fills; above it voices differ by their sample rate: 8-24 kHz)

    @property
    def receptive_frames(self) -> int:
        """Frames a tag reads: its own and `receptive_frames - 1` before it."""
        return 1 + (self.kernel - 1) * sum(self.dilations)


class FrameTagger(nn.Module):
    """Log-mel columns [B, n_mels, 8 * frames] -> class logits [B, frames, classes], causal over frames.

    Input per column: the log-mel shape (minus its mean over mels) and its level, standardized with
    statistics of the training speech (`input_mean`, `input_std`); a frame's 8 columns enter one linear
    layer together, then causal dilated convolutions over frames: a tag reads its frame and the
    `receptive_frames - 1` frames before it, nothing after."""

    def __init__(self, n_mels: int, classes: int, columns_per_frame: int, shape: TaggerShape = TaggerShape()):
        super().__init__()
        self.shape, self.columns_per_frame = shape, columns_per_frame
        self.bands = shape.band_mels or n_mels
        if not 0 < self.bands <= n_mels:
            raise ValueError(f"band_mels {shape.band_mels} must lie in 1..{n_mels} (or 0: all bands)")
        width = (shape.cepstra or self.bands) + 1
        self.register_buffer("input_mean", torch.zeros(width, 1))
        self.register_buffer("input_std", torch.ones(width, 1))
        self.register_buffer("dct", _dct_rows(self.bands, shape.cepstra) if shape.cepstra else torch.zeros(0),
                             persistent=False)
        c = shape.channels
        self.frame_in = nn.Linear(width * columns_per_frame, c)
        self.convs = nn.ModuleList(nn.Conv1d(c, c, shape.kernel, dilation=d) for d in shape.dilations)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(c, classes)

    def inputs(self, logmel: torch.Tensor) -> torch.Tensor:
        """[B, n_mels, C] log-mel -> [B, width, C]: the spectral shape (mean over mels removed, or cepstral
        coefficients 1..cepstra) and the level (mean over mels), of the lowest `band_mels` bands only."""
        logmel = logmel[:, : self.bands]
        level = logmel.mean(1, keepdim=True)
        shape = torch.einsum("km,bmc->bkc", self.dct, logmel) if self.shape.cepstra else logmel - level
        return torch.cat([shape, level], 1)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = (self.inputs(logmel) - self.input_mean) / self.input_std  # [B, n_mels + 1, C]
        B, D, C = x.shape
        frames = x.view(B, D, C // self.columns_per_frame, self.columns_per_frame).permute(0, 2, 1, 3)
        h = nn.functional.gelu(self.frame_in(frames.reshape(B, C // self.columns_per_frame, -1))).transpose(1, 2)
        for conv in self.convs:
            reach = (conv.kernel_size[0] - 1) * conv.dilation[0]
            h = h + self.dropout(nn.functional.gelu(conv(nn.functional.pad(h, (reach, 0)))))
        return self.head(h.transpose(1, 2))


def _dct_rows(n: int, k: int) -> torch.Tensor:
    """DCT-II rows 1..k (row 0, the level, is left out) of length n, orthonormal."""
    m = torch.arange(n, dtype=torch.float64)
    rows = torch.stack([torch.cos(torch.pi * q * (m + 0.5) / n) for q in range(1, k + 1)]) * (2.0 / n) ** 0.5
    return rows.float()


class TagCodec:
    """Tagger class as codebook 0, residual k-means of the rest as codebooks 1-7; see the module docstring."""

    sample_rate = SAMPLE_RATE
    frame_samples = FRAME_SAMPLES
    context_frames = CONTEXT_FRAMES  # silent frames after which an utterance's codes are its own

    def __init__(self, tagger: FrameTagger, labels: list[str], class_means: torch.Tensor,
                 residual_books: torch.Tensor, settings: MelSettings | None = None):
        settings = settings or MelSettings()
        if labels[:1] != [SILENCE]:
            raise CodecError(f"class 0 must be {SILENCE!r}")
        self.tagger = tagger.eval().requires_grad_(False)
        self.labels = list(labels)
        # held at float16 precision, as saved: a loaded codec encodes exactly as the one that was trained
        self.class_means = class_means.half().float().contiguous()
        self.residual_books = residual_books.half().float().contiguous()
        self.mel = MelCodec(torch.zeros(1, 1, settings.n_mels * settings.columns_per_frame), settings)
        self.settings = settings
        self.num_codebooks = 1 + self.residual_books.shape[0]
        self.card = max(len(self.labels), self.residual_books.shape[1])

    # --- analysis ---------------------------------------------------------------------------------
    def logmel_columns(self, wav: np.ndarray) -> tuple[torch.Tensor, int]:
        """[B, samples] audio -> ([B, n_mels, 8 * (lead + frames)] log-mel columns, lead): `lead` frames of
        silent columns in front cover the tagger's reach (the codec's left context is silence)."""
        s = self.settings
        feats = self.mel.features(wav)  # [B, F, 8 * n_mels], column by column
        B, F, _ = feats.shape
        cols = feats.view(B, F * s.columns_per_frame, s.n_mels).transpose(1, 2)
        lead = self.tagger.shape.receptive_frames - 1
        return nn.functional.pad(cols, (lead * s.columns_per_frame, 0), value=float(np.log(s.floor))), lead

    @torch.no_grad()
    def tag_logits(self, wav: np.ndarray) -> torch.Tensor:
        """[B, samples] -> [B, frames, classes] tagger logits."""
        cols, lead = self.logmel_columns(wav)
        return self.tagger(cols)[:, lead:]

    def encode(self, wav: np.ndarray) -> torch.Tensor:
        """[B, samples] float audio at 24 kHz -> [B, 8, frames] codes."""
        feats = self.mel.features(wav)  # [B, F, dim]
        tags = self.tag_logits(wav).argmax(-1)  # [B, F]
        residual = feats - self.class_means[tags]
        codes = [tags]
        B, F, D = residual.shape
        flat = residual.reshape(B * F, D)
        for book in self.residual_books:
            idx = torch.cdist(flat, book).argmin(1)
            codes.append(idx.view(B, F))
            flat = flat - book[idx]
        return torch.stack(codes, 1).contiguous()

    def words(self, codes: torch.Tensor) -> list[str]:
        """Codebook 0 of [8, frames] codes as the tagger's labels (for reading what the codec heard)."""
        return [self.labels[int(c)] for c in codes[0]]

    # --- synthesis --------------------------------------------------------------------------------
    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """[B, 8, frames] codes -> [B, frames, dim] log-mel frame vectors."""
        codes = check_codes(codes, self.num_codebooks, self.card)
        out = self.class_means[codes[:, 0].clamp(max=len(self.labels) - 1)]
        for k, book in enumerate(self.residual_books):
            out = out + book[codes[:, 1 + k].clamp(max=book.shape[0] - 1)]
        return out

    def decode(self, codes: torch.Tensor) -> np.ndarray:
        """[B, 8, frames] codes -> [B, frames * 1920] float audio (Griffin-Lim mel inversion)."""
        return self.mel.invert(self.dequantize(codes))

    # --- files ------------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {f"tagger.{k}": v.float() for k, v in self.tagger.state_dict().items()}
        tensors.update(class_means=self.class_means.half(), residual_books=self.residual_books.half())
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / CODEC_WEIGHTS))
        shape = asdict(self.tagger.shape)
        (folder / CODEC_CONFIG).write_text(json.dumps(
            {"codec": TAG_CODEC, **asdict(self.settings), "tagger": shape, "labels": self.labels}, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> TagCodec:
        from safetensors.torch import load_file

        folder = Path(folder)
        try:
            cfg = json.loads((folder / CODEC_CONFIG).read_text())
            tensors = load_file(str(folder / CODEC_WEIGHTS))
            if cfg.pop("codec", None) != TAG_CODEC:
                raise KeyError(f"codec is not {TAG_CODEC!r}")
            labels, tagger_cfg = cfg.pop("labels"), cfg.pop("tagger")
            shape = TaggerShape(**{**tagger_cfg, "dilations": tuple(tagger_cfg["dilations"])})
            settings = MelSettings(**cfg)
            tagger = FrameTagger(settings.n_mels, len(labels), settings.columns_per_frame, shape)
            tagger.load_state_dict({k[len("tagger."):]: v.float() for k, v in tensors.items()
                                    if k.startswith("tagger.")}, strict=True)
            return cls(tagger, labels, tensors["class_means"], tensors["residual_books"], settings)
        except (OSError, KeyError, TypeError, RuntimeError, json.JSONDecodeError) as exc:
            raise CodecError(f"{folder} does not hold a tag codec ({CODEC_CONFIG} + {CODEC_WEIGHTS}): {exc}") from None


def load_small_codec(folder: str | Path) -> MelCodec | TagCodec:
    """The CPU codec saved in `folder`: a `TagCodec` or a `MelCodec`, by `codec.json`'s "codec" field."""
    try:
        kind = json.loads((Path(folder) / CODEC_CONFIG).read_text()).get("codec")
    except (OSError, json.JSONDecodeError) as exc:
        raise CodecError(f"{folder} has no readable {CODEC_CONFIG}: {exc}") from None
    return TagCodec.load(folder) if kind == TAG_CODEC else MelCodec.load(folder)
