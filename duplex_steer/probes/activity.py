"""Ground truth per 80 ms frame: is the user speaking, is the model speaking, where does the user start.

Affinities only mean something next to who is talking. The user's activity comes from known turn
timings when there are any (synthesized dialogues), else from the recording's energy against its own
noise floor. The model's comes from its text stream or from the energy of its output audio, or both.

Model speaking, from the text stream (`TextActivityRule`): the model speaks from a token that is not
silence until a run of silence tokens longer than `hold` frames (a pause). Causal: frame t is speech
when a non-silent token occurred in frames t - hold .. t. Two vocabularies, two settings:
- whole-word vocabularies (the organism, random presets: every piece starts a word, one token per word
  of 2-4 frames): `WORD_RULE`, hold 3, PAD and EPAD are silence;
- subword vocabularies (Moshi / PersonaPlex SentencePiece: a word spans several pieces emitted at its
  start, then PAD while its audio plays, EPAD right before the next word, the text running a frame or
  so ahead of the audio): `PIECE_RULE`, hold `PIECE_HOLD_FRAMES`, EPAD is speech (it announces a word).
`activity_rule(tokenizer, vocab_size)` picks by looking at the vocabulary. `model_activity` combines
the text rule with the energy of the model's decoded audio where that audio is available.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..audio import FRAME_SAMPLES, SAMPLE_RATE, rms_per_frame
from ..engine.text import BOS, EOS, EPAD, PAD, SPECIAL_NAMES, WORD_START

MIN_RMS = 0.005  # absolute speech threshold (RMS of a frame, full scale 1.0); TTS silence is ~0
MARGIN_DB = 12.0  # speech must exceed the noise floor by this much
BRIDGE_FRAMES = 3  # silent gaps up to this long inside speech (word gaps) count as speech
MIN_SILENCE_FRAMES = 4  # an onset needs at least this much silence (320 ms) before it
HOLD_FRAMES = 3  # a model word token marks this many further frames as speech (whole-word vocabularies)
# Subword streams: after a word's pieces the model emits PAD while the word's audio plays (up to ~0.4 s,
# 5 frames, for a long word) and the text runs ~1 frame ahead of the audio: PAD runs up to 6 frames
# (480 ms) are inside speech, longer ones are a pause.
PIECE_HOLD_FRAMES = 6


@dataclass
class Activity:
    """Who speaks when, for a batch: user / model [B, T] booleans and user onsets per item."""

    user: np.ndarray
    model: np.ndarray
    onsets: list[list[int]]
    user_source: str = "audio energy"
    model_source: str = "text tokens"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self, item: int = 0) -> dict[str, Any]:
        return {
            "user_speaking": self.user[item].astype(int).tolist(),
            "model_speaking": self.model[item].astype(int).tolist(),
            "user_source": self.user_source,
            "model_source": self.model_source,
            "onsets": list(self.onsets[item]),
            **self.extra,
        }


def bridge_gaps(active: np.ndarray, max_gap: int = BRIDGE_FRAMES) -> np.ndarray:
    """Fill inactive runs of at most `max_gap` frames that have activity on both sides."""
    out = np.asarray(active, dtype=bool).copy()
    idx = np.flatnonzero(out)
    for a, b in zip(idx[:-1], idx[1:], strict=True):
        if 1 < b - a <= max_gap + 1:
            out[a:b] = True
    return out


def energy_activity(wav: np.ndarray, n_frames: int | None = None, min_rms: float = MIN_RMS,
                    margin_db: float = MARGIN_DB, noise_percentile: float = 10.0,
                    bridge: int = BRIDGE_FRAMES) -> np.ndarray:
    """Per-frame speech mask [n_frames] from RMS energy.

    threshold = max(min_rms, noise floor * 10^(margin_db / 20)), the noise floor being the
    `noise_percentile`-th percentile of frame RMS; short gaps (word pauses) are bridged.
    """
    rms = rms_per_frame(np.asarray(wav, dtype=np.float32), FRAME_SAMPLES)
    floor = float(np.percentile(rms, noise_percentile)) if rms.size else 0.0
    active = rms > max(min_rms, floor * 10 ** (margin_db / 20))
    active = bridge_gaps(active, bridge)
    return _fit(active, n_frames)


def turns_activity(turns: Sequence[Any], n_frames: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-frame mask from known turn timings: objects with start_s / end_s, dicts, or (start, end) pairs."""
    mask = np.zeros(n_frames, dtype=bool)
    for turn in turns:
        start, end = _span(turn)
        first = int(start * sample_rate) // FRAME_SAMPLES
        last = -(-int(end * sample_rate) // FRAME_SAMPLES)
        mask[max(first, 0) : min(last, n_frames)] = True
    return mask


def text_activity(text_tokens: Any, hold: int = HOLD_FRAMES, silent_ids: Sequence[int] = (PAD, EPAD)) -> np.ndarray:
    """Model speaking from its text stream [T] or [B, T]: a word token (not PAD/EPAD/-1) plus `hold` frames."""
    tokens = np.asarray(text_tokens)
    word = (tokens >= 0) & ~np.isin(tokens, list(silent_ids))
    out = word.copy()
    for shift in range(1, hold + 1):
        out[..., shift:] |= word[..., :-shift]
    return out


@dataclass(frozen=True)
class TextActivityRule:
    """"Model speaking" from its text stream: a non-silent token plus `hold` frames (a longer silent run is a pause)."""

    name: str
    hold: int
    silent_ids: tuple[int, ...]

    @property
    def window(self) -> int:
        """How many most recent frames decide whether the model speaks now."""
        return self.hold + 1

    def speaking(self, text_tokens: Any) -> np.ndarray:
        """Per-frame mask [T] or [B, T] (causal)."""
        return text_activity(text_tokens, self.hold, self.silent_ids)

    def speaking_now(self, recent_text: np.ndarray) -> np.ndarray:
        """[B, k] most recent text tokens -> [B] bool: is the model speaking at the latest frame."""
        return self.speaking(np.asarray(recent_text)[:, -self.window :])[:, -1]

    def with_hold(self, hold: int | None) -> TextActivityRule:
        return self if hold is None else replace(self, hold=int(hold))


WORD_RULE = TextActivityRule("whole-word tokens", HOLD_FRAMES, (PAD, EPAD))
PIECE_RULE = TextActivityRule("subword pieces (SentencePiece)", PIECE_HOLD_FRAMES, (PAD, BOS, EOS))


def is_subword_vocabulary(tokenizer: Any, vocab_size: int) -> bool:
    """True when some non-special piece continues a word (lacks the U+2581 word-start marker)."""
    for token in range(len(SPECIAL_NAMES), vocab_size):
        try:
            piece = tokenizer.id_to_piece(token)
        except (IndexError, ValueError):  # a tokenizer smaller than the text vocabulary
            break
        if not piece.startswith(WORD_START) and not (piece.startswith("<") and piece.endswith(">")):
            return True
    return False


def activity_rule(tokenizer: Any, vocab_size: int, hold: int | None = None) -> TextActivityRule:
    """The text rule for a vocabulary (`PIECE_RULE` for subword pieces, else `WORD_RULE`); `hold` overrides."""
    rule = PIECE_RULE if is_subword_vocabulary(tokenizer, vocab_size) else WORD_RULE
    return rule.with_hold(hold)


def model_activity_rule(model: Any, hold: int | None = None) -> TextActivityRule:
    """`activity_rule` for a loaded model (its tokenizer and text vocabulary size)."""
    return activity_rule(model.tokenizer, int(model.spec.text_card), hold)


def model_activity(text_tokens: Any, rule: TextActivityRule = WORD_RULE, audio: np.ndarray | None = None) -> np.ndarray:
    """Model speaking [T]: the text rule, OR the energy of its decoded audio (24 kHz) where given.

    Either source alone misses something: the text runs ahead of the audio and says nothing of sounds
    without words (laughter, breath); audio energy misses a word whose sound has not started yet.
    """
    speaking = rule.speaking(text_tokens)
    if audio is None:
        return speaking
    return speaking | energy_activity(audio, speaking.shape[-1])


def detect_onsets(active: np.ndarray, min_silence: int = MIN_SILENCE_FRAMES, min_speech: int = 2) -> list[int]:
    """Frames where speech starts after >= `min_silence` silent frames and lasts >= `min_speech` frames.

    Speech already running at frame 0 is not an onset (nothing preceded it).
    """
    active = np.asarray(active, dtype=bool)
    onsets, silent = [], 0
    for t, on in enumerate(active):
        if on:
            if silent >= min_silence and active[t : t + min_speech].all():
                onsets.append(t)
            silent = 0
        else:
            silent += 1
    return onsets


def turn_onsets(turns: Sequence[Any], n_frames: int, sample_rate: int = SAMPLE_RATE) -> list[int]:
    """Onset frame of each known turn (the frame holding its first sample) that lies inside the recording."""
    frames = [int(_span(t)[0] * sample_rate) // FRAME_SAMPLES for t in turns]
    return [f for f in frames if 0 <= f < n_frames]


def classify_onset(model_active: np.ndarray, onset: int, window: int = 3) -> str:
    """'speaking' if the model spoke in any of the `window` frames before `onset`, else 'listening'."""
    before = np.asarray(model_active, dtype=bool)[max(onset - window, 0) : onset]
    return "speaking" if before.any() else "listening"


def _span(turn: Any) -> tuple[float, float]:
    if isinstance(turn, dict):
        return float(turn["start_s"]), float(turn["end_s"])
    if hasattr(turn, "start_s"):
        return float(turn.start_s), float(turn.end_s)
    start, end = turn
    return float(start), float(end)


def _fit(mask: np.ndarray, n_frames: int | None) -> np.ndarray:
    if n_frames is None or len(mask) == n_frames:
        return mask
    return np.pad(mask, (0, max(n_frames - len(mask), 0)))[:n_frames]
