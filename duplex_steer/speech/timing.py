"""Where speech starts and ends in a rendering: detected from the audio, checked against the engine's timings.

The audio's energy says when sound starts (the first-word onset: the moment a listening model can first
hear the user) and when it ends. A TTS engine that reports timings (festival and flite give phone times,
espeak-ng's library word events) says where its first word and last phone lie; a detected time outside
that window is flagged, because a wrong onset moves the benchmark's interruption moment. Recordings of
people have no engine timings: their detected times are recorded as unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Energy frames of 5 ms; speech must stay above the threshold for 15 ms (a click is not an onset).
FRAME_S = 0.005
MIN_RUN_S = 0.015
# The threshold: 40 dB under the loudest frame, or 12 dB over the noise floor of a recording, whichever is
# higher, but never more than 26 dB under the loudest frame (a file that is nearly all speech has no floor).
PEAK_FLOOR_DB = -40.0
NOISE_MARGIN_DB = 12.0
PEAK_CAP_DB = -26.0
# A detected time may fall this far outside the engine's window (5 ms energy frames, Vorbis smearing).
CHECK_TOLERANCE_S = 0.02


@dataclass(frozen=True)
class Rendering:
    """One synthesized utterance: mono float32 audio at its engine's rate, plus the engine's own timings.

    onset_window_s: (start of the first word, end of its first phone) by the engine, in seconds: the first
    audible sound must fall inside (a plosive's closure is silent, so sound starts after the word does);
    end_window_s: (start, end) of the last phone; word_starts_s: when each word starts. None = not given.
    """

    audio: np.ndarray
    sample_rate: int
    onset_window_s: tuple[float, float] | None = None
    end_window_s: tuple[float, float] | None = None
    word_starts_s: list[float] | None = None


def detect_speech_bounds(wav: np.ndarray, sample_rate: int) -> tuple[float, float] | None:
    """(onset_s, end_s) of the speech in `wav` from its short-time energy; None if it is silent.

    Onset: the start of the first 5 ms frame that begins 15 ms of frames above the threshold; end: the end
    of the last frame that closes such a run. Works on exact-zero TTS silence and on recordings with a
    noise floor (see the module constants); resolution 5 ms.
    """
    wav = np.asarray(wav, dtype=np.float64)
    frame = max(1, int(round(FRAME_S * sample_rate)))
    n = -(-len(wav) // frame)
    if n == 0:
        return None
    padded = np.zeros(n * frame)
    padded[: len(wav)] = wav
    rms = np.sqrt((padded.reshape(n, frame) ** 2).mean(axis=1))
    peak = float(rms.max())
    if peak <= 0.0:
        return None
    noise = float(np.percentile(rms, 5))
    threshold = max(peak * 10 ** (PEAK_FLOOR_DB / 20), noise * 10 ** (NOISE_MARGIN_DB / 20))
    threshold = min(threshold, peak * 10 ** (PEAK_CAP_DB / 20))
    run = min(n, max(1, int(round(MIN_RUN_S / FRAME_S))))
    loud = (rms >= threshold).astype(np.int64)
    starts = np.flatnonzero(np.convolve(loud, np.ones(run, dtype=np.int64), mode="valid") == run)
    if starts.size == 0:
        return None
    onset_frame, last_frame = int(starts[0]), int(starts[-1]) + run - 1
    return onset_frame * frame / sample_rate, min(len(wav), (last_frame + 1) * frame) / sample_rate


def check_time(detected_s: float, window_s: tuple[float, float] | None,
               tolerance_s: float = CHECK_TOLERANCE_S) -> dict[str, Any]:
    """A detected time checked against the engine's window for it.

    Returns {"s": the detected time, "engine_window_s": [lo, hi] or None, "check": "ok" | "flagged" |
    "unchecked"}: "flagged" when the detected time lies more than `tolerance_s` outside the window (the
    engine's timings and its audio disagree: listen to that file), "unchecked" without engine timings.
    """
    if window_s is None:
        return {"s": round(detected_s, 4), "engine_window_s": None, "check": "unchecked"}
    lo, hi = window_s
    inside = lo - tolerance_s <= detected_s <= hi + tolerance_s
    return {"s": round(detected_s, 4), "engine_window_s": [round(lo, 4), round(hi, 4)],
            "check": "ok" if inside else "flagged"}  # fmt: skip
