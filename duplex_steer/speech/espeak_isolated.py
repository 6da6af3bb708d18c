"""One espeak-ng sentence in a fresh process, with the library's word events; standard library only.

Why a process per sentence: libespeak-ng keeps state between syntheses in one process (the second call of the
same text already gives different durations and an extra empty word event), so only the first synthesis
after loading the library is reproducible. `duplex_steer.speech.word_spans` runs this file as
`python -S -I espeak_isolated.py VOICE RATE PITCH AMPLITUDE` with the text on stdin (about 40 ms of start-up,
no numpy). It writes one JSON line ({"sample_rate", "words": [[sample, text length], ...]}) and then the
audio as 16-bit little-endian PCM; exit status 2 when the voice is refused, 3 when synthesis fails.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import sys

AUDIO_OUTPUT_RETRIEVAL = 1
POS_CHARACTER = 1
CHARS_UTF8 = 1
EVENT_LIST_TERMINATED, EVENT_WORD = 0, 1
PARAM_RATE, PARAM_VOLUME, PARAM_PITCH = 1, 2, 3


class Event(ctypes.Structure):
    """espeak_EVENT from speak_lib.h (the trailing union is one pointer wide)."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", ctypes.c_void_p)]  # fmt: skip


Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(Event))


def synthesize(text: str, voice: str, rate_wpm: int, pitch: int, amplitude: int) -> tuple[int, list, bytes]:
    """(sample rate, [[word start sample, text length], ...], PCM bytes); SystemExit on failure."""
    lib = ctypes.CDLL(ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1")
    sample_rate = lib.espeak_Initialize(AUDIO_OUTPUT_RETRIEVAL, 0, None, 0)
    chunks: list[bytes] = []
    words: list[list[int]] = []

    def collect(wav, n_samples, events) -> int:
        if n_samples > 0:
            chunks.append(ctypes.string_at(wav, 2 * n_samples))
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            if events[i].type == EVENT_WORD:
                words.append([int(events[i].sample), int(events[i].length)])
            i += 1
        return 0

    status = speak(lib, Callback(collect), text, voice, rate_wpm, pitch, amplitude)
    if status is None:
        raise SystemExit(2)
    if status != 0 or not chunks:
        raise SystemExit(3)
    return int(sample_rate), words, b"".join(chunks)


def speak(lib: ctypes.CDLL, callback, text: str, voice: str, rate_wpm: int, pitch: int, amplitude: int) -> int | None:
    """Synthesize `text` with the loaded library, its audio and events going to `callback` (a `Callback`,
    referenced here until synthesis ends); None when the library refuses the voice, else espeak_Synth's status
    (0: done). Shared with `espeak_lib`, which speaks in the caller's process."""
    lib.espeak_SetSynthCallback(callback)
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        return None
    for param, value in ((PARAM_RATE, rate_wpm), (PARAM_PITCH, pitch), (PARAM_VOLUME, amplitude)):
        lib.espeak_SetParameter(param, value, 0)
    data = text.encode("utf-8")
    buffer = ctypes.create_string_buffer(data)
    status = lib.espeak_Synth(buffer, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8, None, None)
    lib.espeak_Synchronize()
    return int(status)


def main() -> None:
    voice, rate, pitch, amplitude = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    sample_rate, words, pcm = synthesize(sys.stdin.read(), voice, rate, pitch, amplitude)
    sys.stdout.buffer.write(json.dumps({"sample_rate": sample_rate, "words": words}).encode() + b"\n" + pcm)


if __name__ == "__main__":
    main()
