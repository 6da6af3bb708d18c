"""Oracle onsets snapped to speech: an annotated interruption start moved to where the user's voice begins.

Annotations (Full-Duplex-Bench's interrupt.json, a recording's JSON, a ZBB query's placement) mark a
span [start, end] that may open on silence: on FDB's user-interruption item 1 the span starts at
10.53 s and the user's first sound is at 11.10 s. Steering 3 frames (240 ms) from the annotation
would end before the first word: the mistimed control, labelled as steering. The rule (`SnapRule`),
on the span's own audio, causal knowledge not required (it is an oracle):

1. RMS in 10 ms windows over [start, end] (end defaults to start + `DEFAULT_SEARCH_S`);
2. threshold = max(`min_rms`, floor x 10^(`margin_db`/20), level x 10^(-`depth_db`/20)), where the
   floor is the 10th percentile of the whole recording's window RMS (its noise; a span that is all
   speech has none of its own) and the level the 95th percentile of the span's: 12 dB above the
   recording's noise, within 30 dB of the span's own speech, never below an absolute -54 dBFS;
3. the onset is the start of the first run of at least `min_speech_s` (30 ms) of windows above the
   threshold (shorter clicks are skipped);
4. its 80 ms frame is the frame holding that moment, floor(onset_s / 0.08), the convention of
   `probes.activity.turn_onsets`.

If nothing qualifies (a silent or too short span, a start past the end of the recording) the
annotation is kept, `SnappedOnset.found` is False and an `OnsetSnapWarning` is issued.
`recording_annotation` reads the annotated span of a recording from the JSON beside it.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import FRAME_RATE
from .onset import OnsetError

DEFAULT_SEARCH_S = 2.0  # how far after an annotated start to look when no end is annotated


class OnsetSnapWarning(UserWarning):
    """An annotated onset could not be snapped to speech; the annotation is used as it is."""


@dataclass(frozen=True)
class SnapRule:
    """The thresholds of the snapping rule (see the module docstring)."""

    window_s: float = 0.01
    min_rms: float = 0.002
    margin_db: float = 12.0
    depth_db: float = 30.0
    floor_percentile: float = 10.0
    level_percentile: float = 95.0
    min_speech_s: float = 0.03

    def describe(self) -> str:
        return (f"first run of >= {self.min_speech_s * 1000:.0f} ms of {self.window_s * 1000:.0f} ms windows "
                f"inside the annotated span with RMS > max({self.min_rms}, recording noise floor "
                f"+{self.margin_db:.0f} dB, span level -{self.depth_db:.0f} dB); annotation kept if none")


@dataclass
class SnappedOnset:
    """An annotated onset and where speech really starts inside its span (seconds of the recording)."""

    annotated_s: float
    annotated_end_s: float
    onset_s: float  # the snapped onset; equals annotated_s when nothing was found
    found: bool
    rule: SnapRule = field(default_factory=SnapRule)
    snapped: bool = True  # False: the annotation used as given, the rule not applied (`as_annotated`)

    @classmethod
    def as_annotated(cls, start_s: float, end_s: float | None = None) -> SnappedOnset:
        """The annotation itself as the onset (no snapping asked for)."""
        return cls(float(start_s), float(start_s if end_s is None else end_s), float(start_s), False, snapped=False)

    @property
    def frame(self) -> int:
        """The 80 ms frame holding the snapped onset (where steering starts)."""
        return int(math.floor(self.onset_s * FRAME_RATE + 1e-9))

    @property
    def annotated_frame(self) -> int:
        return int(math.floor(self.annotated_s * FRAME_RATE + 1e-9))

    def to_json(self) -> dict[str, Any]:
        return {"annotated_s": self.annotated_s, "annotated_end_s": self.annotated_end_s,
                "annotated_frame": self.annotated_frame, "onset_s": self.onset_s, "frame": self.frame,
                "shift_s": self.onset_s - self.annotated_s, "found": self.found, "snapped": self.snapped,
                "rule": self.rule.describe() if self.snapped else "annotation used as given",
                "rule_settings": asdict(self.rule) if self.snapped else None}


def snap_onset(wav: np.ndarray, sample_rate: int, start_s: float, end_s: float | None = None,
               rule: SnapRule | None = None, warn: bool = True) -> SnappedOnset:
    """Move the annotated onset `start_s` to the first speech inside [start_s, end_s] of mono `wav`."""
    rule = rule or SnapRule()
    if start_s < 0 or (end_s is not None and end_s < start_s):
        raise OnsetError(f"an annotated span must satisfy 0 <= start <= end, got [{start_s}, {end_s}]")
    end_s = start_s + DEFAULT_SEARCH_S if end_s is None else end_s
    wav = np.asarray(wav, dtype=np.float64)
    if wav.ndim != 1:
        raise OnsetError(f"snap_onset takes a mono waveform, got shape {wav.shape}")
    hop = max(1, round(rule.window_s * sample_rate))
    first = int(round(start_s * sample_rate))
    rms = _window_rms(wav[first : int(round(end_s * sample_rate))], hop)
    onset = None
    if len(rms):
        floor = float(np.percentile(_window_rms(wav, hop), rule.floor_percentile))
        level = float(np.percentile(rms, rule.level_percentile))
        threshold = max(rule.min_rms, floor * 10 ** (rule.margin_db / 20), level * 10 ** (-rule.depth_db / 20))
        need = max(1, math.ceil(rule.min_speech_s / rule.window_s - 1e-9))
        run = 0
        for i, loud in enumerate(rms > threshold):
            run = run + 1 if loud else 0
            if run >= need:
                onset = (first + (i - need + 1) * hop) / sample_rate
                break
    if onset is None:
        if warn:
            warnings.warn(f"no speech found in the annotated span [{start_s:.2f}, {end_s:.2f}] s; "
                          "using the annotated onset as it is", OnsetSnapWarning, stacklevel=2)
        return SnappedOnset(float(start_s), float(end_s), float(start_s), False, rule)
    return SnappedOnset(float(start_s), float(end_s), float(onset), True, rule)


def recording_annotation(recording: str | Path) -> tuple[float, float | None] | None:
    """The annotated interruption span of a recording, from the JSON beside it (`interruption_onset_s`,
    and the end of the turn that starts there, if one is listed); None when there is no annotation."""
    meta = Path(recording).with_suffix(".json")
    if not meta.is_file():
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise OnsetError(f"{meta} is not valid JSON; fix it or give the onset in seconds") from None
    if not isinstance(data, dict) or "interruption_onset_s" not in data:
        return None
    start = float(data["interruption_onset_s"])
    ends = [float(t["end_s"]) for t in data.get("turns", [])
            if isinstance(t, dict) and "end_s" in t and abs(float(t.get("start_s", -1)) - start) < 1e-6]
    return start, (ends[0] if ends else None)


def _window_rms(wav: np.ndarray, hop: int) -> np.ndarray:
    n = len(wav) // hop
    return np.sqrt((wav[: n * hop].reshape(n, hop) ** 2).mean(1))


__all__ = ["DEFAULT_SEARCH_S", "OnsetSnapWarning", "SnapRule", "SnappedOnset", "recording_annotation", "snap_onset"]
