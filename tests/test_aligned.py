"""duplex_steer.speech.aligned (and word_spans): sentence speech with word spans from flite, festival, espeak-ng."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech.aligned import (
    AlignedUtterance,
    VoiceSpec,
    normalize_words,
    parse_voice,
    render_aligned,
    render_corpus,
)
from duplex_steer.speech.tts import TTSError
from duplex_steer.speech.word_spans import split_phones_by_word

ENGINE_BINARIES = {"flite": "flite", "festival": "festival", "espeak-ng": "espeak-ng"}
VOICES = ["flite:kal", "festival:kal", "espeak-ng:en-us"]  # the fastest voice of each engine
SENTENCES = ["Cows, they give us milk.", "Penguins live in icy places, right?"]


def missing_engines(*voice_ids: str) -> list[str]:
    return sorted({b for v in voice_ids if shutil.which(b := ENGINE_BINARIES[v.split(":")[0]]) is None})


def needs(*voice_ids: str) -> pytest.MarkDecorator:
    missing = missing_engines(*voice_ids)
    return pytest.mark.skipif(bool(missing), reason=f"not installed: {', '.join(missing)}")


def skip_without(voice_id: str) -> None:
    if missing := missing_engines(voice_id):
        pytest.skip(f"not installed: {', '.join(missing)}")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0


def piece(utt: AlignedUtterance, start_s: float, end_s: float) -> np.ndarray:
    return utt.audio[int(start_s * SAMPLE_RATE) : int(end_s * SAMPLE_RATE)]


def test_normalize_words_keeps_lowercase_letters_and_inner_apostrophes() -> None:
    assert normalize_words("Um, excuse me, Penguins, they live in icy places, right?") == [
        "um", "excuse", "me", "penguins", "they", "live", "in", "icy", "places", "right",
    ]  # fmt: skip
    assert normalize_words("Don't stop-gap 3 'quoted' cafés!") == ["don't", "stop", "gap", "quoted", "cafés"]


def test_parse_voice_accepts_each_engine_and_names_the_valid_ones_otherwise() -> None:
    assert parse_voice("flite:rms") == VoiceSpec("flite", "rms")
    assert parse_voice("festival:slt-hts") == VoiceSpec("festival", "slt-hts")
    for bad in ["flite", "sapi:anna", "flite:bob", "festival:awb"]:
        with pytest.raises(TTSError, match="flite:<kal.*festival:<slt-hts"):
            parse_voice(bad)
    with pytest.raises(TTSError, match="words per minute in 80-450"):
        parse_voice("espeak-ng:en-us@20")


@needs("espeak-ng:en-us")
def test_parse_voice_resolves_espeak_voices_variants_and_rates() -> None:
    assert parse_voice("espeak-ng:en-us") == VoiceSpec("espeak-ng", "en-us", 175)
    assert parse_voice("espeak-ng:en-gb+f2@140") == VoiceSpec("espeak-ng", "en-gb+f2", 140)
    with pytest.raises(TTSError, match="no voice 'xx-nowhere'"):
        parse_voice("espeak-ng:xx-nowhere")
    with pytest.raises(TTSError, match="no variant 'zz9'"):
        parse_voice("espeak-ng:en-us+zz9")


def test_phones_split_by_word_allow_same_class_substitutions_only() -> None:
    # "the cat": the reduced vowel differs from the looked-up one (vowel for vowel): accepted
    assert split_phones_by_word(["dh", "ax", "k", "ae", "t"], [["dh", "iy"], ["k", "ae", "t"]]) == [0, 2]
    # one phone too many in total: refused
    assert split_phones_by_word(["dh", "ax", "k", "ae", "t", "s"], [["dh", "iy"], ["k", "ae", "t"]]) is None
    # same count, but the words' phones would be shifted (a consonant where a vowel was looked up): refused
    assert split_phones_by_word(["dh", "k", "ax", "ae", "t"], [["dh", "iy"], ["k", "ae", "t"]]) is None


@pytest.mark.parametrize("voice_id", VOICES)
def test_each_engine_gives_one_increasing_span_per_word_inside_the_audio(voice_id: str) -> None:
    skip_without(voice_id)
    utterances = render_aligned(voice_id, SENTENCES)
    for text, utt in zip(SENTENCES, utterances, strict=True):
        assert utt is not None and utt.text == text and utt.voice == voice_id
        assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
        assert utt.words == normalize_words(text) and len(utt.spans_s) == len(utt.words)
        duration = len(utt.audio) / SAMPLE_RATE
        bounds = [t for span in utt.spans_s for t in span]
        assert bounds == sorted(bounds) and all(end > start for start, end in utt.spans_s)
        assert 0.0 <= bounds[0] < 0.1 and bounds[-1] <= duration
        # trimmed like the engines' synthesize: the first sound is 2 ms in, a little tail after the last word
        assert int(np.flatnonzero(np.abs(utt.audio) >= 0.02)[0]) == int(0.002 * SAMPLE_RATE)
        assert 0.0 <= duration - bounds[-1] <= 0.2


@pytest.mark.parametrize("voice_id", VOICES)
def test_words_have_sound_and_the_comma_pause_between_them_is_quieter(voice_id: str) -> None:
    skip_without(voice_id)
    utt = render_aligned(voice_id, ["Cows, they give us milk."])[0]
    assert utt is not None
    word_levels = [rms(piece(utt, start, end)) for start, end in utt.spans_s]
    assert min(word_levels) > 0.01
    (_, cows_end), (they_start, _) = utt.spans_s[:2]
    assert they_start - cows_end >= 0.04  # every engine pauses at the comma, outside both spans
    assert rms(piece(utt, cows_end, they_start)) < 0.1 * min(word_levels)


@needs("flite:kal")
def test_flite_word_spans_agree_with_the_words_spoken_alone() -> None:
    """Each noun's span in a list lasts 0.75-1.33x as long as the noun spoken alone by the same voice.

    In a comma-separated list every noun is a phrase of its own, spoken as when alone but for phrase-final
    lengthening (0.82-1.24x observed with kal and rms); a span that took or lost a phone of a neighbour
    (each ~60-120 ms, a fifth to a third of these words) would leave that band.
    """
    utt = render_aligned("flite:kal", ["Penguins, cows, whales, submarines, rockets, tomatoes."])[0]
    assert utt is not None
    for word, (start, end) in zip(utt.words, utt.spans_s, strict=True):
        out = subprocess.run(["flite", "-voice", "kal", "-t", word, "-o", "none", "-psdur"],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        phones = [(name, float(t)) for name, t in re.findall(r"(\S+):([0-9.]+)", out)]
        spoken = [i for i, (name, _) in enumerate(phones) if name != "pau"]
        alone = phones[spoken[-1]][1] - phones[spoken[0] - 1][1]
        assert 0.75 < (end - start) / alone < 1.33, (word, end - start, alone)


@needs(*VOICES)
def test_render_corpus_is_the_same_with_two_workers_and_skips_what_it_cannot_align() -> None:
    texts = [*SENTENCES, "I have 3 cats."]  # the engines read "3" as a word we do not have: skipped
    with pytest.warns(UserWarning, match="1 of 3 texts skipped"):
        one = render_corpus(VOICES, texts, workers=1, progress=False)
    with pytest.warns(UserWarning, match="1 of 3 texts skipped"):
        two = render_corpus(VOICES, texts, workers=2, progress=False)
    assert list(one) == [(v, t) for v in VOICES for t in SENTENCES] == list(two)
    for key, utt in one.items():
        assert np.array_equal(utt.audio, two[key].audio) and utt.spans_s == two[key].spans_s
