"""espeak-ng's C library (libespeak-ng, installed with the espeak-ng package) through ctypes: a whole
sentence in one go, with the library's word events (the sample where each word starts).

The command-line binary gives no word timings; the library reports one WORD event per word with its audio
position, which is what a sentence-level rendering needs for its first-word onset.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache

import numpy as np

from duplex_steer.speech.espeak_isolated import (
    AUDIO_OUTPUT_RETRIEVAL,
    EVENT_LIST_TERMINATED,
    EVENT_WORD,
    Callback,
    speak,
)
from duplex_steer.speech.timing import Rendering

# espeak-ng's first word event marks the word's start; its first sound follows within this (a short
# utterance-initial pause, then a plosive's silent closure).
FIRST_SOUND_WITHIN_S = 0.15


class _Collector:
    """Receives the library's audio chunks and word events during one synthesis."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.word_samples: list[int] = []

    def __call__(self, wav, n_samples: int, events) -> int:
        if n_samples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            if events[i].type == EVENT_WORD:
                self.word_samples.append(int(events[i].sample))
            i += 1
        return 0


@lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL, int] | None:
    """(the loaded library, its sample rate), or None when libespeak-ng is not installed."""
    name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, None, 0)
    return (lib, int(sample_rate)) if sample_rate > 0 else None


def library_available() -> bool:
    """Whether libespeak-ng can be loaded (it comes with the espeak-ng Debian package)."""
    return _library() is not None


def render_sentence(text: str, voice: str, rate_wpm: int, pitch: int, amplitude: int) -> Rendering | None:
    """Speak `text` in one go with the library; the audio at its own rate with each word's start time.

    Returns None when the library is missing; raises RuntimeError when it refuses the voice or the text.
    """
    loaded = _library()
    if loaded is None:
        return None
    lib, sample_rate = loaded
    collector = _Collector()
    status = speak(lib, Callback(collector), text, voice, rate_wpm, pitch, amplitude)
    if status is None:
        raise RuntimeError(f"espeak-ng has no voice {voice!r} (list them with: espeak-ng --voices)")
    if status != 0 or not collector.chunks:
        raise RuntimeError(f"espeak-ng's library failed (status {status}) on {text!r}")
    audio = np.concatenate(collector.chunks).astype(np.float32) / 32768.0
    starts = [s / sample_rate for s in collector.word_samples]
    window = (starts[0], starts[0] + FIRST_SOUND_WITHIN_S) if starts else None
    return Rendering(audio, sample_rate, onset_window_s=window, word_starts_s=starts)
