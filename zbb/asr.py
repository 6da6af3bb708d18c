"""Optional ASR of the model's spoken reply, instead of reading its inner-monologue text stream.

The paper scored ZBB on a neural ASR transcript of the model's audio. Here any transformers
automatic-speech-recognition model the user names (a local folder, or a hub id already in the cache:
nothing is downloaded implicitly) transcribes the model's output audio of a reply window:

    asr = load_asr("path/to/whisper-or-ctc-model")
    transcript = asr.transcribe(wave_24k, offset_s=3.2)   # text, and word chunks when supported

Word timestamps are asked for first (Whisper needs `alignment_heads` in its generation config; CTC
models give them natively); a model that cannot give them returns the text with `chunks=None`, and
callers then keep the text stream's word timing for take-over and latency.
`zbb run --asr-model PATH` wires this into the runner (`transcribe_scenario`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE, resample
from duplex_steer.errors import DuplexSteerError

LONG_FORM_S = 30.0  # beyond this, the pipeline transcribes in 30 s chunks (Whisper's window)


class ASRError(DuplexSteerError, ValueError):
    """An ASR model that cannot be loaded or used, with what to do about it."""


@dataclass
class Transcript:
    """What the ASR heard: the text, and words {"text", "timestamp": [start_s, end_s]} or None."""

    text: str
    chunks: list[dict[str, Any]] | None


class ASR:
    """A transformers ASR pipeline loaded once; `transcribe` takes any waveform and sample rate."""

    def __init__(self, pipe: Any, name: str):
        self.pipe, self.name = pipe, name
        self.word_timestamps: bool | None = None  # unknown until the first call
        self.word_timestamps_error: str | None = None

    @property
    def sample_rate(self) -> int:
        return int(getattr(self.pipe.feature_extractor, "sampling_rate", 16_000))

    def _inputs(self, wav: np.ndarray) -> dict[str, Any]:
        return {"raw": wav, "sampling_rate": self.sample_rate}  # fresh each call: the pipeline pops its keys

    def transcribe(self, wav: np.ndarray, sample_rate: int = SAMPLE_RATE, offset_s: float = 0.0) -> Transcript:
        """Transcribe mono `wav`; word times are shifted by `offset_s` onto the caller's time axis."""
        wav = resample(np.asarray(wav, dtype=np.float32), sample_rate, self.sample_rate)
        if wav.size == 0:
            return Transcript("", [] if self.word_timestamps else None)
        kwargs = {"chunk_length_s": LONG_FORM_S} if len(wav) > LONG_FORM_S * self.sample_rate else {}
        out = None
        if self.word_timestamps is not False:
            try:
                out = self.pipe(self._inputs(wav), return_timestamps="word", **kwargs)
                self.word_timestamps = True
            except Exception as exc:  # models without word alignment raise various types
                if self.word_timestamps:  # worked before: a real failure, not a missing feature
                    raise
                self.word_timestamps, self.word_timestamps_error = False, f"{type(exc).__name__}: {exc}"
        if out is None:
            out = self.pipe(self._inputs(wav), **kwargs)
        text = str(out.get("text", "")).strip()
        if not self.word_timestamps:
            return Transcript(text, None)
        end_s = len(wav) / self.sample_rate
        chunks = []
        for chunk in out.get("chunks", []):
            word = str(chunk.get("text", "")).strip()
            start, end = chunk.get("timestamp", (None, None))
            if not word or start is None:
                continue
            end = end_s if end is None else end
            chunks.append({"text": word, "timestamp": [offset_s + float(start), offset_s + float(end)]})
        return Transcript(text, chunks)


_CACHE: dict[tuple[str, str], ASR] = {}


def load_asr(model: str, device: str | torch.device | None = None) -> ASR:
    """Load (once per process) the ASR pipeline of a local folder or a cached hub id.

    Raises ASRError naming the problem: a missing folder, an id not in the local cache, or a folder
    that holds no speech-recognition model.
    """
    name = str(model)
    dev = str(device) if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    if (name, dev) in _CACHE:
        return _CACHE[(name, dev)]
    path = Path(name).expanduser()
    looks_local = name.startswith((".", "/", "~")) or name.count("/") != 1
    if looks_local and not path.is_dir():
        raise ASRError(f"ASR model folder not found: {name}; give a folder holding a transformers speech-"
                       "recognition model (config.json, weights, processor) or a hub id already downloaded")
    from transformers import pipeline

    try:
        pipe = pipeline("automatic-speech-recognition", model=str(path) if path.is_dir() else name, device=dev)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... for unusable folders
        where = "folder" if path.is_dir() else "hub id (not a local folder; is it in the cache? `hf download ID`)"
        raise ASRError(f"could not load ASR model {name!r} as a {where}: {type(exc).__name__}: {exc}") from None
    asr = _CACHE[(name, dev)] = ASR(pipe, name)
    return asr


def transcribe_scenario(asr: ASR, model, scenario, codes: dict[int, torch.Tensor], b: int,
                        first_frame: int | None = None) -> Transcript:
    """Transcribe the model's audio from `first_frame` (default: the query onset) to the end of the reply.

    `codes` maps a session frame to the model's codes of that frame for the whole batch ([B, 8]);
    batch item `b` is this scenario. The scenario's audio is decoded from its first frame (the codec
    is causal, so the window sounds as it did in the stream), then the window is cut out. Word times
    are on the scenario's time axis (seconds from its start), like `Scenario.word_chunks`. The runner
    scores only the words that start in `Scenario.reply_window`; an ASR without word times gets the
    window's audio alone (`first_frame` = the window's first frame).
    """
    from duplex_steer.engine.conversation import decode_model_audio

    frames = range(scenario.start_frame, scenario.end_frame)
    missing = torch.full((model.spec.num_audio_codebooks,), -1, dtype=torch.long)
    stream = torch.stack([codes[f][b] if f in codes else missing for f in frames], 1)  # [8, F]
    wav = decode_model_audio(model, stream[None], len(frames) * FRAME_SAMPLES)[0]
    first_frame = scenario.onset_frame if first_frame is None else first_frame
    first = (first_frame - scenario.start_frame) * FRAME_SAMPLES
    return asr.transcribe(wav[first:], SAMPLE_RATE, offset_s=first / SAMPLE_RATE)


__all__ = ["ASR", "ASRError", "Transcript", "load_asr", "transcribe_scenario"]
