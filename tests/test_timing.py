"""Speech onset and end detection, and its check against an engine's own timings."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_steer.speech.timing import FRAME_S, check_time, detect_speech_bounds

RATE = 16_000


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    """A speech-like signal: a 180 Hz buzz with a syllable-rate envelope, never quieter than -20 dB."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4 * t) ** 2
    rng = np.random.default_rng(seed)
    return (0.3 * envelope * np.sign(np.sin(2 * np.pi * 180 * t)) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.mark.parametrize("noise_db", [None, -60.0, -45.0])
def test_known_silence_prepended_moves_the_onset_by_exactly_that(noise_db: float | None) -> None:
    speech = _speech(1.2)
    lead, tail = 0.5, 0.3
    wav = np.concatenate([np.zeros(int(lead * RATE)), speech, np.zeros(int(tail * RATE))]).astype(np.float32)
    if noise_db is not None:  # a recording's noise floor under everything
        wav += (10 ** (noise_db / 20) * np.random.default_rng(1).standard_normal(len(wav))).astype(np.float32)
    onset, end = detect_speech_bounds(wav, RATE)
    assert abs(onset - lead) <= FRAME_S
    assert abs(end - (lead + 1.2)) <= FRAME_S


def test_a_click_is_not_an_onset_and_silence_has_none() -> None:
    wav = np.zeros(RATE, np.float32)
    assert detect_speech_bounds(wav, RATE) is None
    wav[1000:1010] = 0.9  # a 0.6 ms click, then speech at 0.5 s
    wav[RATE // 2 :] = _speech(0.5)
    assert detect_speech_bounds(wav, RATE)[0] == pytest.approx(0.5, abs=FRAME_S)


def test_check_against_the_engine_window() -> None:
    assert check_time(0.25, (0.2, 0.3)) == {"s": 0.25, "engine_window_s": [0.2, 0.3], "check": "ok"}
    assert check_time(0.315, (0.2, 0.3))["check"] == "ok"  # within the 20 ms tolerance
    assert check_time(0.35, (0.2, 0.3))["check"] == "flagged"
    assert check_time(0.1, (0.2, 0.3))["check"] == "flagged"
    assert check_time(0.1, None) == {"s": 0.1, "engine_window_s": None, "check": "unchecked"}
