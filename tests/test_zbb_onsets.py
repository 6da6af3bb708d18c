"""zbb.onsets: the query's first speech, per-record latency fields, the report's onset source and latency table."""

from __future__ import annotations

import numpy as np
import pytest

from zbb.onsets import QueryOnsets, onset_fields, onset_markdown, onset_source, summarize_onsets


def test_query_onsets_snap_each_rendering_once():
    query = np.concatenate([np.zeros(12_000, np.float32), 0.2 * np.ones(24_000, np.float32)])
    cache = QueryOnsets()
    first = cache.get(("penguins-true", False), query)
    assert first.onset_s == pytest.approx(0.5) and first.frame == 6
    assert cache.get(("penguins-true", False), np.zeros(10, np.float32)) is first  # cached by key


def test_onset_fields_latency_for_detected_injections_only():
    onset = QueryOnsets().get("q", np.concatenate([np.zeros(12_000, np.float32), 0.2 * np.ones(24_000, np.float32)]))
    assert onset_fields(40, onset, [48], "steer") == {"speech_onset_frame": 46, "query_speech_s": 0.5,
                                                      "onset_latency_frames": 2}
    assert onset_fields(40, onset, [44], "random")["onset_latency_frames"] == -2  # fired early
    assert onset_fields(40, onset, [], "steer")["onset_latency_frames"] is None  # a miss
    assert onset_fields(40, onset, [80], "mistimed")["onset_latency_frames"] is None  # not an onset
    assert onset_fields(None, onset, [], None)["speech_onset_frame"] is None


def test_summary_and_markdown():
    records = [
        {"condition": "interrupt+steer", "onset_latency_frames": 0},
        {"condition": "interrupt+steer", "onset_latency_frames": 2},
        {"condition": "interrupt+steer", "onset_latency_frames": -1},
        {"condition": "interrupt+steer", "onset_latency_frames": None},
        {"condition": "interrupt+random", "onset_latency_frames": 1},
        {"condition": "interrupt+mistimed", "onset_latency_frames": None},
        {"condition": "interrupt", "onset_latency_frames": None},
        {"condition": "interrupt+steer"},  # a record written before onsets were measured: skipped
    ]
    summary = summarize_onsets(records)
    assert summary == {
        "interrupt+steer": {"n": 4, "misses": 1, "early": 1, "median_frames": 0.0, "p90_frames": pytest.approx(1.6)},
        "interrupt+random": {"n": 1, "misses": 0, "early": 0, "median_frames": 1.0, "p90_frames": 1.0},
    }
    source = onset_source("energy", True)
    assert source == "energy detector (causal, fires only while the model speaks; armed after the context)"
    assert "fires whenever the user sounds" in onset_source("vad", False)
    assert onset_source("oracle", True).startswith("oracle")
    md = onset_markdown(source, summary)
    assert f"Onset source: {source}." in md and "| interrupt+steer | 4 | 0 | 1.6 | 1 | 1 |" in md
