"""Speech for the organism: every utterance and word synthesized once, encoded once, reused as codes.

The user's voice is the toolkit's default TTS (espeak-ng, one word at a time: the voice every ZBB
recording is made with) passed through the same OGG Vorbis round trip as the committed benchmark
audio, so a ZBB query in training and in the benchmark gives the same codes. The organism's own voice
is espeak-ng at a lower pitch; each of its words starts on a frame boundary.

Codes can be assembled per utterance because `MelCodec` reads only a frame and the one before it:
an utterance that starts on a frame boundary after at least one silent frame has the codes it has
alone. Each utterance's codes include the one frame after it (where its tail is still heard).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..speech.tts import EspeakTTS, default_tts, trim_silence

MODEL_VOICE = {"voice": "en-us", "rate_wpm": 200, "pitch": 25}


@dataclass
class Utterance:
    """Codes [8, frames] of one utterance (its post-frame included) and its words' start frames."""

    text: str
    codes: torch.Tensor
    word_frames: list[int]

    @property
    def frames(self) -> int:
        return self.codes.shape[1]


def ogg_round_trip(wav: np.ndarray) -> np.ndarray:
    """What the committed OGG recordings hold: encode with the toolkit's OGG writer, decode again."""
    import soundfile as sf

    from ..speech.dialogues import encode_ogg

    data, sr = sf.read(io.BytesIO(encode_ogg(wav)), dtype="float32")
    return data[: len(wav)] if sr == SAMPLE_RATE else data


class SpeechBank:
    """Synthesizes (cached per word) and encodes (cached per utterance) the organism's speech."""

    def __init__(self, codec=None, user_tts: EspeakTTS | None = None, model_tts: EspeakTTS | None = None):
        self.codec = codec
        self.user_tts = user_tts or default_tts()
        self.model_tts = model_tts or EspeakTTS(**MODEL_VOICE)
        self._words: dict[tuple[str, str], np.ndarray] = {}
        self._utterances: dict[tuple[str, str], Utterance] = {}

    # --- audio ------------------------------------------------------------------------------------
    def word_audio(self, word: str, voice: str = "user") -> np.ndarray:
        key = (voice, word)
        if key not in self._words:
            tts = self.user_tts if voice == "user" else self.model_tts
            self._words[key] = trim_silence(tts.speak_untrimmed(word))
        return self._words[key]

    def user_audio(self, text: str, round_trip: bool = True) -> tuple[np.ndarray, list[int]]:
        """The user's waveform for `text` (identical to `default_tts().synthesize`, OGG round-tripped)
        and the sample where each word starts."""
        wav, starts = self.user_tts.join_words(text, lambda word: self.word_audio(word, "user"))
        return (ogg_round_trip(wav) if round_trip else wav), starts

    def model_word_audio(self, word: str) -> np.ndarray:
        """The organism's voice for one word, zero-padded to whole frames."""
        audio = self.word_audio(word, "model")
        return np.pad(audio, (0, -len(audio) % FRAME_SAMPLES))

    # --- codes ------------------------------------------------------------------------------------
    def _encode(self, wav: np.ndarray) -> torch.Tensor:
        padded = np.concatenate([wav, np.zeros(-len(wav) % FRAME_SAMPLES + FRAME_SAMPLES, np.float32)])
        return self.codec.encode(padded[None])[0]

    def user(self, text: str, variant: int = 0) -> Utterance:
        """The user saying `text`. Variant 0 is the benchmark's rendering; variant v > 0 is the same
        speech with a seeded gain change (+-4 dB) and 0-10 ms of extra lead-in silence, OGG round-tripped
        on its own: acoustically the same words, different codes."""
        key = ("user", text, variant)
        if key not in self._utterances:
            wav, starts = self.user_audio(text)
            if variant:
                rng = np.random.default_rng([variant, len(text), sum(map(ord, text))])
                shift = int(rng.integers(0, 241))
                raw, _ = self.user_audio(text, round_trip=False)
                raw = np.concatenate([np.zeros(shift, np.float32), raw * 10 ** (rng.uniform(-4, 4) / 20)])
                wav, starts = ogg_round_trip(raw), [s + shift for s in starts]
            self._utterances[key] = Utterance(text, self._encode(wav), [s // FRAME_SAMPLES for s in starts])
        return self._utterances[key]

    def model_word(self, word: str) -> Utterance:
        key = ("model", word)
        if key not in self._utterances:
            self._utterances[key] = Utterance(word, self._encode(self.model_word_audio(word)), [0])
        return self._utterances[key]

    def silence(self) -> torch.Tensor:
        """Codes [8] of a silent frame."""
        return self.codec.encode(np.zeros((1, FRAME_SAMPLES), np.float32))[0, :, 0]
