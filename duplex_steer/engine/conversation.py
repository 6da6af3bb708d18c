"""Whole recordings through a duplex session: `converse(model, recordings)`.

Any sample rate and channel count in; 24 kHz mono inside; out, per conversation: the model's
waveform time-aligned with the input (same length), its per-frame text tokens and codes, and the
decoded text. An optional PersonaPlex-style start (voice prompt, silence, role prompt, silence) runs
before the recording; `frame_offset` says how many absolute frames it took.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..audio import FRAME_SAMPLES, SAMPLE_RATE, AudioError, load_audio, resample, to_mono
from ..errors import DuplexSteerError
from .model import DuplexModel
from .session import DuplexSession
from .text import PAD, decode_text, frame_pieces

# PersonaPlex's fixed codes for one frame of silence (model channel) and of a 440 Hz tone (user
# channel during the prompt), valid for the released Mimi codec only.
MIMI_SILENCE_CODES = (948, 243, 1178, 546, 1736, 1030, 1978, 2008)
MIMI_SINE_CODES = (430, 1268, 381, 1611, 1095, 1495, 56, 472)
PERSONAPLEX_DEFAULT_ROLE = ("You are a wise and friendly teacher. Answer questions or provide advice in a clear "
                            "and engaging way.")

Recording = str | Path | np.ndarray | tuple[np.ndarray, int]
FrameCallback = Callable[[DuplexSession, int], None]


class ConversationError(DuplexSteerError, ValueError):
    """A conversation that cannot run as asked (no codec, bad prompt, bad recording)."""


@dataclass
class ConversationPrompt:
    """PersonaPlex's conversation start, usable with any model.

    voice: a recording forced onto the model's audio channel (text PAD); role: a text prompt wrapped
    as "<system> ... <system>", one token per frame; silence_s of silence after each.
    """

    voice: Recording | None = None
    role: str | None = None
    silence_s: float = 0.5

    @classmethod
    def personaplex(cls, voice: Recording | None = None, role: str = PERSONAPLEX_DEFAULT_ROLE) -> ConversationPrompt:
        return cls(voice=voice, role=role)


@dataclass
class ConversationResult:
    """One batch of conversations. Frame i of every array is recording frame i (80 ms)."""

    user_codes: torch.Tensor  # [B, 8, T]
    model_codes: torch.Tensor  # [B, 8, T]; -1 where the model produced no frame (frame 0 with no prompt)
    text_tokens: torch.Tensor  # [B, T]; -1 likewise
    texts: list[str]
    pieces: list[list[str]]
    model_audio: np.ndarray | None  # [B, samples] at 24 kHz, the input's length; None without a codec
    user_audio: np.ndarray  # [B, samples] the (padded) 24 kHz input the codec encoded
    frame_offset: int  # absolute frame index of recording frame 0 (the prompt's length)
    input_samples: list[int] = field(default_factory=list)
    sample_rate: int = SAMPLE_RATE


def as_waveform(recording: Recording, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A path, a 24 kHz array, or (array, rate) -> mono float32 at `sample_rate` (arrays: [T] or [T, C])."""
    if isinstance(recording, (str, Path)):
        return load_audio(recording, sample_rate)
    if isinstance(recording, tuple):  # (samples [T] or [T, channels], rate)
        wav, sr = recording
        wav = resample(to_mono(wav), int(sr), sample_rate)
    else:
        wav = to_mono(np.asarray(recording, dtype=np.float32))
    if wav.size == 0:
        raise AudioError("the recording has no samples")
    if not np.isfinite(wav).all():
        raise AudioError("the recording contains NaN or infinite samples")
    return wav


def _fixed_frame(model: DuplexModel, codes: tuple[int, ...], wav: np.ndarray) -> torch.Tensor:
    if model.spec.card == 2048 and not model.is_random:
        return torch.tensor(codes, dtype=torch.long)
    return model.codec.encode(wav[None])[0, :, 0]


