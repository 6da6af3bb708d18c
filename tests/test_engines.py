"""flite and festival: each renders a whole sentence with its own timings, which the audio agrees with."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech import get_tts
from duplex_steer.speech.engines import FestivalTTS, FliteTTS, phone_windows, word_starts
from duplex_steer.speech.timing import check_time, detect_speech_bounds
from duplex_steer.speech.tts import TTSError, available_tts, speech_onset

SENTENCE = "Um, excuse me, Penguins, they live in the desert, right?"


def _needs(binary: str, package: str):
    return pytest.mark.skipif(shutil.which(binary) is None,
                              reason=f"'{binary}' not on PATH (Debian package '{package}'; scripts/setup.sh installs it)")


def _assert_sentence(rendering) -> None:
    audio, rate = rendering.audio, rendering.sample_rate
    assert audio.dtype == np.float32 and audio.ndim == 1 and rate in (8000, 16000, 22050, 32000, 48000)
    assert 2.5 < len(audio) / rate < 6.0  # one utterance of 10 words, not word-by-word concatenation
    onset, end = detect_speech_bounds(audio, rate)
    assert check_time(onset, rendering.onset_window_s)["check"] == "ok"
    assert check_time(end, rendering.end_window_s)["check"] == "ok"


@_needs("flite", "flite")
@pytest.mark.parametrize("voice", ["slt", "awb", "rms", "kal"])
def test_flite_renders_a_sentence_with_phone_timings(voice: str) -> None:
    _assert_sentence(FliteTTS(voice=voice).render(SENTENCE))


@_needs("festival", "festival")
@pytest.mark.parametrize("voice", ["slt-hts", "kal"])
def test_festival_renders_a_sentence_with_phone_and_word_timings(voice: str) -> None:
    tts = FestivalTTS(voice=voice)
    rendering = tts.render(SENTENCE)
    _assert_sentence(rendering)
    assert len(rendering.word_starts_s) == len(SENTENCE.split())
    assert rendering.word_starts_s == sorted(rendering.word_starts_s)
    # the subject ("Penguins") starts after the pause at "me,": its sound follows within 0.2 s
    subject = rendering.word_starts_s[3]
    rate = rendering.sample_rate
    after = detect_speech_bounds(rendering.audio[int(subject * rate) :], rate)[0]
    assert after < 0.2
    assert tts.settings()["festival_voice"] in ("cmu_us_slt_arctic_hts", "kal_diphone")


@_needs("festival", "festival")
def test_festival_renders_many_in_one_process_and_synthesizes_24k() -> None:
    first, second = FestivalTTS().render_many(["Owls, they sleep at night, right?", "Tell me about music."])
    assert len(first.audio) != len(second.audio)
    wav = FestivalTTS().synthesize("Tell me about music.")
    assert speech_onset(wav) <= SAMPLE_RATE // 100


def test_missing_binaries_name_their_debian_package() -> None:
    with pytest.raises(TTSError, match="Debian package 'flite'"):
        FliteTTS(binary="flite-not-installed-here").render("hello")
    with pytest.raises(TTSError, match="Debian package 'festival'"):
        FestivalTTS(binary="festival-not-installed-here").render("hello")


@_needs("flite", "flite")
def test_unknown_flite_voice_lists_the_voices() -> None:
    with pytest.raises(TTSError, match="flite has no voice 'nobody'.*slt"):
        FliteTTS(voice="nobody").render("hello")


@_needs("festival", "festival")
def test_unknown_festival_voice_is_one_clear_error() -> None:
    with pytest.raises(TTSError, match="festival did not render .* voice 'nobody'"):
        FestivalTTS(voice="nobody").render("hello")


def test_engines_are_registered_by_name() -> None:
    assert {"espeak-ng", "flite", "festival"} <= set(available_tts())
    assert get_tts("flite", voice="awb") == FliteTTS(voice="awb")
    assert get_tts("festival", voice="kal").festival_voice == "kal_diphone"


def test_phone_windows_and_word_starts_from_engine_times() -> None:
    phones = [("pau", 0.2), ("p", 0.3), ("eh", 0.4), ("pau", 0.6), ("t", 0.7), ("pau", 0.9)]
    assert phone_windows(phones) == ((0.2, 0.3), (0.6, 0.7))
    assert word_starts([("pen", 0.4), ("t", 0.7)], phones) == [0.2, 0.6]
    with pytest.raises(TTSError, match="no spoken phone"):
        phone_windows([("pau", 0.3)])
