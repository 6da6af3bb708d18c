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

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from .model import DuplexModel
from .prompt import (  # noqa: F401  (re-exported: the prompt API predates engine.prompt)
    MIMI_SILENCE_CODES,
    MIMI_SINE_CODES,
    PERSONAPLEX_DEFAULT_ROLE,
    ConversationError,
    ConversationPrompt,
    PromptFrames,
    Recording,
    as_waveform,
    describe_prompt,
    prompt_frames,
    run_prompt,
)
from .session import DuplexSession
from .text import decode_text, frame_pieces

FrameCallback = Callable[[DuplexSession, int], None]


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
    prompt: dict | None = None  # ConversationPrompt.record() of the prompt it started with
    sample_rate: int = SAMPLE_RATE


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
    noise_keys: Sequence[int] | None = None,
) -> ConversationResult:
    """Run one or several recordings (a batch) through a fresh duplex session, frame by frame.

    before_frame(session, recording_frame) runs before each recording frame is stepped (onset
    detectors decide there, so steering can act on that very frame); on_frame(session,
    recording_frame) runs after it (probes read `session.last_hidden`). Steering hooks on
    `model.layers` act inside the steps.
    Shorter recordings in a batch are padded with silence to the longest. `noise_keys` (one per
    recording, `engine.noise.key_for`) key each recording's sampling noise to it, so it samples the same
    whatever batch it is in; without them one seeded stream serves the batch (`model.session`).
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

    start = prompt_frames(model, prompt) if prompt is not None else None
    sess = session or model.session(batch_size=B, greedy=greedy, seed=seed, noise_groups=noise_groups,
                                    noise_keys=noise_keys, max_frames=T + (len(start) if start is not None else 0))
    if sess.batch_size != B:
        raise ConversationError(f"session batch size {sess.batch_size} != number of recordings {B}")
    if start is not None:
        run_prompt(sess, start)
    offset = sess.frame

    # the model's frames stay on its device until the end: one copy to the host, not one per frame
    text = torch.full((B, T), -1, dtype=torch.long, device=model.device)
    codes = torch.full((B, A, T), -1, dtype=torch.long, device=model.device)
    frames = range(T)
    if progress:
        from tqdm.auto import tqdm

        frames = tqdm(frames, desc=f"conversation x{B}", unit="frame")
    for i in frames:
        if before_frame is not None:
            before_frame(sess, i)
        out = sess.step(user[:, :, i])
        if out is not None:
            text[:, i], codes[:, :, i] = out.text, out.audio
        if on_frame is not None:
            on_frame(sess, i)
    text, codes = text.cpu(), codes.cpu()

    audio = decode_model_audio(model, codes, longest) if decode_audio else None
    return ConversationResult(
        user_codes=user, model_codes=codes, text_tokens=text,
        texts=[decode_text(model.tokenizer, row.tolist()) for row in text],
        pieces=[frame_pieces(model.tokenizer, row.tolist()) for row in text],
        model_audio=audio, user_audio=batch,
        frame_offset=offset, input_samples=lengths, prompt=describe_prompt(prompt),
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