def prompt_frames(model: DuplexModel, prompt: ConversationPrompt) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(user codes [P, 8], forced model text [P], forced model audio [P, 8]) for a conversation start."""
    if model.codec is None:
        raise ConversationError("this model has no audio codec; a prompt needs one")
    t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
    sine = _fixed_frame(model, MIMI_SINE_CODES, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    silence = _fixed_frame(model, MIMI_SILENCE_CODES, np.zeros(FRAME_SAMPLES, np.float32))
    n_silence = round(prompt.silence_s * SAMPLE_RATE / FRAME_SAMPLES)
    texts: list[torch.Tensor] = []
    audios: list[torch.Tensor] = []
    if prompt.voice is not None:
        voice = model.codec.encode(as_waveform(prompt.voice)[None])[0].T.cpu()  # [F, 8]
        texts.append(torch.full((len(voice),), PAD))
        audios.append(voice)
    if prompt.voice is not None or prompt.role:
        texts.append(torch.full((n_silence,), PAD))
        audios.append(silence.expand(n_silence, -1))
    if prompt.role:
        role = prompt.role.strip()
        if not (role.startswith("<system>") and role.endswith("<system>")):
            role = f"<system> {role} <system>"
        ids = torch.tensor(model.tokenizer.encode(role), dtype=torch.long)
        texts.append(ids)
        audios.append(silence.expand(len(ids), -1))
        texts.append(torch.full((n_silence,), PAD))
        audios.append(silence.expand(n_silence, -1))
    if not texts:
        empty = torch.zeros((0, model.spec.num_audio_codebooks), dtype=torch.long)
        return empty, torch.zeros(0, dtype=torch.long), empty
    text = torch.cat(texts)
    audio = torch.cat(audios)
    return sine.expand(len(text), -1), text, audio


@torch.no_grad()
def converse(
    model: DuplexModel,
    recordings: Recording | Sequence[Recording],
    *,
    greedy: bool = False,
    seed: int | None = 0,
    prompt: ConversationPrompt | None = None,
    on_frame: FrameCallback | None = None,
    before_frame: FrameCallback | None = None,
    progress: bool = False,
    decode_audio: bool = True,
    session: DuplexSession | None = None,
    noise_groups: list[int] | None = None,
) -> ConversationResult:
    """Run one or several recordings (a batch) through a fresh duplex session, frame by frame.

    before_frame(session, recording_frame) runs before each recording frame is stepped (onset
    detectors decide there, so steering can act on that very frame); on_frame(session,
    recording_frame) runs after it (probes read `session.last_hidden`). Steering hooks on
    `model.layers` act inside the steps.
    Shorter recordings in a batch are padded with silence to the longest.
    """
    if model.codec is None:
        raise ConversationError(f"{model.source} was loaded without an audio codec; load the full checkpoint")
    items = [recordings] if isinstance(recordings, (str, Path, np.ndarray, tuple)) else list(recordings)
    if not items:
        raise ConversationError("no recordings given")
    waves = [as_waveform(r) for r in items]
    lengths = [len(w) for w in waves]
    longest = max(lengths)
    batch = np.stack([np.pad(w, (0, longest - len(w))) for w in waves])
    user = model.codec.encode(batch).cpu()  # [B, 8, T]
    B, A, T = user.shape

    sess = session or model.session(batch_size=B, greedy=greedy, seed=seed, noise_groups=noise_groups)
    if sess.batch_size != B:
        raise ConversationError(f"session batch size {sess.batch_size} != number of recordings {B}")
    p_user, p_text, p_audio = prompt_frames(model, prompt) if prompt else (None, None, None)
    offset = sess.frame
    if p_user is not None:
        for i in range(len(p_text)):
            sess.step(p_user[i].expand(B, -1), text=p_text[i].expand(B), audio=p_audio[i].expand(B, -1))
        offset = sess.frame

    text = torch.full((B, T), -1, dtype=torch.long)
    codes = torch.full((B, A, T), -1, dtype=torch.long)
    frames = range(T)
    if progress:
        from tqdm.auto import tqdm

        frames = tqdm(frames, desc=f"conversation x{B}", unit="frame")
    for i in frames:
        if before_frame is not None:
            before_frame(sess, i)
        out = sess.step(user[:, :, i])
        if out is not None:
            text[:, i], codes[:, :, i] = out.text.cpu(), out.audio.cpu()
        if on_frame is not None:
            on_frame(sess, i)

    audio = decode_model_audio(model, codes, longest) if decode_audio else None
    return ConversationResult(
        user_codes=user, model_codes=codes, text_tokens=text,
        texts=[decode_text(model.tokenizer, row.tolist()) for row in text],
        pieces=[frame_pieces(model.tokenizer, row.tolist()) for row in text],
        model_audio=audio, user_audio=batch,
        frame_offset=offset, input_samples=lengths,
    )


def decode_model_audio(model: DuplexModel, codes: torch.Tensor, samples: int) -> np.ndarray:
    """Model codes [B, 8, T] (-1 where no frame) -> [B, samples] waveform, frame-aligned, silence where -1."""
    valid = (codes >= 0).all(1)  # [B, T]
    first = int(valid.float().argmax(1).min()) if valid.any() else codes.shape[-1]
    out = np.zeros((codes.shape[0], codes.shape[-1] * FRAME_SAMPLES), dtype=np.float32)
    if first < codes.shape[-1]:
        wav = model.codec.decode(codes[:, :, first:].clamp(min=0))
        out[:, first * FRAME_SAMPLES : first * FRAME_SAMPLES + wav.shape[1]] = wav[:, : out.shape[1] - first * FRAME_SAMPLES]
    return out[:, :samples]
