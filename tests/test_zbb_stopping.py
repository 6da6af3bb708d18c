"""ZBB's turn measure: frames from the onset to the model's first silent frame."""

from __future__ import annotations

from duplex_steer.probes.activity import WORD_RULE
from zbb.stopping import stop_after_onset

WORD, PAD = 100, WORD_RULE.silent_ids[0]
HOLD = WORD_RULE.hold


def _text(words_until: int, start: int = 0, end: int = 40) -> dict[int, int]:
    """A model that says a word every frame up to `words_until` (exclusive), then pads."""
    return {f: WORD if f < words_until else PAD for f in range(start, end)}


def test_frames_to_the_first_silent_frame_after_the_onset():
    # last word at frame 14: frames 15 .. 14 + HOLD still count as speech, 15 + HOLD is the first silent one
    assert stop_after_onset(_text(15), onset=10, end=30, rule=WORD_RULE) == {"stopped": 1,
                                                                             "stop_frames": 15 + HOLD - 10}


def test_never_stopping_and_already_quiet():
    assert stop_after_onset(_text(40), onset=10, end=30, rule=WORD_RULE) == {"stopped": 0, "stop_frames": None}
    assert stop_after_onset(_text(0), onset=10, end=30, rule=WORD_RULE) == {"stopped": 1, "stop_frames": 0}
    # a word just before the onset holds the onset frame as speech
    assert stop_after_onset(_text(10), onset=10, end=30, rule=WORD_RULE)["stop_frames"] == HOLD
    # silence after the end of the window does not count
    assert stop_after_onset(_text(30), onset=10, end=30, rule=WORD_RULE)["stopped"] == 0
