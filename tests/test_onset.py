"""Onset detectors: causal, hysteresis, gating by model activity, refractory period, false triggers."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_steer.audio import FRAME_SAMPLES
from duplex_steer.speech.dialogues import load_interruption_example
from duplex_steer.steering.onset import (
    CAUSAL_DETECTORS,
    ONLY_WHILE_MODEL_SPEAKS,
    EnergyOnset,
    FalseTriggers,
    OnsetError,
    OracleOnset,
    SileroVADOnset,
    make_detector,
)


def _frames(levels, seed=0):
    """One frame per level: noise at that RMS."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.normal(0, lv, FRAME_SAMPLES) for lv in levels]).astype(np.float32)


def _run(detector, frames, speaking=None):
    return [i for i, f in enumerate(frames) if detector.update(f[None], i, speaking)[0]]


def test_energy_onset_fires_once_per_burst_with_hysteresis():
    levels = [0.001] * 10 + [0.2] * 5 + [0.001] * 10 + [0.2] * 3
    det = EnergyOnset(refractory_frames=0)
    assert _run(det, _frames(levels)) == [10, 25]


def test_energy_onset_is_causal():
    levels = [0.001] * 10 + [0.2] * 5 + [0.001] * 10
    frames = _frames(levels)
    full = _run(EnergyOnset(), frames)
    prefix = _run(EnergyOnset(), frames[:12])
    assert prefix == [f for f in full if f < 12]


def test_refractory_and_model_activity_gating():
    levels = [0.001] * 5 + [0.2] * 2 + [0.001] * 6 + [0.2] * 2
    assert _run(EnergyOnset(refractory_frames=20), _frames(levels)) == [5]
    gated = EnergyOnset(only_while_model_speaks=True, refractory_frames=0)
    assert _run(gated, _frames(levels), speaking=np.array([False])) == []


def test_oracle_and_false_triggers():
    frames = _frames([0.01] * 30)
    assert _run(OracleOnset(frames=[7]), frames) == [7]
    hits = _run(FalseTriggers(rate_hz=2.0, seed=1, refractory_frames=0), _frames([0.01] * 2000))
    assert abs(len(hits) / 2000 - 2.0 * 0.08) < 0.03
    assert hits == _run(FalseTriggers(rate_hz=2.0, seed=1, refractory_frames=0), _frames([0.01] * 2000))


def test_vad_and_energy_find_the_real_interruption_in_the_demo_recording():
    wav, info = load_interruption_example()
    frames = np.pad(wav, (0, (-len(wav)) % FRAME_SAMPLES)).reshape(-1, FRAME_SAMPLES)
    truth = int(info["interruption_onset_s"] * 24_000 // FRAME_SAMPLES)
    for det in (EnergyOnset(), SileroVADOnset()):
        hits = _run(det, frames)
        assert any(abs(h - truth) <= 3 for h in hits), (type(det).__name__, hits, truth)


def test_bad_shapes_and_names():
    with pytest.raises(OnsetError, match="1920"):
        EnergyOnset().update(np.zeros((1, 100)), 0)
    with pytest.raises(OnsetError, match="unknown onset detector"):
        make_detector("psychic")


def test_causal_detectors_fire_only_while_the_model_speaks_by_default():
    levels = [0.001] * 5 + [0.2] * 3
    frames = _frames(levels)
    for name in CAUSAL_DETECTORS:
        assert make_detector(name).only_while_model_speaks is ONLY_WHILE_MODEL_SPEAKS is True
    assert _run(make_detector("energy"), frames, speaking=np.array([False])) == []
    assert _run(make_detector("energy"), frames, speaking=np.array([True])) == [5]
    assert _run(make_detector("energy", only_while_model_speaks=False), frames, speaking=np.array([False])) == [5]
    # the oracle and the false-trigger study are not gated: they fire where they are told
    assert _run(OracleOnset(frames=[6]), frames, speaking=np.array([False])) == [6]
    assert not FalseTriggers().only_while_model_speaks
