"""The organism's hearing: labels, training data, a tag codec that learns, and the committed codec's voice
independence (the same words in a training engine and in the held-out engine get mostly the same codes)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE
from duplex_steer.engine.tag_codec import SILENCE
from duplex_steer.organism.hearing import (
    HELD_OUT_ENGINE,
    TRAINING_VOICES,
    HearingConfig,
    class_labels,
    examples,
    fit_tag_codec,
    frame_labels,
    hearing_texts,
    tagging_accuracy,
    user_texts,
)
from duplex_steer.organism.world import World
from duplex_steer.speech.aligned import AlignedUtterance, normalize_words

needs_engines = pytest.mark.skipif(not (shutil.which("flite") and shutil.which("festival")),
                                   reason="flite and festival are needed")
HELD_OUT_VOICE = "festival:slt-hts"


@pytest.fixture(scope="module")
def world() -> World:
    return World.load()


def test_no_training_voice_is_of_the_held_out_engine() -> None:
    assert all(not v.startswith(HELD_OUT_ENGINE + ":") for v in TRAINING_VOICES) and HELD_OUT_VOICE.startswith(HELD_OUT_ENGINE)
    assert len({v.split(":")[0] for v in TRAINING_VOICES}) >= 2 and len(TRAINING_VOICES) >= 6


def test_texts_cover_every_zbb_query_and_every_word(world: World) -> None:
    from zbb import load_items

    texts = set(user_texts(world))
    assert {it["text"] for it in load_items()} <= texts
    assert f"Tell me about {world.topics[0]}." in texts
    labels = class_labels(hearing_texts(world))
    assert labels[0] == SILENCE and set(world.model_words) <= set(labels)
    assert len(labels) == len(set(labels))


def _utt(spans: list[tuple[float, float]], words: list[str], seconds: float = 1.0) -> AlignedUtterance:
    return AlignedUtterance(" ".join(words), "test", np.zeros(int(seconds * SAMPLE_RATE), np.float32), words, spans)


def test_frame_labels_follow_the_spans() -> None:
    """A frame is the word covering most of it (at least 20 ms of its 80 ms), else silence."""
    index = {SILENCE: 0, "yes": 1, "penguins": 2}
    f = FRAME_SAMPLES / SAMPLE_RATE
    utt = _utt([(0.5 * f, 2.0 * f), (2.1 * f, 4.7 * f)], ["yes", "penguins"])
    assert frame_labels(utt, index, 6).tolist() == [1, 1, 2, 2, 2, 0]
    short = _utt([(0.0, 0.015)], ["yes"])  # 15 ms: too little of any frame
    assert frame_labels(short, index, 2).tolist() == [0, 0]


def test_examples_are_seeded_and_shift_spans_with_the_audio() -> None:
    utt = _utt([(0.1, 0.3)], ["yes"])
    utt.audio[int(0.1 * SAMPLE_RATE) : int(0.3 * SAMPLE_RATE)] = 0.1
    cfg = HearingConfig(augmentations=1, seed=3)
    a, b = examples([utt], cfg), examples([utt], cfg)
    assert len(a) == 2 and all(np.array_equal(x.audio, y.audio) for x, y in zip(a, b, strict=True))
    clean = a[0]
    shift = len(clean.audio) - len(utt.audio)
    assert 0 <= shift < FRAME_SAMPLES
    assert clean.spans_s[0][0] == pytest.approx(0.1 + shift / SAMPLE_RATE)


def test_a_pause_share_closes_pauses_in_augmented_copies_only() -> None:
    utt = _utt([(0.1, 0.3), (0.6, 0.8)], ["yes", "penguins"])
    for a, b in utt.spans_s:
        utt.audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] = 0.1
    plain, half, closed = (examples([utt], HearingConfig(augmentations=3, seed=3, pause_share=share))
                           for share in (0.0, 0.5, 1.0))
    assert np.array_equal(plain[0].audio, closed[0].audio)  # the clean copy is never changed
    for p, c in zip(plain[1:], closed[1:], strict=True):  # the same augmentations and shifts, shorter pauses
        assert c.spans_s[1][0] - c.spans_s[0][1] < 0.05 < p.spans_s[1][0] - p.spans_s[0][1]
        assert c.spans_s[0] == pytest.approx(p.spans_s[0])
    # the closing is drawn apart from the augmentations: any share leaves each copy as one of the two above
    for h, p, c in zip(half, plain, closed, strict=True):
        assert np.array_equal(h.audio, p.audio) or np.array_equal(h.audio, c.audio)


def test_spectrum_masks_cover_only_read_bands_and_real_columns_with_the_examples_level() -> None:
    from duplex_steer.engine.tag_codec import FrameTagger, TaggerShape
    from duplex_steer.organism.hearing import mask_spectrum

    tagger = FrameTagger(48, 10, 8, TaggerShape(cepstra=16, band_mels=32))
    lead = tagger.shape.receptive_frames - 1
    cols = torch.randn(2, 48, (lead + 20) * 8, generator=torch.Generator().manual_seed(0))
    target = torch.zeros(2, 20, dtype=torch.long)
    target[1, 10:] = -100  # example 1 is 10 frames long, then padding
    cfg = HearingConfig(band_masks=2, band_mask_width=5, time_masks=2, time_mask_columns=6)
    a, b = cols.clone(), cols.clone()
    mask_spectrum(a, target, tagger, cfg, torch.Generator().manual_seed(1))
    mask_spectrum(b, target, tagger, cfg, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # seeded
    changed = a != cols
    assert changed[:, :32].any(1).any(1).all()  # every example masked somewhere
    assert not changed[:, 32:].any()  # bands the tagger does not read stay
    assert not changed[1, :, (lead + 10) * 8 :].any()  # padding stays
    assert not changed[:, :, : lead * 8].any()  # the silent lead stays
    for i, length in ((0, (lead + 20) * 8), (1, (lead + 10) * 8)):
        fill = cols[i, :32, lead * 8 : length].mean()
        assert torch.allclose(a[i][changed[i]], fill.expand(int(changed[i].sum())))
    # band masks span every real column: at least one read band is the fill all along the example
    assert (changed[0, :32, lead * 8 :].all(1)).sum() >= 1


@needs_engines
def test_a_tag_codec_learns_words_from_two_voices() -> None:
    """One epoch on 8 sentences x 2 flite voices: it names most words of those sentences (the machinery)."""
    from duplex_steer.speech.aligned import render_corpus

    texts = ["Tell me about music.", "Penguins, they live in icy places, right?", "Yes, lions.", "No, ants.",
             "Um, excuse me, Ants, they give milk, right?", "Mhm.", "Tell me about airplanes.", "Okay."]
    rendered = [u for u in render_corpus(["flite:kal", "flite:slt"], texts, workers=1, progress=False).values()]
    cfg = HearingConfig(augmentations=0, epochs=30, batch_size=4, lr=3e-3, residual_card=8, seed=0)
    codec, record = fit_tag_codec(examples(rendered, cfg), class_labels(texts), cfg, progress=False)
    assert record["loss"][-1] < 0.5 * record["loss"][0]
    assert tagging_accuracy(codec, rendered)["word_accuracy"] > 0.6
    codes = codec.encode(rendered[0].audio[None])[0]
    assert codes.shape[0] == 8 and torch.equal(codec.encode(rendered[0].audio[None])[0], codes)


@pytest.fixture(scope="module")
def committed_codec():
    from duplex_steer.engine.tag_codec import TagCodec
    from duplex_steer.organism.checkpoint import WEIGHTS_DIR

    return TagCodec.load(WEIGHTS_DIR)


@needs_engines
def test_committed_codec_hears_the_same_words_in_a_training_and_the_held_out_engine(committed_codec, world) -> None:
    """Same ZBB queries, flite (trained on) and festival (held out): codebook 0 names most words in both,
    so the two renderings get mostly the same codebook-0 codes word by word."""
    from duplex_steer.speech.aligned import render_corpus
    from zbb import load_items

    texts = [it["text"] for it in load_items()][:12]
    trained = render_corpus(["flite:awb"], texts, workers=1, progress=False)
    held_out = render_corpus([HELD_OUT_VOICE], texts, workers=1, progress=False)
    acc_trained = tagging_accuracy(committed_codec, list(trained.values()))
    acc_held_out = tagging_accuracy(committed_codec, list(held_out.values()))
    assert acc_trained["word_accuracy"] > 0.8, acc_trained
    assert acc_held_out["word_accuracy"] > 0.5, acc_held_out
    agree = total = 0
    for text in texts:
        a, b = trained.get(("flite:awb", text)), held_out.get((HELD_OUT_VOICE, text))
        if a is None or b is None:
            continue
        tags = [_word_tags(committed_codec, u) for u in (a, b)]
        agree += sum(x == y for x, y in zip(*tags, strict=True))
        total += len(tags[0])
    assert total >= 40 and agree / total > 0.5, (agree, total)


def _word_tags(codec, utt: AlignedUtterance) -> list[str]:
    """The most frequent codebook-0 label over each word's frames."""
    codes = codec.encode(np.pad(utt.audio, (0, FRAME_SAMPLES))[None])[0, 0]
    out = []
    for start, end in utt.spans_s:
        frames = codes[int(start * SAMPLE_RATE) // FRAME_SAMPLES : max(int(start * SAMPLE_RATE) // FRAME_SAMPLES + 1,
                                                                        int(end * SAMPLE_RATE) // FRAME_SAMPLES)]
        out.append(codec.labels[int(torch.mode(frames).values)])
    return out


def test_normalized_words_are_the_codec_classes(world: World) -> None:
    labels = set(class_labels(hearing_texts(world)))
    assert all(set(normalize_words(t)) <= labels for t in user_texts(world))
