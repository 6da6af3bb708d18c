"""The demo's recordings: a ZBB item spliced after its context prompt, or the user's upload, checked
against the demo's limits before any model work."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioError, load_audio
from duplex_steer.errors import DuplexSteerError

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE


class DemoError(DuplexSteerError):
    """A request the demo refuses, with the reason; shown in the page."""


@dataclass(frozen=True)
class DemoLimits:
    """Upload and recording limits (checked before any model work)."""

    max_upload_mb: float = 20.0
    max_seconds: float = 60.0
    min_seconds: float = 0.5
    silence_peak: float = 1e-3  # a recording whose peak amplitude is below this counts as silent


DEFAULT_LIMITS = DemoLimits()


@dataclass
class DemoRecording:
    """The user's stream of one run: 24 kHz mono, with the oracle onset and known turns when there are any."""

    wav: np.ndarray
    onset_s: float | None
    turns: list[tuple[float, float]] | None
    info: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.wav) / SAMPLE_RATE


# --- recordings ---------------------------------------------------------------------------------------
_ITEMS: dict[str, dict[str, Any]] | None = None


DEMO_RENDERING = "flite-slt"  # zbb/renderings/: the organism heard this voice in training (festival's it never did)


def zbb_items() -> dict[str, dict[str, Any]]:
    """The ZBB item bank by id (read once)."""
    global _ITEMS
    if _ITEMS is None:
        from zbb import load_items

        _ITEMS = {item["id"]: dict(item) for item in load_items()}
    return _ITEMS


def zbb_recording(item_id: str, interruption_s: float, reply_s: float, limits: DemoLimits = DemoLimits()) -> DemoRecording:
    """The item's context prompt, silence until `interruption_s`, the query, then `reply_s` of silence, spoken
    by `DEMO_RENDERING` (flite slt, whole sentences: a voice the organism was trained on).

    The query starts on a frame boundary (so the oracle onset frame is exact) and never before the
    context prompt has ended.
    """
    from zbb.build import load_context_audio, load_query_audio
    from zbb.rendering import RENDERINGS_DIR

    audio_dir = RENDERINGS_DIR / DEMO_RENDERING
    item = zbb_items().get(item_id)
    if item is None:
        raise DemoError(f"unknown ZBB item {item_id!r}; pick one from the list")
    try:
        context = load_context_audio(audio_dir, item["context"])
        query = load_query_audio(audio_dir, item_id)
    except (KeyError, OSError) as exc:
        raise DemoError(f"the committed ZBB rendering {audio_dir} lacks this item ({exc}); rebuild it with "
                        f"zbb build --tts flite --voice slt --out {audio_dir}") from None
    notes = []
    context_end = math.ceil(len(context) / FRAME_SAMPLES)
    onset_frame = int(math.floor(float(interruption_s) / FRAME_S + 1e-6))  # the frame holding that moment
    if onset_frame < context_end:
        notes.append(f"interruption moved to {context_end * FRAME_S:.2f} s, the end of the context prompt")
        onset_frame = context_end
    at = onset_frame * FRAME_SAMPLES
    wav = np.zeros(at + len(query) + int(round(max(float(reply_s), 0.0) * SAMPLE_RATE)), np.float32)
    wav[: len(context)] = context
    wav[at : at + len(query)] = query
    if len(wav) / SAMPLE_RATE > limits.max_seconds:
        raise DemoError(f"this recording would be {len(wav) / SAMPLE_RATE:.1f} s long; the demo takes at most "
                        f"{limits.max_seconds:g} s: choose an earlier interruption or a shorter reply window")
    onset_s = at / SAMPLE_RATE
    turns = [(0.0, len(context) / SAMPLE_RATE), (onset_s, (at + len(query)) / SAMPLE_RATE)]
    info = {"kind": "zbb", "rendering": DEMO_RENDERING, "item": item_id, "query": item["text"], "context": item["context"],
            "truth": item["truth"], "interruption_s": onset_s, "reply_s": float(reply_s)}
    return DemoRecording(wav, onset_s, turns, info, notes)


def user_recording(path: str | Path | None, limits: DemoLimits = DemoLimits()) -> DemoRecording:
    """An uploaded or recorded file, checked: readable audio, not empty, not silent, within the limits."""
    import soundfile as sf

    if not path:
        raise DemoError("no recording: upload an audio file or record one with the microphone (or pick a ZBB item)")
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise DemoError(f"the upload {name} did not arrive; upload it again")
    size = path.stat().st_size
    if size == 0:
        raise DemoError(f"{name} is empty (0 bytes); upload a WAV, FLAC or OGG recording")
    if size > limits.max_upload_mb * 1e6:
        raise DemoError(f"{name} is {size / 1e6:.1f} MB; uploads are limited to {limits.max_upload_mb:g} MB")
    try:
        header = sf.info(str(path))
        duration, rate, channels = float(header.duration), int(header.samplerate), int(header.channels)
        floating = header.subtype in ("FLOAT", "DOUBLE")
    except Exception:
        duration = rate = channels = None  # unreadable: load_audio says why
        floating = False
    if duration is not None and duration > limits.max_seconds:
        raise DemoError(f"{name} is {duration:.1f} s long; the demo takes recordings of at most "
                        f"{limits.max_seconds:g} s: trim it")
    try:
        wav = load_audio(path)
    except AudioError as exc:
        raise DemoError(str(exc).replace(str(path), name)) from None
    seconds = len(wav) / SAMPLE_RATE
    if seconds > limits.max_seconds:
        raise DemoError(f"{name} is {seconds:.1f} s long; the demo takes recordings of at most {limits.max_seconds:g} s")
    if seconds < limits.min_seconds:
        raise DemoError(f"{name} is only {seconds:.2f} s long; give at least {limits.min_seconds:g} s")
    peak = float(np.abs(wav).max())
    if peak < limits.silence_peak:
        raise DemoError(f"{name} is silent (peak amplitude {peak:.1e}); record or upload speech")
    notes = []
    if floating and peak > 1.0:  # past full scale: the model would hear it louder than the (clipped) input player
        wav = wav / peak
        notes.append(f"{name} goes past full scale (peak {peak:.2f}); scaled down to peak 1")
    info = {"kind": "upload", "file": name, "peak": peak, "sample_rate": rate, "channels": channels}
    return DemoRecording(wav, None, None, info, notes)


def describe_upload(rec: DemoRecording) -> str | None:
    """One line on what the server received (file, length, rate, channels, level) and what the model is fed;
    None for a ZBB item."""
    info = rec.info
    if info.get("kind") != "upload":
        return None
    rate, channels = info.get("sample_rate"), info.get("channels")
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels} channels")
    line = f"Input: {info['file']}, {rec.duration_s:.2f} s"
    if rate:
        line += f" at {rate / 1000:g} kHz {layout}"
        if (rate, channels) != (SAMPLE_RATE, 1):
            line += f", fed to the model as {SAMPLE_RATE / 1000:g} kHz mono"
    return f"{line}; peak {20 * math.log10(info['peak']):.0f} dBFS."


__all__ = ["DEFAULT_LIMITS", "FRAME_S", "DemoError", "DemoLimits", "DemoRecording", "describe_upload", "user_recording",
           "zbb_items", "zbb_recording"]
