"""Synthetic speech: a pluggable TTS and the committed turn-by-turn dialogue set."""

from duplex_steer.speech.dialogues import (
    Dialogue,
    FixtureError,
    Turn,
    build_dialogues,
    build_interruption_example,
    load_dialogues,
    load_interruption_example,
)
from duplex_steer.speech.tts import (
    DEFAULT_TTS_OPTIONS,
    ONSET_THRESHOLD,
    TTS,
    EspeakTTS,
    TTSError,
    available_tts,
    default_tts,
    get_tts,
    register_tts,
    speech_offset,
    speech_onset,
    trim_silence,
    tts_settings,
)

__all__ = [
    "Dialogue",
    "FixtureError",
    "Turn",
    "build_dialogues",
    "build_interruption_example",
    "load_dialogues",
    "load_interruption_example",
    "ONSET_THRESHOLD",
    "DEFAULT_TTS_OPTIONS",
    "TTS",
    "EspeakTTS",
    "TTSError",
    "available_tts",
    "default_tts",
    "get_tts",
    "register_tts",
    "speech_offset",
    "speech_onset",
    "trim_silence",
    "tts_settings",
]
