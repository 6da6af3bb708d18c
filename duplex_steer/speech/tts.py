"""Text-to-speech behind a tiny protocol, so test audio can be regenerated offline and the voice swapped.

The built-in engine is espeak-ng (a Debian package; no model weights, no network). It is robotic, but it
is deterministic: identical input gives identical bytes. The same word inside different sentences still
varies a lot (intonation, timing), so `EspeakTTS(word_by_word=True)` speaks every word on its own and joins
the words with fixed gaps: a word then sounds the same wherever it appears (deterministic by construction).
`render(text)` gives the engine's own audio and timings (sentence mode: espeak-ng's library word events)
for ZBB renderings; flite and festival live in `duplex_steer.speech.engines` and register here by name.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from duplex_steer.audio import SAMPLE_RATE, resample
from duplex_steer.errors import DuplexSteerError
from duplex_steer.speech.espeak_lib import render_sentence
from duplex_steer.speech.timing import Rendering

# A sample counts as speech when its absolute amplitude reaches this fraction of full scale (-34 dBFS).
# espeak-ng peaks around 0.6 and its quietest consonant onsets are well above it; its silence is exact 0.
ONSET_THRESHOLD = 0.02

# After a word that ends with punctuation, the gap is longer, as a speaker pauses at a comma or full stop.
_CLAUSE_END = re.compile(r"[,;:.!?]$")


class TTSError(DuplexSteerError, RuntimeError):
    """Speech could not be synthesized, with what to do about it."""


@runtime_checkable
class TTS(Protocol):
    """What the toolkit needs from a speech synthesizer."""

    name: str

    def synthesize(self, text: str) -> np.ndarray:
        """Speak `text`; return mono float32 at 24 kHz (duplex_steer.audio.SAMPLE_RATE)."""
        ...


def speech_onset(wav: np.ndarray, threshold: float = ONSET_THRESHOLD) -> int | None:
    """Index of the first sample whose |amplitude| >= threshold (where speech "starts"); None if none."""
    loud = np.flatnonzero(np.abs(wav) >= threshold)
    return int(loud[0]) if loud.size else None


def speech_offset(wav: np.ndarray, threshold: float = ONSET_THRESHOLD) -> int | None:
    """One past the last sample whose |amplitude| >= threshold (where speech "ends"); None if none."""
    loud = np.flatnonzero(np.abs(wav) >= threshold)
    return int(loud[-1]) + 1 if loud.size else None


def trim_silence(
    wav: np.ndarray,
    threshold: float = ONSET_THRESHOLD,
    trailing: bool = True,
    pad_s: float = 0.002,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Cut leading (and, if `trailing`, trailing) silence around the speech.

    Speech starts at the first sample with |amplitude| >= `threshold` (a fraction of full scale) and ends
    after the last such sample. `pad_s` of the original signal is kept on each side (2 ms by default, so
    the quiet rise into the first sound is not clipped into a click); the onset therefore lands `pad_s`
    after the first sample, well inside the 10 ms the Zero-Buffer Benchmark asks for.
    Raises TTSError if nothing reaches the threshold.
    """
    wav = np.asarray(wav, dtype=np.float32)
    onset = speech_onset(wav, threshold)
    if onset is None:
        raise TTSError(f"no sample reaches the speech threshold {threshold}: the audio is silent")
    pad = int(round(pad_s * sample_rate))
    start = max(0, onset - pad)
    end = min(len(wav), speech_offset(wav, threshold) + pad) if trailing else len(wav)
    return wav[start:end].copy()


