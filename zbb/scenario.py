"""Interruption scenarios: the user's stream is decided causally from the model's own output.

A scenario plays a context prompt ("Tell me about ..."), then waits, watching what the model says,
and starts the query:
- `interrupt`: once the model has spoken `interrupt_after_frames` frames after the context ended
  (the query lands while it talks);
- `no_interrupt`: once the model has been quiet for `quiet_frames` after the context (a normal turn);
- `buffered`: as `interrupt`, but the query starts with "Um, excuse me," (zbb.build.BUFFER_TEXT).
Either way the query starts at the latest after `max_wait_frames`; the record says whether the model
was speaking at the onset ("speaking" is the model's text rule, `duplex_steer.probes.activity`). The codec is causal, so when the query is placed the item's waveform is
re-encoded and the codes of frames already fed do not change.

The reply that is scored is what the model says in the reply window: words that START between
`REPLY_START_TOLERANCE_FRAMES` before the query's end and the end of the listening time (absolute
session frames, `Scenario.reply_window`); words said before or during the query are never read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE
from duplex_steer.probes.activity import WORD_RULE, TextActivityRule

from .scoring import REPLY_START_TOLERANCE_FRAMES, reply_text, words_in_window

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
    hold: int | None = None  # frames a word piece keeps the model speaking; None: its vocabulary's rule
    reply_tolerance_frames: int = REPLY_START_TOLERANCE_FRAMES  # a reply may start this early (query's end)


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
    activity: TextActivityRule | None = None  # "model speaking"; None: WORD_RULE (with rules.hold if set)

    def __post_init__(self) -> None:
        if self.activity is None:
            self.activity = WORD_RULE.with_hold(self.rules.hold)

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

    def replan(self, codec, query_codes: torch.Tensor | None = None) -> None:
        """Re-plan and re-encode the user stream (the codec is causal: fed frames keep their codes).

        `query_codes` (from `query_codes`, once the query is placed) are the codes of the stream from the
        onset on, encoded once per query: they replace the whole stream's encoding when the codec's codes
        after `codec.context_frames` silent frames are the utterance's own (`silent_lead_frames`)."""
        self.wave = self.planned_waveform()
        if query_codes is None:
            self.codes = codec.encode(self.wave[None])[0].cpu()
            return
        if not self.can_splice(codec):
            raise ValueError("query codes need codec.context_frames silent frames before the onset")
        self.codes = torch.cat([self.codes[:, : self.onset_frame - self.start_frame], query_codes], 1)

    def silent_lead_frames(self) -> int:
        """Whole frames of silence between the context's last sample and the placed query (0 before)."""
        if self.onset_frame is None:
            return 0
        return self.onset_frame - self.start_frame - self.context_frames

    def can_splice(self, codec) -> bool:
        """Whether the placed query's codes may be spliced in (`query_codes`): the codec says after how many
        silent frames an utterance's codes are its own (`context_frames`; Mimi does not) and the query has
        at least that much silence before it."""
        lead = getattr(codec, "context_frames", None)
        return lead is not None and self.silent_lead_frames() >= lead

    def query_codes(self, codec) -> torch.Tensor:
        """Codes of the stream from the onset on (query, then the reply's silence), encoded after
        `codec.context_frames` silent frames: what every placement of this query after as much silence
        gets, so a runner encodes each query once rather than each scenario's whole stream."""
        lead = codec.context_frames
        wav = np.zeros((lead + self.rules.reply_frames + 2) * FRAME_SAMPLES + len(self.query), np.float32)
        wav[lead * FRAME_SAMPLES : lead * FRAME_SAMPLES + len(self.query)] = self.query
        return codec.encode(wav[None])[0, :, lead:].cpu()

    def observe(self, frame: int, recent_text: np.ndarray) -> bool:
        """Update activity counters after `frame`'s step; True when the query should start next frame."""
        if self.phase != WAITING or frame - self.start_frame < self.context_frames - 1:
            return False
        speaking = bool(self.activity.speaking_now(np.asarray(recent_text)[None])[0])
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

    @property
    def reply_window(self) -> tuple[int, int]:
        """[first, end) absolute session frames whose words are the reply: from the query's end less the
        tolerance (never before the onset) to the end of the listening time."""
        first = max(self.onset_frame, self.query_end_frame - self.rules.reply_tolerance_frames)
        return first, self.end_frame

    def frame_time(self, frame: int) -> float:
        """Seconds from the scenario's start to the start of absolute session frame `frame`."""
        return (frame - self.start_frame) * FRAME_SAMPLES / SAMPLE_RATE

    def words(self, tokenizer, first: int | None = None, end: int | None = None) -> list[dict[str, Any]]:
        """The model's words from its text stream, each {"text", "timestamp": [s, s], "frame"}.

        A word starts at a piece with the word-start marker and takes the continuation pieces that
        follow (as `decode_text` joins them); "frame" is its first frame (absolute). Times are
        seconds from the scenario's start. Words are built from the whole stream and then kept if they
        overlap [first, end), so a word begun before `first` keeps its true start.
        """
        from duplex_steer.engine.text import SPECIAL_NAMES, WORD_START

        first = self.onset_frame if first is None else first
        end = self.end_frame if end is None else end
        words: list[dict[str, Any]] = []
        for f in sorted(k for k in self.text if k < end):
            tok = self.text[f]
            if tok < 0 or tok in SPECIAL_NAMES:
                continue
            piece = tokenizer.id_to_piece(tok)
            t = self.frame_time(f)
            if piece.startswith(WORD_START) or not words:  # a continuation piece joins the word before it
                words.append({"text": piece.replace(WORD_START, ""), "timestamp": [t, t + 0.08], "frame": f})
            else:
                words[-1]["text"] += piece
                words[-1]["timestamp"][1] = t + 0.08
        return [w for w in words if w["timestamp"][1] > self.frame_time(first) + 1e-9 and w["frame"] < end]

    def word_chunks(self, tokenizer) -> list[dict[str, Any]]:
        """Words overlapping the onset .. end of the reply, timed (s, from the scenario start), for TOR / latency."""
        return self.words(tokenizer)

    def reply(self, tokenizer, chunks: list[dict[str, Any]] | None = None) -> str:
        """The text to score: the words that start inside `reply_window` (from `chunks`, default the text stream)."""
        first, end = self.reply_window
        chunks = self.words(tokenizer) if chunks is None else chunks
        return reply_text(chunks, self.frame_time(first), self.frame_time(end))

    def said_during_query(self, tokenizer) -> str:
        """Words that started from the onset up to the reply window (never scored; for reading the record)."""
        first, _ = self.reply_window
        window = words_in_window(self.words(tokenizer), self.frame_time(self.onset_frame), self.frame_time(first))
        return " ".join(w["text"] for w in window)
