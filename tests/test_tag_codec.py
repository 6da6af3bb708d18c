"""TagCodec: causal codes (no look-ahead), bounded left context, exact files, clear errors.

Voice independence of a *trained* tag codec is tested on the committed organism's (tests/test_hearing.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplex_steer.audio import FRAME_SAMPLES
from duplex_steer.engine.mel_codec import CodecError, MelCodec
from duplex_steer.engine.tag_codec import (
    CONTEXT_FRAMES,
    SILENCE,
    FrameTagger,
    TagCodec,
    TaggerShape,
    load_small_codec,
)


@pytest.fixture(scope="module")
def codec() -> TagCodec:
    torch.manual_seed(0)
    labels = [SILENCE] + [f"w{i}" for i in range(11)]
    tagger = FrameTagger(48, len(labels), 8)
    for p in tagger.parameters():  # a random tagger whose tags vary with the audio
        p.data.normal_(0, 0.2)
    return TagCodec(tagger, labels, torch.randn(len(labels), 384), torch.randn(7, 16, 384))


def _noise(frames: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(frames * FRAME_SAMPLES) * 0.1).astype(np.float32)


def test_codes_shape_range_and_variety(codec: TagCodec) -> None:
    codes = codec.encode(_noise(30, 0)[None])
    assert codes.shape == (1, 8, 30) and codes.dtype == torch.long
    assert int(codes[:, 0].max()) < len(codec.labels) and int(codes[:, 1:].max()) < 16
    assert codes[0, 0].unique().numel() > 1  # the tags depend on the audio
    assert codec.card == 16 and codec.num_codebooks == 8


def test_no_look_ahead(codec: TagCodec) -> None:
    """Frame t's codes never depend on audio after frame t."""
    wav = _noise(30, 1)
    full = codec.encode(wav[None])[0]
    for t in (0, 5, 17):
        cut = wav.copy()
        cut[(t + 1) * FRAME_SAMPLES :] = _noise(30, 2)[(t + 1) * FRAME_SAMPLES :]
        assert torch.equal(codec.encode(cut[None])[0, :, : t + 1], full[:, : t + 1])
        assert not torch.equal(codec.encode(cut[None])[0, :, t + 1 :], full[:, t + 1 :])


def test_left_context_is_bounded(codec: TagCodec) -> None:
    """After CONTEXT_FRAMES silent frames an utterance has the codes it has alone; with less, it may not."""
    speech = _noise(10, 3)
    alone = codec.encode(speech[None])[0]
    wav = np.concatenate([_noise(12, 4), np.zeros(CONTEXT_FRAMES * FRAME_SAMPLES, np.float32), speech])
    start = 12 + CONTEXT_FRAMES
    assert torch.equal(codec.encode(wav[None])[0, :, start:], alone)
    assert torch.equal(codec.tag_logits(wav[None])[0, start:], codec.tag_logits(speech[None])[0])
    wav = np.concatenate([_noise(12, 4), np.zeros(2 * FRAME_SAMPLES, np.float32), speech])
    assert not torch.equal(codec.tag_logits(wav[None])[0, 14:], codec.tag_logits(speech[None])[0])


def test_batch_equals_items(codec: TagCodec) -> None:
    a, b = _noise(20, 5), _noise(20, 6)
    both = codec.encode(np.stack([a, b]))
    assert torch.equal(both[0], codec.encode(a[None])[0]) and torch.equal(both[1], codec.encode(b[None])[0])


def test_decode_and_words(codec: TagCodec) -> None:
    codes = codec.encode(_noise(12, 7)[None])
    audio = codec.decode(codes)
    assert audio.shape == (1, 12 * FRAME_SAMPLES) and np.isfinite(audio).all() and np.abs(audio).max() > 0
    assert codec.words(codes[0]) == [codec.labels[int(c)] for c in codes[0, 0]]
    with pytest.raises(CodecError, match="0..15"):
        codec.decode(torch.full((1, 8, 3), 16))


def test_save_load_encodes_identically(codec: TagCodec, tmp_path) -> None:
    codec.save(tmp_path)
    loaded = load_small_codec(tmp_path)
    assert isinstance(loaded, TagCodec) and loaded.labels == codec.labels
    wav = _noise(25, 8)[None]
    assert torch.equal(loaded.encode(wav), codec.encode(wav))
    assert torch.equal(loaded.dequantize(codec.encode(wav)), codec.dequantize(codec.encode(wav)))


def test_load_dispatch_and_errors(tmp_path) -> None:
    mel = MelCodec.fit([_noise(40, 9)], card=16, iters=3)
    mel.save(tmp_path / "mel")
    assert isinstance(load_small_codec(tmp_path / "mel"), MelCodec)
    with pytest.raises(CodecError, match="tag codec"):
        TagCodec.load(tmp_path / "mel")
    with pytest.raises(CodecError, match="codec.json"):
        load_small_codec(tmp_path / "nothing")
    with pytest.raises(CodecError, match="class 0"):
        TagCodec(FrameTagger(48, 2, 8), ["a", SILENCE], torch.zeros(2, 384), torch.zeros(7, 4, 384))


@pytest.mark.parametrize("cepstra", [0, 16])
def test_band_mels_reads_only_the_low_bands(cepstra: int, tmp_path) -> None:
    """With `band_mels`, the tags depend on the lowest bands only (what a voice sampled at 8 kHz has too),
    with or without cepstra, and the limit survives save/load; without it, the high bands count."""
    torch.manual_seed(1)
    logmel = torch.randn(2, 48, 8 * 12)
    louder_top = logmel.clone()
    louder_top[:, 32:] += torch.randn(2, 16, 8 * 12) * 3
    for band, same in ((32, True), (0, False)):
        tagger = FrameTagger(48, 12, 8, TaggerShape(cepstra=cepstra, band_mels=band)).eval()
        assert torch.equal(tagger(logmel), tagger(louder_top)) is same
        changed_low = logmel.clone()
        changed_low[:, 31] += 1.0  # the highest band it reads
        assert not torch.equal(tagger(changed_low), tagger(logmel))
    labels = [SILENCE] + [f"w{i}" for i in range(11)]
    banded = TagCodec(FrameTagger(48, 12, 8, TaggerShape(cepstra=cepstra, band_mels=32)), labels,
                      torch.randn(12, 384), torch.randn(7, 16, 384))
    banded.save(tmp_path)
    loaded = TagCodec.load(tmp_path)
    assert loaded.tagger.shape.band_mels == 32
    wav = _noise(20, 10)[None]
    assert torch.equal(loaded.tag_logits(wav), banded.tag_logits(wav))
    with pytest.raises(ValueError, match="band_mels 60"):
        FrameTagger(48, 12, 8, TaggerShape(band_mels=60))
