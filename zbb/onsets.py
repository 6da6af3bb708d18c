"""Onsets in ZBB runs: where the user's speech really starts, which source steered, and how late it was.

ZBB's oracle onset is the query's placement: the frame where its audio begins (the manifest says each
rendering starts 2 ms after its first sample, for espeak-ng). It is snapped to speech by the rule of
`duplex_steer.steering.snap` on the query's own audio, so a rendering that opens on silence (another
TTS engine, a recorded query) does not make the oracle early. Every steered record keeps both frames
and the latency of the onset that steered it (steer onset - speech onset, in 80 ms frames: 0 for the
oracle, negative for a detector that fired early, None for a miss); the report states the source and
the latency's median and 90th percentile per condition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.steering.snap import SnappedOnset, snap_onset

from .scenario import split_condition

DETECTED = ("steer", "random")  # injections that start at the onset source's onset (not the mistimed control)


class QueryOnsets:
    """Each query rendering's first speech (seconds into the file), snapped once and cached by key."""

    def __init__(self) -> None:
        self._cache: dict[Any, SnappedOnset] = {}

    def get(self, key: Any, query: np.ndarray) -> SnappedOnset:
        if key not in self._cache:
            self._cache[key] = snap_onset(query, SAMPLE_RATE, 0.0, len(query) / SAMPLE_RATE)
        return self._cache[key]


def onset_source(onset: str, only_while_model_speaks: bool, delay_frames: int = 0) -> str:
    """One line naming what decided when steering starts (and the oracle's deliberate delay, if any)."""
    if onset == "oracle":
        delay = (f", delayed on purpose by {delay_frames} frame{'s' if delay_frames != 1 else ''} "
                 f"({delay_frames * 80} ms)" if delay_frames else "")
        return "oracle: the query's placement snapped to its first speech" + delay
    gate = "fires only while the model speaks" if only_while_model_speaks else "fires whenever the user sounds"
    name = {"energy": "energy detector", "vad": "Silero VAD detector"}.get(onset, onset)
    return f"{name} (causal, {gate}; armed after the context)"


def onset_fields(placed_frame: int | None, query_onset: SnappedOnset, steer_onsets: Sequence[int],
                 injection: str | None) -> dict[str, Any]:
    """Per-record fields: the speech onset frame, the placement shift and the steering onset's latency."""
    if placed_frame is None:
        return {"speech_onset_frame": None, "query_speech_s": query_onset.onset_s, "onset_latency_frames": None}
    speech = placed_frame + query_onset.frame
    latency = steer_onsets[0] - speech if steer_onsets and injection in DETECTED else None
    return {"speech_onset_frame": speech, "query_speech_s": query_onset.onset_s, "onset_latency_frames": latency}


def summarize_onsets(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per condition that steers from the onset: n, misses, early triggers, latency median and p90 (frames)."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        if split_condition(r["condition"])[1] not in DETECTED or "onset_latency_frames" not in r:
            continue
        entry = out.setdefault(r["condition"], {"n": 0, "misses": 0, "latencies": []})
        entry["n"] += 1
        if r["onset_latency_frames"] is None:
            entry["misses"] += 1
        else:
            entry["latencies"].append(int(r["onset_latency_frames"]))
    for entry in out.values():
        lat = entry.pop("latencies")
        entry["early"] = sum(v < 0 for v in lat)
        entry["median_frames"] = float(np.median(lat)) if lat else None
        entry["p90_frames"] = float(np.percentile(lat, 90)) if lat else None
    return out


def onset_markdown(source: str, summary: Mapping[str, Mapping[str, Any]]) -> str:
    """The report's onset section: the source and its measured latency per steered condition."""
    lines = ["", f"Onset source: {source}. Latency = steering onset - the query's first speech, in 80 ms "
             "frames (per item in items.csv, `onset_latency_frames`):", "",
             "| condition | n | latency median | latency p90 | early | misses |", "|---|---|---|---|---|---|"]
    for cond, e in summary.items():
        med = "n/a" if e["median_frames"] is None else f"{e['median_frames']:g}"
        p90 = "n/a" if e["p90_frames"] is None else f"{e['p90_frames']:g}"
        lines.append(f"| {cond} | {e['n']} | {med} | {p90} | {e['early']} | {e['misses']} |")
    return "\n".join(lines) + "\n"


__all__ = ["DETECTED", "QueryOnsets", "onset_fields", "onset_markdown", "onset_source", "summarize_onsets"]
