"""Synthetic speech: pluggable TTS engines (espeak-ng, flite, festival) and the committed dialogue set."""

from duplex_steer.speech.dialogues import (
    Dialogue,
    FixtureError,
    Turn,
    build_dialogues,
    build_interruption_example,
    load_dialogues,
    load_interruption_example,
)
from duplex_steer.speech.engines import FestivalTTS, FliteTTS
from duplex_steer.speech.timing import Rendering, check_time, detect_speech_bounds
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
    "FestivalTTS",
    "FliteTTS",
    "Rendering",
    "check_time",
    "detect_speech_bounds",
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
