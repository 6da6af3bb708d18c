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

from duplex_steer.speech.timing import Rendering

_AUDIO_OUTPUT_RETRIEVAL = 1
_POS_CHARACTER = 1
_ESPEAK_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD = 0, 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH = 1, 2, 3
# espeak-ng's first word event marks the word's start; its first sound follows within this (a short
# utterance-initial pause, then a plosive's silent closure).
FIRST_SOUND_WITHIN_S = 0.15


class _Event(ctypes.Structure):
    """espeak_EVENT from speak_lib.h (the trailing union is one pointer wide)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_void_p)]  # fmt: skip


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Collector:
    """Receives the library's audio chunks and word events during one synthesis."""

    def __init__(self) -> None:
        self.chunks: list[np.ndarray] = []
        self.word_samples: list[int] = []

    def __call__(self, wav, n_samples: int, events) -> int:
        if n_samples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_WORD:
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
    sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_RETRIEVAL, 0, None, 0)
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
    callback = _Callback(collector)  # kept referenced until synthesis ends
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise RuntimeError(f"espeak-ng has no voice {voice!r} (list them with: espeak-ng --voices)")
    for param, value in ((_PARAM_RATE, rate_wpm), (_PARAM_PITCH, pitch), (_PARAM_VOLUME, amplitude)):
        lib.espeak_SetParameter(param, value, 0)
    data = text.encode("utf-8")
    buffer = ctypes.create_string_buffer(data)
    status = lib.espeak_Synth(buffer, len(data) + 1, 0, _POS_CHARACTER, 0, _ESPEAK_CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    if status != 0 or not collector.chunks:
        raise RuntimeError(f"espeak-ng's library failed (status {status}) on {text!r}")
    audio = np.concatenate(collector.chunks).astype(np.float32) / 32768.0
    starts = [s / sample_rate for s in collector.word_samples]
    window = (starts[0], starts[0] + FIRST_SOUND_WITHIN_S) if starts else None
    return Rendering(audio, sample_rate, onset_window_s=window, word_starts_s=starts)
