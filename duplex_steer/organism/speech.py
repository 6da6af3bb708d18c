"""Speech for the organism: every sentence rendered once per training voice, encoded once per variant.

The user speaks whole sentences in the training voices (`hearing.TRAINING_VOICES`; the festival
engine is held out), each in `1 + augmentations` variants: variant v is voice v % voices, clean for
v < voices, else a seeded augmentation (speed, gain, noise, room; with `lossy_share`, some also stored as
ogg Vorbis; with `pause_share`, some with the pauses between words closed first) of that rendering. The organism's own
voice is `hearing.MODEL_VOICE`, word by word, each word starting on a frame boundary.

Codes can be assembled per utterance because the codec reads at most `codec.context_frames` frames back:
an utterance after that many silent frames has the codes it has alone, and its codes run on for that many
frames after it (the codec still hears it there), then are silence (checked in the tests).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..speech.aligned import AlignedUtterance, render_corpus
from ..speech.augment import augment_utterance, draw_augmentation, maybe_close_pauses
from .hearing import MODEL_VOICE, TRAINING_VOICES


@dataclass
class Utterance:
    """One utterance: its `frames` (speech plus the one frame after it, where its tail is still heard), its
    codes [8, frames + codec.context_frames - 1] (they run on until the codec hears silence again), its
    words' start frames, and which variant of the user's speech it is (-1: the organism's own voice)."""

    text: str
    codes: torch.Tensor
    word_frames: list[int]
    variant: int = -1
    speech_frames: int = 0  # frames of the utterance's own audio

    @property
    def frames(self) -> int:
        return self.codes.shape[1] - self.tail

    @property
    def tail(self) -> int:
        """Code frames after the post-frame (the codec still hears the utterance there)."""
        return self.codes.shape[1] - self.speech_frames - 1


class SpeechBank:
    """Renders (`render`, in worker processes) and encodes (cached per variant) the organism's speech."""

    def __init__(self, codec=None, voices: Sequence[str] = TRAINING_VOICES, model_voice: str = MODEL_VOICE,
                 seed: int = 0, lossy_share: float = 0.0, pause_share: float = 0.0):
        self.codec, self.voices, self.model_voice, self.seed = codec, tuple(voices), model_voice, seed
        self.lossy_share = lossy_share  # augmented variants also stored lossy, with this probability each
        self.pause_share = pause_share  # augmented variants whose pauses are closed first (`close_pauses`)
        self.renderings: dict[tuple[str, str], AlignedUtterance | None] = {}
        self._utterances: dict[tuple, Utterance] = {}

    # --- audio ------------------------------------------------------------------------------------
    def render(self, user_texts: Sequence[str], model_words: Sequence[str], workers: int = 2,
               progress: bool = True, cache: str | Path | None = None) -> None:
        """Render every user text in every voice and every model word in the model's voice (once; with
        `cache`, a folder, renderings kept there by an earlier run are reused: `speech.render_cache`)."""
        todo = [t for t in dict.fromkeys(user_texts) if any((v, t) not in self.renderings for v in self.voices)]
        if todo:
            self._keep(render_corpus(self.voices, todo, workers=workers, progress=progress, cache=cache),
                       self.voices, todo)
        words = [w for w in dict.fromkeys(model_words) if (self.model_voice, w) not in self.renderings]
        if words:
            self._keep(render_corpus([self.model_voice], words, workers=workers, progress=progress, cache=cache),
                       [self.model_voice], words)

    def _keep(self, rendered: dict, voices: Sequence[str], texts: Sequence[str]) -> None:
        """Store `rendered`, and None for each (voice, text) it lacks: an engine could not align it, and
        `rendering` then goes to the next voice at once instead of trying the engine again."""
        self.renderings.update(rendered)
        for v in voices:
            for t in texts:
                self.renderings.setdefault((v, t), None)

    def rendering(self, text: str, voice: str) -> AlignedUtterance:
        """`text` as rendered in `voice`, or in the next voice that has it (an engine whose word timings
        could not be aligned for a sentence skips it); rendered now if `render` did not."""
        order = [voice] + [v for v in self.voices if v != voice]
        for v in order:
            if (v, text) not in self.renderings:  # not rendered ahead (`render`): render it now
                self.renderings.update(render_corpus([v], [text], workers=1, progress=False))
                self.renderings.setdefault((v, text), None)  # could not be aligned: never retried
            utt = self.renderings.get((v, text))
            if utt is not None:
                return utt
        raise KeyError(f"{text!r} could not be rendered in any of {order}")

    def user_variant(self, text: str, variant: int) -> AlignedUtterance:
        """Variant `variant` of the user saying `text` (see the module docstring)."""
        utt = self.rendering(text, self.voices[variant % len(self.voices)])
        if variant < len(self.voices):
            return utt
        key = [self.seed, variant, zlib.crc32(text.encode())]
        utt = maybe_close_pauses(utt, self.pause_share, np.random.default_rng([*key, 1]))  # a generator of its own
        rng = np.random.default_rng(key)
        return augment_utterance(utt, draw_augmentation(rng, lossy_probability=self.lossy_share))

    def model_word_audio(self, word: str) -> np.ndarray:
        """The organism's voice for one word, zero-padded to whole frames."""
        audio = self.rendering(word, self.model_voice).audio
        return np.pad(audio, (0, -len(audio) % FRAME_SAMPLES))

    # --- codes ------------------------------------------------------------------------------------
    def _encode(self, wav: np.ndarray) -> tuple[torch.Tensor, int]:
        """(codes of `wav` followed by `codec.context_frames` silent frames, frames of `wav`)."""
        after = FRAME_SAMPLES * self.codec.context_frames
        padded = np.concatenate([wav, np.zeros(-len(wav) % FRAME_SAMPLES + after, np.float32)])
        return self.codec.encode(padded[None])[0], -(-len(wav) // FRAME_SAMPLES)

    def user(self, text: str, variant: int = 0) -> Utterance:
        """The user saying `text`, variant `variant`; word start frames from the engine's timings."""
        key = ("user", text, variant)
        if key not in self._utterances:
            utt = self.user_variant(text, variant)
            starts = [int(s * SAMPLE_RATE) // FRAME_SAMPLES for s, _ in utt.spans_s]
            codes, speech = self._encode(utt.audio)
            self._utterances[key] = Utterance(text, codes, starts, variant, speech)
        return self._utterances[key]

    def model_word(self, word: str) -> Utterance:
        key = ("model", word)
        if key not in self._utterances:
            codes, speech = self._encode(self.model_word_audio(word))
            self._utterances[key] = Utterance(word, codes, [0], -1, speech)
        return self._utterances[key]

    def silence(self) -> torch.Tensor:
        """Codes [8] of a silent frame."""
        return self.codec.encode(np.zeros((1, FRAME_SAMPLES), np.float32))[0, :, 0]
