"""Audio in and out: any file, sample rate or channel count in; 24 kHz mono float32 inside the toolkit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DuplexSteerError

SAMPLE_RATE = 24_000
FRAME_RATE = 12.5
FRAME_SAMPLES = 1920  # 80 ms at 24 kHz


class AudioError(DuplexSteerError, ValueError):
    """A recording that cannot be used, with what was wrong and what to do."""


# a stereo mix-down this much quieter (RMS) than its loudest channel has cancelled: opposite phases
CANCELLED_MIX = 0.25


def to_mono(wav: np.ndarray) -> np.ndarray:
    """[T] or [T, C] (soundfile layout) -> [T] float32 by averaging channels, or the loudest channel when the
    average would cancel the sound (channels in opposite phase, as a miswired stereo microphone records)."""
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim == 2:
        mixed = wav.mean(axis=1)
        if wav.shape[1] > 1 and wav.size:
            channel_rms = np.sqrt((wav.astype(np.float64) ** 2).mean(axis=0))
            if np.sqrt((mixed.astype(np.float64) ** 2).mean()) < CANCELLED_MIX * channel_rms.max():
                mixed = wav[:, int(channel_rms.argmax())]
        wav = mixed
    if wav.ndim != 1:
        raise AudioError(f"expected audio shaped [samples] or [samples, channels], got {wav.shape}")
    return wav


def resample(wav: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling (soxr through librosa); a no-op when the rates match."""
    if sr_in == sr_out:
        return wav.astype(np.float32, copy=False)
    import librosa

    return librosa.resample(wav.astype(np.float32), orig_sr=sr_in, target_sr=sr_out, res_type="soxr_hq")


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any file soundfile can read; return mono float32 at `sample_rate`.

    Raises AudioError (never a library traceback) for a missing, unreadable, empty or non-finite file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise AudioError(f"could not read {path} as audio ({exc}); give a WAV, FLAC or OGG file") from None
    wav = to_mono(wav)
    if wav.size == 0:
        raise AudioError(f"{path} contains no samples")
    if not np.isfinite(wav).all():
        raise AudioError(f"{path} contains NaN or infinite samples")
    return resample(wav, sr, sample_rate)


def save_audio(path: str | Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float audio; the format follows the suffix (.wav 16-bit PCM, .flac, .ogg)."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    subtype = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}.get(path.suffix.lower())
    sf.write(str(path), wav, sample_rate, subtype=subtype)
    return path


def pad_to_frames(wav: np.ndarray, frame_samples: int = FRAME_SAMPLES) -> np.ndarray:
    """Zero-pad the end so the length is a whole number of frames."""
    rem = (-len(wav)) % frame_samples
    return np.pad(wav, (0, rem)) if rem else wav


def rms_per_frame(wav: np.ndarray, frame_samples: int = FRAME_SAMPLES) -> np.ndarray:
    """Root-mean-square energy of each whole frame: [n_frames]."""
    wav = pad_to_frames(np.asarray(wav, dtype=np.float32), frame_samples)
    return np.sqrt((wav.reshape(-1, frame_samples) ** 2).mean(axis=1))