def parse_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM mono WAV bytes -> (float32 samples, sample rate).

    espeak-ng writes its WAV to a pipe before it knows the length, so the RIFF and data sizes in the
    header are placeholders; the samples are simply everything after the 'data' chunk header.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise TTSError("espeak-ng did not return WAV data")
    pos, sample_rate, channels, bits = 12, None, None, None
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk_id == b"fmt ":
            _, channels, sample_rate, _, _, bits = struct.unpack("<HHIIHH", data[pos + 8 : pos + 24])
        elif chunk_id == b"data":
            if sample_rate is None or channels != 1 or bits != 16:
                raise TTSError(f"unexpected WAV format from espeak-ng: {channels} channels, {bits} bits")
            pcm = data[pos + 8 :]
            pcm = pcm[: len(pcm) - len(pcm) % 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0, sample_rate
        pos += 8 + size + (size % 2)
    raise TTSError("espeak-ng WAV output has no data chunk")


@dataclass(frozen=True)
class EspeakTTS:
    """espeak-ng through its command-line binary.

    voice: an espeak-ng voice name ("en-us", "en-gb", ...); rate_wpm: speaking rate in words per minute;
    pitch: 0-99 (espeak's default 50); amplitude: 0-200 (espeak's default 100).
    word_by_word: speak each word alone, trim it, and join the words with `word_gap_s` of silence
    (`clause_gap_s` after a word ending in punctuation). Output is trimmed of leading and trailing silence.
    """

    voice: str = "en-us"
    rate_wpm: int = 160
    pitch: int = 50
    amplitude: int = 100
    word_by_word: bool = False
    word_gap_s: float = 0.06
    clause_gap_s: float = 0.2
    binary: str = "espeak-ng"
    name: ClassVar[str] = "espeak-ng"

    def settings(self) -> dict[str, Any]:
        """Constructor arguments plus the espeak-ng version, for manifests."""
        out = {k: v for k, v in asdict(self).items() if k != "binary"}
        out["espeak_version"] = espeak_version(self.binary)
        if not self.word_by_word:
            out.pop("word_gap_s")
            out.pop("clause_gap_s")
        return out

    def speak_untrimmed(self, text: str) -> np.ndarray:
        """One espeak-ng call on `text`; returns untrimmed 24 kHz float32 audio."""
        exe = require_espeak(self.binary)
        cmd = [exe, "--stdout", "--stdin", "-z", "-v", self.voice, "-s", str(self.rate_wpm),
               "-p", str(self.pitch), "-a", str(self.amplitude)]  # fmt: skip
        proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=False)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise TTSError(f"espeak-ng failed (exit {proc.returncode}) on {text!r}: {err}")
        wav, sr = parse_wav_bytes(proc.stdout)
        return resample(wav, sr, SAMPLE_RATE)

    def synthesize(self, text: str) -> np.ndarray:
        """Speak `text` (trimmed: the first sound starts 2 ms after the first sample)."""
        words = text.split()
        if not words:
            raise TTSError("nothing to synthesize: the text is empty")
        if not self.word_by_word:
            return trim_silence(self.speak_untrimmed(" ".join(words)))
        return self.join_words(text, lambda word: trim_silence(self.speak_untrimmed(word)))[0]

    def render(self, text: str) -> Rendering:
        """Speak `text` at espeak-ng's own rate with the start of every word (untrimmed).

        Word by word: the words' places in the joined audio. Sentence mode: one utterance from espeak-ng's
        C library, whose word events give the starts.
        """
        if self.word_by_word:
            require_espeak(self.binary)
            audio, starts = self.join_words(text, lambda word: trim_silence(self.speak_untrimmed(word)))
            end = len(audio) / SAMPLE_RATE  # each word is trimmed to its sound (2 ms either side)
            return Rendering(audio, SAMPLE_RATE, onset_window_s=(0.0, 0.01), end_window_s=(end - 0.03, end),
                             word_starts_s=[s / SAMPLE_RATE for s in starts])
        require_espeak(self.binary)
        if not text.split():
            raise TTSError("nothing to synthesize: the text is empty")
        try:
            rendering = render_sentence(" ".join(text.split()), self.voice, self.rate_wpm, self.pitch, self.amplitude)
        except RuntimeError as err:
            raise TTSError(str(err)) from None
        if rendering is None:
            raise TTSError("libespeak-ng (espeak-ng's library) could not be loaded; install the Debian package "
                           "'espeak-ng' (sudo apt-get install espeak-ng, or run scripts/setup.sh)")
        return rendering

    def join_words(self, text: str, speak_word: Callable[[str], np.ndarray]) -> tuple[np.ndarray, list[int]]:
        """The word-by-word rendering of `text` from `speak_word(word)` (trimmed audio of one word, e.g.
        cached), joined with this voice's gaps; returns (audio, the sample where each word starts)."""
        pieces: list[np.ndarray] = []
        starts: list[int] = []
        pos = 0
        words = text.split()
        for i, word in enumerate(words):
            starts.append(pos)
            pieces.append(speak_word(word))
            pos += len(pieces[-1])
            if i < len(words) - 1:
                gap = self.clause_gap_s if _CLAUSE_END.search(word) else self.word_gap_s
                pieces.append(np.zeros(int(round(gap * SAMPLE_RATE)), dtype=np.float32))
                pos += len(pieces[-1])
        return np.concatenate(pieces), starts


def tts_settings(tts: TTS) -> dict[str, Any]:
    """`tts.settings()` when the engine offers it (everything that changes its output), else {}."""
    settings = getattr(tts, "settings", None)
    return dict(settings()) if callable(settings) else {}


def require_binary(binary: str, package: str) -> str:
    """Full path of an engine's binary, or a TTSError naming the Debian package that provides it."""
    exe = shutil.which(binary)
    if exe is None:
        raise TTSError(
            f"'{binary}' was not found on PATH. Install the Debian package '{package}' "
            f"(sudo apt-get install {package}, or run scripts/setup.sh)."
        )
    return exe


def require_espeak(binary: str = "espeak-ng") -> str:
    """Full path of the espeak-ng binary, or a TTSError saying how to install it."""
    return require_binary(binary, "espeak-ng")


def espeak_version(binary: str = "espeak-ng") -> str:
    """Version string of the installed espeak-ng, e.g. '1.51'."""
    out = subprocess.run([require_espeak(binary), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"text-to-speech:\s*(\S+)", out)
    return match.group(1) if match else out.strip()


# The voice every committed recording (dialogues, demo, ZBB) is made with. Words are spoken one at a time so a
# ZBB subject sounds identical in its true and false query; 190 wpm per word is about 135 wpm overall.
DEFAULT_TTS_OPTIONS: dict[str, Any] = {"voice": "en-us", "rate_wpm": 190, "word_by_word": True}


def default_tts() -> EspeakTTS:
    """The TTS the committed audio fixtures were built with."""
    return EspeakTTS(**DEFAULT_TTS_OPTIONS)


_REGISTRY: dict[str, Callable[..., TTS]] = {"espeak-ng": EspeakTTS, "espeak": EspeakTTS}


def register_tts(name: str, factory: Callable[..., TTS]) -> None:
    """Make `get_tts(name, **options)` build speech with `factory(**options)` (e.g. a neural TTS)."""
    _REGISTRY[name] = factory


def available_tts() -> list[str]:
    """Names `get_tts` accepts."""
    return sorted(_REGISTRY)


def get_tts(name: str = "espeak-ng", **options: Any) -> TTS:
    """Build a registered TTS by name, e.g. get_tts("espeak-ng", word_by_word=True)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise TTSError(f"unknown TTS {name!r}; available: {', '.join(available_tts())}") from None
    return factory(**options)
