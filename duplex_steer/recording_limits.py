"""A user's recording checked before a model loads: it exists, decodes, and is not longer than the limit
(a 20-minute file would start an hour-long run); and a warning when it outlasts the model's context.

Commands add `--max-seconds` (default 120 s) and `--no-length-limit` with `add_length_args`, call
`check_recording(path, max_seconds_from_args(args))` before loading the model, and print
`context_warning(...)` after (the context is the model's, known once it has loaded).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .audio import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, AudioError, load_audio

MAX_SECONDS = 120.0


class RecordingTooLong(AudioError):
    """A recording past the length limit (lift it with --max-seconds or --no-length-limit)."""


def add_length_args(parser: argparse.ArgumentParser, default: float = MAX_SECONDS) -> None:
    """--max-seconds S (default 120) and --no-length-limit."""
    parser.add_argument("--max-seconds", type=float, default=default,
                        help=f"refuse recordings longer than this (default {default:g} s; the model runs about "
                             "real time or slower on a CPU)")
    parser.add_argument("--no-length-limit", action="store_true", help="accept a recording of any length")


def max_seconds_from_args(args: argparse.Namespace) -> float | None:
    """The length limit the options set (None: no limit)."""
    if getattr(args, "no_length_limit", False):
        return None
    return getattr(args, "max_seconds", MAX_SECONDS)


def check_length(seconds: float, max_seconds: float | None, name: str) -> None:
    """Raise RecordingTooLong when `seconds` passes `max_seconds` (None: no limit)."""
    if max_seconds is not None and seconds > max_seconds:
        raise RecordingTooLong(f"{name} is {seconds:.1f} s long, over the {max_seconds:g} s limit; trim it, or "
                               "raise the limit with --max-seconds SECONDS or lift it with --no-length-limit")


def check_recording(path: str | Path, max_seconds: float | None = MAX_SECONDS) -> np.ndarray:
    """Decode `path` (one AudioError if it is missing or unreadable) and check its length; returns the
    24 kHz mono waveform so that the command does not decode it twice."""
    wav = load_audio(path)
    check_length(len(wav) / SAMPLE_RATE, max_seconds, str(path))
    return wav


def recording_frames(wav: np.ndarray) -> int:
    """Frames of 80 ms the model steps through for this waveform."""
    return math.ceil(len(wav) / FRAME_SAMPLES)


def context_warning(frames: int, model, name: str = "the recording") -> str | None:
    """One line when `frames` outlasts the model's attention window (None when it fits): the model then
    no longer sees the start of the conversation, which a reader of its replies should know."""
    context = int(model.spec.context)
    if frames <= context:
        return None
    return (f"warning: {name} lasts {frames / FRAME_RATE:.1f} s ({frames} frames); {model.source} attends to the "
            f"last {context} frames ({context / FRAME_RATE:.1f} s) only, so speech before that falls out of its "
            "window")


__all__ = ["MAX_SECONDS", "RecordingTooLong", "add_length_args", "check_length", "check_recording",
           "context_warning", "max_seconds_from_args", "recording_frames"]
