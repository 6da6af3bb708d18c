"""The pluggable TTS: espeak-ng output, word-by-word determinism, silence trimming, the registry."""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech import tts as tts_mod
from duplex_steer.speech.tts import (
    ONSET_THRESHOLD,
    EspeakTTS,
    TTSError,
    available_tts,
    get_tts,
    register_tts,
    speech_onset,
    trim_silence,
)

TEN_MS = SAMPLE_RATE // 100  # 240 samples

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng binary not on PATH (Debian package 'espeak-ng'; scripts/setup.sh installs it)",
)


def _burst(n_lead: int, n_speech: int = 4800, n_tail: int = 2400, seed: int = 0) -> np.ndarray:
    """Silence with sub-threshold noise, a 220 Hz tone burst, then silence again."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-0.5, 0.5, n_lead + n_speech + n_tail).astype(np.float32) * ONSET_THRESHOLD
    tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(n_speech) / SAMPLE_RATE).astype(np.float32)
    tone[:1] = 0.0
    noise[n_lead : n_lead + n_speech] += tone
    return noise


@pytest.mark.parametrize("n_lead", [0, 1, 239, 12_000])
def test_trim_silence_puts_onset_within_10ms_on_synthetic_audio(n_lead: int) -> None:
    wav = _burst(n_lead)
    trimmed = trim_silence(wav)
    onset = speech_onset(trimmed)
    assert onset is not None and onset <= TEN_MS
    assert speech_onset(trimmed[::-1]) <= TEN_MS  # trailing noise (below threshold) is cut too
    assert len(trimmed) <= 4800 + 2 * 48


def test_trim_silence_can_keep_the_tail() -> None:
    wav = _burst(3000)
    kept = trim_silence(wav, trailing=False)
    assert len(kept) == len(wav) - (speech_onset(wav) - 48)


def test_trim_silence_rejects_silence() -> None:
    with pytest.raises(TTSError, match="silent"):
        trim_silence(np.zeros(1000, dtype=np.float32))


def test_parse_wav_bytes_ignores_placeholder_sizes() -> None:
    pcm = (np.array([0, 16384, -16384, 32767], dtype="<i2")).tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    header = b"RIFF" + struct.pack("<I", 0x7FFFF000) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    wav, sr = tts_mod.parse_wav_bytes(header + b"data" + struct.pack("<I", 0x7FFFF000) + pcm)
    assert sr == 22050
    np.testing.assert_allclose(wav, [0.0, 0.5, -0.5, 32767 / 32768])


def test_missing_binary_names_the_debian_package() -> None:
    with pytest.raises(TTSError, match="Debian package 'espeak-ng'"):
        EspeakTTS(binary="espeak-ng-not-installed-here").synthesize("hello")


def test_registry_builds_by_name_and_accepts_plugins() -> None:
    assert isinstance(get_tts("espeak-ng", word_by_word=True), EspeakTTS)
    with pytest.raises(TTSError, match="unknown TTS 'nope'"):
        get_tts("nope")

    class Beep:
        name = "beep"

        def synthesize(self, text: str) -> np.ndarray:
            return np.full(len(text) * 100, 0.1, dtype=np.float32)

    register_tts("beep-test", Beep)
    try:
        assert "beep-test" in available_tts()
        assert isinstance(get_tts("beep-test"), tts_mod.TTS)
    finally:
        tts_mod._REGISTRY.pop("beep-test")


@needs_espeak
@pytest.mark.parametrize("word_by_word", [False, True])
def test_espeak_gives_24k_nonsilent_trimmed_speech(word_by_word: bool) -> None:
    wav = EspeakTTS(word_by_word=word_by_word).synthesize("Tell me about the moon.")
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert 0.5 * SAMPLE_RATE < len(wav) < 4 * SAMPLE_RATE
    assert 0.05 < float(np.sqrt(np.mean(wav**2))) and float(np.abs(wav).max()) <= 1.0
    assert speech_onset(wav) <= TEN_MS
    assert speech_onset(wav[::-1]) <= TEN_MS  # trailing silence trimmed too


@needs_espeak
def test_word_by_word_is_byte_identical_across_runs() -> None:
    text = "Penguins, they live in the desert, right?"
    first = EspeakTTS(word_by_word=True).synthesize(text)
    second = EspeakTTS(word_by_word=True).synthesize(text)
    assert first.tobytes() == second.tobytes()


@needs_espeak
def test_word_by_word_first_word_sounds_the_same_in_any_sentence() -> None:
    tts = EspeakTTS(word_by_word=True)
    word = tts.synthesize("Penguins,")
    true_query = tts.synthesize("Penguins, they live in icy places, right?")
    false_query = tts.synthesize("Penguins, they live in the desert, right?")
    assert true_query[: len(word)].tobytes() == word.tobytes() == false_query[: len(word)].tobytes()


@needs_espeak
def test_trim_silence_on_real_speech_with_added_silence() -> None:
    raw = EspeakTTS().speak_untrimmed("What is gravity?")  # untrimmed espeak output
    padded = np.concatenate([np.zeros(SAMPLE_RATE // 3, dtype=np.float32), raw])
    trimmed = trim_silence(padded)
    assert speech_onset(trimmed) <= TEN_MS
    assert speech_onset(padded) - speech_onset(trimmed) >= SAMPLE_RATE // 3


@needs_espeak
def test_settings_record_the_espeak_version() -> None:
    settings = EspeakTTS(word_by_word=True).settings()
    assert settings["word_by_word"] is True and settings["espeak_version"]


@needs_espeak
@pytest.mark.parametrize("word_by_word", [False, True])
def test_espeak_render_gives_word_starts_the_audio_agrees_with(word_by_word: bool) -> None:
    from duplex_steer.speech.timing import check_time, detect_speech_bounds

    text = "Penguins, they live in the desert, right?"
    rendering = EspeakTTS(word_by_word=word_by_word).render(text)
    assert rendering.sample_rate == (SAMPLE_RATE if word_by_word else 22050)  # the library's own rate
    assert len(rendering.word_starts_s) >= len(text.split()) - 1
    assert rendering.word_starts_s[0] == 0.0 and rendering.word_starts_s == sorted(rendering.word_starts_s)
    onset, _ = detect_speech_bounds(rendering.audio, rendering.sample_rate)
    assert check_time(onset, rendering.onset_window_s)["check"] == "ok"
