"""Interruption scenarios: the user's stream is decided causally from the model's own output.

A scenario plays a context prompt ("Tell me about ..."), then waits, watching what the model says,
and starts the query:
- `interrupt`: once the model has spoken `interrupt_after_frames` frames after the context ended
  (the query lands while it talks);
- `no_interrupt`: once the model has been quiet for `quiet_frames` after the context (a normal turn);
- `buffered`: as `interrupt`, but the query starts with "Um, excuse me," (zbb.build.BUFFER_TEXT).
Either way the query starts at the latest after `max_wait_frames`; the record says whether the model
was speaking at the onset. The codec is causal, so when the query is placed the item's waveform is
re-encoded and the codes of frames already fed do not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from duplex_steer.audio import FRAME_SAMPLES
from duplex_steer.probes.activity import HOLD_FRAMES
from duplex_steer.steering.fit import speaking_now

WAITING, QUERY, REPLY, DONE = "waiting", "query", "reply", "done"


def split_condition(condition: str) -> tuple[str, str | None]:
    """'buffered+steer@x' -> ('buffered', 'steer'): the scenario, then what is injected (None: nothing)."""
    base, _, modifier = condition.split("@", 1)[0].partition("+")
    return base, modifier or None


def interrupts(condition: str) -> bool:
    """Whether the query lands while the model talks (interrupt and buffered scenarios)."""
    return split_condition(condition)[0] in ("interrupt", "buffered")


@dataclass
class ScenarioRules:
    """When the query starts and how long the reply is listened to (frames of 80 ms)."""

    interrupt_after_frames: int = 12
    quiet_frames: int = 10
    max_wait_frames: int = 125
    reply_frames: int = 75
    hold: int = HOLD_FRAMES  # a word token marks this many further frames as speech


@dataclass
class Scenario:
    """One (item, condition, repetition) being played. Frames are session frames (absolute)."""

    item: dict[str, Any]
    condition: str
    repetition: int
    context: np.ndarray
    query: np.ndarray
    rules: ScenarioRules
    start_frame: int = 0  # session frame of the context's first sample
    phase: str = WAITING
    onset_frame: int | None = None
    query_end_frame: int | None = None
    end_frame: int | None = None
    model_speaking_at_onset: bool | None = None
    waited_frames: int = 0
    spoke_frames: int = 0
    quiet_run: int = 0
    speaking_now: bool = False
    wave: np.ndarray | None = None  # this item's whole planned user stream (24 kHz)
    codes: torch.Tensor | None = None  # [8, F] its codes
    text: dict[int, int] = field(default_factory=dict)  # session frame -> the model's text token

    @property
    def context_frames(self) -> int:
        return -(-len(self.context) // FRAME_SAMPLES)

    def planned_waveform(self) -> np.ndarray:
        """Context, silence until the onset (or the wait cap), query, silence for the reply."""
        onset = self.onset_frame - self.start_frame if self.onset_frame is not None else (
            self.context_frames + self.rules.max_wait_frames + 1)
        n = (onset + self.rules.reply_frames + 2) * FRAME_SAMPLES + len(self.query)
        wav = np.zeros(n, np.float32)
        wav[: len(self.context)] = self.context
        if self.onset_frame is not None:
            at = onset * FRAME_SAMPLES
            wav[at : at + len(self.query)] = self.query
        return wav

    def replan(self, codec) -> None:
        """Re-plan and re-encode the user stream (the codec is causal: fed frames keep their codes)."""
        self.wave = self.planned_waveform()
        self.codes = codec.encode(self.wave[None])[0].cpu()

    def observe(self, frame: int, recent_text: np.ndarray) -> bool:
        """Update activity counters after `frame`'s step; True when the query should start next frame."""
        if self.phase != WAITING or frame - self.start_frame < self.context_frames - 1:
            return False
        speaking = bool(speaking_now(recent_text[None], self.rules.hold)[0])
        self.waited_frames += 1
        self.spoke_frames += speaking
        self.quiet_run = 0 if speaking else self.quiet_run + 1
        self.speaking_now = speaking
        if self.waited_frames >= self.rules.max_wait_frames:
            return True
        if interrupts(self.condition):
            return self.spoke_frames >= self.rules.interrupt_after_frames
        return self.quiet_run >= self.rules.quiet_frames

    def place_query(self, frame: int) -> None:
        self.onset_frame = frame
        self.model_speaking_at_onset = self.speaking_now
        self.query_end_frame = frame + -(-len(self.query) // FRAME_SAMPLES)
        self.end_frame = self.query_end_frame + self.rules.reply_frames
        self.phase = QUERY

    def advance(self, frame: int) -> None:
        if self.phase == QUERY and frame >= self.query_end_frame:
            self.phase = REPLY
        if self.phase in (QUERY, REPLY) and frame >= self.end_frame - 1:
            self.phase = DONE

    def reply_tokens(self) -> list[int]:
        """The model's text stream from the onset to the end of the reply window."""
        return [self.text[f] for f in range(self.onset_frame, self.end_frame) if f in self.text]

    def word_chunks(self, tokenizer) -> list[dict[str, Any]]:
        """Words with timestamps (s, relative to the scenario start) from the text stream, for TOR / latency."""
        from duplex_steer.engine.text import SPECIAL_NAMES, WORD_START

        chunks: list[dict[str, Any]] = []
        for f in range(self.onset_frame, self.end_frame):
            tok = self.text.get(f, -1)
            if tok < 0 or tok in SPECIAL_NAMES:
                continue
            piece = tokenizer.id_to_piece(tok)
            t = (f - self.start_frame) * FRAME_SAMPLES / 24_000
            if piece.startswith(WORD_START) or not chunks:
                chunks.append({"text": piece.replace(WORD_START, ""), "timestamp": [t, t + 0.08]})
            else:
                chunks[-1]["text"] += piece
                chunks[-1]["timestamp"][1] = t + 0.08
        return chunks
