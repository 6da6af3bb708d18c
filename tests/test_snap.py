"""Oracle onsets snapped to speech: the real FDB item, silence then tone, speech from the start, a silent span."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from duplex_steer.steering.onset import OnsetError
from duplex_steer.steering.snap import (
    OnsetSnapWarning,
    SnappedOnset,
    SnapRule,
    recording_annotation,
    snap_onset,
)
from tests.conftest import fixture_dir

SR = 24_000


def _tone(seconds: float, level: float = 0.2, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sqrt(2) * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _noise(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, level, int(seconds * SR)).astype(np.float32)


def test_real_fdb_item_snaps_from_the_annotation_to_the_first_word():
    folder = fixture_dir("fdb-user-interruption-example") / "1"
    start, end = json.loads((folder / "interrupt.json").read_text())[0]["timestamp"]
    wav, rate = sf.read(str(folder / "input.wav"), dtype="float32")
    snapped = snap_onset(wav, rate, start, end)
    assert snapped.found and snapped.annotated_s == start and snapped.annotated_end_s == end
    assert snapped.onset_s == pytest.approx(11.10, abs=0.02)  # silent (RMS <= 0.0005) until 11.09 s
    assert snapped.annotated_frame == 131 and snapped.frame == 138  # 10.48 s -> 11.04 s
    record = snapped.to_json()
    assert record["annotated_s"] == start and record["frame"] == 138 and record["found"] is True


def test_silence_then_tone_snaps_to_the_tone():
    wav = np.concatenate([_noise(1.0, 1e-4), _noise(0.5, 1e-4, 1), _tone(1.0)])
    snapped = snap_onset(wav, SR, 1.0, 2.5)
    assert snapped.found and snapped.onset_s == pytest.approx(1.5, abs=0.011)
    assert snapped.frame == 18  # 1.44-1.52 s holds 1.5 s


def test_short_click_is_skipped():
    wav = np.concatenate([np.zeros(SR // 2, np.float32), _tone(0.02), np.zeros(SR // 2, np.float32), _tone(0.5)])
    snapped = snap_onset(wav, SR, 0.0, len(wav) / SR)
    assert snapped.onset_s == pytest.approx(1.02, abs=0.011)


def test_speech_from_the_annotated_start_keeps_it():
    wav = np.concatenate([np.zeros(SR, np.float32), _tone(1.0)])
    snapped = snap_onset(wav, SR, 1.0, 2.0)
    assert snapped.found and snapped.onset_s == 1.0 and snapped.frame == snapped.annotated_frame == 12


def test_nothing_in_the_span_keeps_the_annotation_and_warns():
    wav = np.concatenate([_tone(1.0), _noise(1.0, 1e-3), _tone(1.0)])
    with pytest.warns(OnsetSnapWarning, match="no speech found"):
        snapped = snap_onset(wav, SR, 1.0, 2.0)
    assert not snapped.found and snapped.onset_s == 1.0
    with pytest.warns(OnsetSnapWarning):  # a start past the end of the recording
        assert not snap_onset(wav, SR, 5.0).found


def test_default_search_window_and_bad_spans():
    wav = np.concatenate([np.zeros(3 * SR, np.float32), _tone(1.0)])
    with pytest.warns(OnsetSnapWarning):  # the tone is 3 s after the start: past the default 2 s window
        assert not snap_onset(wav, SR, 0.0).found
    assert snap_onset(wav, SR, 1.5).onset_s == pytest.approx(3.0)
    assert snap_onset(wav, SR, 0.0, rule=SnapRule(min_speech_s=0.01), end_s=4.0).onset_s == pytest.approx(3.0)
    with pytest.raises(OnsetError, match="start <= end"):
        snap_onset(wav, SR, 2.0, 1.0)
    with pytest.raises(OnsetError, match="mono"):
        snap_onset(np.zeros((2, SR)), SR, 0.0)


def test_recording_annotation_and_the_annotation_as_given(tmp_path):
    wav = tmp_path / "rec.wav"
    assert recording_annotation(wav) is None  # no JSON beside it
    wav.with_suffix(".json").write_text(json.dumps({"interruption_onset_s": 3.12, "turns": [
        {"role": "question", "start_s": 0.0, "end_s": 1.6}, {"role": "interruption", "start_s": 3.12, "end_s": 6.26}]}))
    assert recording_annotation(wav) == (3.12, 6.26)
    wav.with_suffix(".json").write_text(json.dumps({"interruption_onset_s": 3.12}))
    assert recording_annotation(wav) == (3.12, None)
    wav.with_suffix(".json").write_text("{not json")
    with pytest.raises(OnsetError, match="not valid JSON"):
        recording_annotation(wav)
    given = SnappedOnset.as_annotated(10.53, 13.14)
    assert given.onset_s == 10.53 and given.frame == 131 and not given.snapped
    assert given.to_json()["rule"] == "annotation used as given"
