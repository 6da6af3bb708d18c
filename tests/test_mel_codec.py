"""MelCodec: shape, determinism, frame locality (what per-utterance code assembly relies on), files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE
from duplex_steer.engine.mel_codec import CodecError, MelCodec, slaney_mel_filters


def _signals(n: int = 12, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        t = np.arange(int(rng.integers(3, 9)) * FRAME_SAMPLES) / SAMPLE_RATE
        f0 = rng.uniform(100, 300)
        wav = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6)) * np.hanning(len(t)) * 0.3
        out.append((wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def codec() -> MelCodec:
    return MelCodec.fit(_signals(), card=16, stages=8, iters=8, seed=0)


def test_encode_shape_range_and_determinism(codec: MelCodec) -> None:
    wav = _signals(2, seed=1)[0][None]
    codes = codec.encode(wav)
    assert codes.shape == (1, 8, -(-wav.shape[1] // FRAME_SAMPLES))
    assert codes.dtype == torch.long and 0 <= codes.min() and codes.max() < 16
    assert torch.equal(codes, codec.encode(wav))
    again = MelCodec.fit(_signals(), card=16, stages=8, iters=8, seed=0)
    assert torch.equal(again.codebooks, codec.codebooks)


def test_residual_stages_reduce_error(codec: MelCodec) -> None:
    feats = codec.features(np.concatenate(_signals())[None])[0]
    codes = codec.quantize(feats)
    errors = []
    for k in range(1, 9):
        approx = sum(codec.codebooks[j][codes[:, j]] for j in range(k))
        errors.append(float(((feats - approx) ** 2).mean()))
    assert errors[-1] < errors[0] / 2
    assert all(b <= a + 1e-6 for a, b in zip(errors, errors[1:], strict=False))


def test_frame_local_codes_assemble(codec: MelCodec) -> None:
    """An utterance on a frame boundary after a silent frame has the codes it has alone (+1 tail frame)."""
    a, b = _signals(2, seed=2)
    alone = codec.encode(np.concatenate([b, np.zeros(FRAME_SAMPLES, np.float32)])[None])[0]
    gap = np.zeros(FRAME_SAMPLES, np.float32)
    pad = np.zeros(-len(a) % FRAME_SAMPLES, np.float32)
    both = codec.encode(np.concatenate([a, pad, gap, b, gap])[None])[0]
    start = (len(a) + len(pad)) // FRAME_SAMPLES + 1
    assert torch.equal(both[:, start:], alone)


def test_decode_is_audible_and_aligned(codec: MelCodec) -> None:
    wav = _signals(1, seed=3)[0]
    out = codec.decode(codec.encode(wav[None]))
    assert out.shape == (1, -(-len(wav) // FRAME_SAMPLES) * FRAME_SAMPLES)
    assert np.isfinite(out).all() and np.abs(out).max() > 0.01
    silent = codec.decode(codec.encode(np.zeros((1, 4 * FRAME_SAMPLES), np.float32)))
    assert np.abs(silent).max() < np.abs(out).max() / 10


def test_save_load_round_trip(codec: MelCodec, tmp_path) -> None:
    codec.save(tmp_path)
    loaded = MelCodec.load(tmp_path)
    wav = _signals(1, seed=4)[0][None]
    assert loaded.settings == codec.settings
    assert torch.equal(loaded.encode(wav), codec.encode(wav))  # centroids stored in float16, codes unchanged


def test_clear_errors(codec: MelCodec, tmp_path) -> None:
    with pytest.raises(CodecError, match="codes must lie in"):
        codec.decode(torch.full((1, 8, 2), 99))
    with pytest.raises(CodecError, match="does not hold a mel codec"):
        MelCodec.load(tmp_path)
    with pytest.raises(CodecError, match="at least 64 frames"):
        MelCodec.fit(_signals(1), card=64)


@pytest.mark.parametrize("sr, n_fft, n_mels, fmin, fmax", [(24000, 1024, 48, 40.0, 10_000.0),
                                                           (16000, 512, 40, 0.0, 8000.0),
                                                           (24000, 2048, 80, 1000.0, 11_000.0)])
def test_mel_filters_equal_librosa_bit_for_bit(sr, n_fft, n_mels, fmin, fmax):
    """The codec builds its filterbank without librosa (seconds of imports); the codes it was trained with
    came from librosa's, so the two must be the same float32 numbers, not merely close."""
    import librosa

    ours = slaney_mel_filters(sr, n_fft, n_mels, fmin, fmax)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert ours.dtype == theirs.dtype == np.float32
    assert np.array_equal(ours, theirs)
