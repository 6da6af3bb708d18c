"""PersonaPlex's conversation start (voice, silence, role, silence), for any model and session.

The start, as NVIDIA/personaplex's `LMGen.step_system_prompts` runs it (absolute frames from 0):
1. the voice: a recording's codes forced onto the model's audio channel with text PAD, or a voice
   `.pt`'s precomputed input embeddings (see `engine.voices`);
2. 0.5 s (6 frames) of silence: Mimi's silence codes on the model channel, text PAD;
3. the role: "<system> ... <system>" tokenized, one token per frame, model audio silence;
4. 0.5 s of silence again.
The user channel holds a 440 Hz sine (amplitude 0.5) throughout. Prompt element p is absolute frame
p (element 0 is never read: frame 0 holds the initial tokens); the first recording frame follows the
prompt and is the model's own. What the model outputs during the prompt is discarded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..audio import FRAME_SAMPLES, SAMPLE_RATE, AudioError, load_audio, resample, to_mono
from ..errors import DuplexSteerError
from ..loudness import BLOCK_S, normalize_loudness
from .text import PAD
from .voices import (
    AUDIO_SUFFIXES,
    DEFAULT_VOICE,
    VoiceEmbeddings,
    VoiceError,
    find_voices_dir,
    is_voice_name,
    model_folder,
    read_voice_file,
    sha256_of,
    voice_file,
)

if TYPE_CHECKING:
    from .model import DuplexModel
    from .session import DuplexSession

# PersonaPlex's fixed codes for one frame of silence (model channel) and of its 440 Hz sine (user
# channel during the prompt), valid for the released Mimi codec only.
MIMI_SILENCE_CODES = (948, 243, 1178, 546, 1736, 1030, 1978, 2008)
MIMI_SINE_CODES = (430, 1268, 381, 1611, 1095, 1495, 56, 472)
PERSONAPLEX_DEFAULT_ROLE = ("You are a wise and friendly teacher. Answer questions or provide advice in a clear "
                            "and engaging way.")
VOICE_LUFS = -24.0  # PersonaPlex normalises a WAV voice prompt to this loudness
NO_PROMPT = "none"  # --voice none / --text-prompt none: leave that part out

Recording = str | Path | np.ndarray | tuple[np.ndarray, int]


class ConversationError(DuplexSteerError, ValueError):
    """A conversation that cannot run as asked (no codec, bad prompt, bad recording)."""


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


@dataclass
class ConversationPrompt:
    """PersonaPlex's conversation start, usable with any model.

    voice: a recording (forced onto the model's audio channel, normalised to -24 LUFS unless
    `normalize_voice` is False or it is shorter than 0.4 s) or a `VoiceEmbeddings` (a PersonaPlex
    voice `.pt`); role: a text prompt wrapped as "<system> ... <system>"; silence_s of silence
    after each. `voice_name` and `voice_sha256` say which voice it was in records.
    """

    voice: Recording | VoiceEmbeddings | None = None
    role: str | None = None
    silence_s: float = 0.5
    normalize_voice: bool = True
    voice_name: str | None = None
    voice_sha256: str | None = None

    @classmethod
    def personaplex(cls, voice: Recording | VoiceEmbeddings | None = None,
                    role: str = PERSONAPLEX_DEFAULT_ROLE) -> ConversationPrompt:
        return cls(voice=voice, role=role)

    def record(self) -> dict[str, Any]:
        """What results and reports say about this prompt."""
        name = self.voice_name
        if name is None and isinstance(self.voice, VoiceEmbeddings):
            name = self.voice.name
        elif name is None and isinstance(self.voice, (str, Path)):
            name = str(self.voice)
        elif name is None and self.voice is not None:
            name = "array"
        sha = self.voice_sha256 or (self.voice.sha256 if isinstance(self.voice, VoiceEmbeddings) else None)
        kind = None if self.voice is None else ("embeddings" if isinstance(self.voice, VoiceEmbeddings) else "recording")
        return {"voice": name, "voice_kind": kind, "voice_sha256": sha[:16] if sha else None,
                "text_prompt": self.role or None, "silence_s": self.silence_s}


def describe_prompt(prompt: ConversationPrompt | None) -> dict[str, Any] | None:
    """`prompt.record()`, or None for a conversation without a prompt."""
    return prompt.record() if prompt is not None else None


@dataclass
class PromptFrames:
    """A prompt as per-frame inputs; element p is absolute frame p.

    user [P, 8] the user's codes; text [P] and audio [P, 8] the model's tokens (-1: not forced);
    embeddings [E, dim] (a voice `.pt`) replace the transformer's input at frames 0 .. E - 1.
    """

    user: Tensor
    text: Tensor
    audio: Tensor
    embeddings: Tensor | None = None

    def __len__(self) -> int:
        return len(self.text)


def wrap_role(role: str) -> str:
    """PersonaPlex's wrapping: '<system> ROLE <system>' unless already wrapped."""
    role = role.strip()
    return role if role.startswith("<system>") and role.endswith("<system>") else f"<system> {role} <system>"


def _fixed_frame(model: DuplexModel, codes: tuple[int, ...], wav: np.ndarray) -> Tensor:
    if model.spec.card == 2048 and not model.is_random:
        return torch.tensor(codes, dtype=torch.long)
    return model.codec.encode(wav[None])[0, :, 0].cpu()


def _voice_from_ring(voice: VoiceEmbeddings, model: DuplexModel, sine: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(user, text, audio) of a `.pt` voice's F frames: only the last two frames' tokens are known
    (from its ring), which is all the frames after it read."""
    spec, F = model.spec, voice.frames
    A = spec.num_audio_codebooks
    delayed = torch.tensor([d > 0 for d in spec.delays[1 : A + 1]])
    last, after = voice.ring_column(F - 1), voice.ring_column(F)
    user = sine.expand(F, -1).clone()
    text = torch.full((F,), PAD)
    audio = torch.full((F, A), -1, dtype=torch.long)
    text[-1] = last[0]
    audio[-1] = torch.where(delayed, after[1 : A + 1], last[1 : A + 1])
    user[-1] = torch.where(delayed, after[A + 1 :], last[A + 1 :])
    if F >= 2:  # frame F - 2's delayed codebooks sit in frame F - 1's column
        audio[-2] = torch.where(delayed, last[1 : A + 1], audio[-2])
        user[-2] = torch.where(delayed, last[A + 1 :], user[-2])
    # initial tokens (ids = card / text_card) only sit where the session reads initial tokens itself
    audio[audio >= spec.card] = -1
    user[user >= spec.card] = sine.expand(F, -1)[user >= spec.card]
    text[text >= spec.text_card] = -1
    return user, text, audio


def prompt_frames(model: DuplexModel, prompt: ConversationPrompt) -> PromptFrames:
    """The per-frame inputs of a conversation start (see the module docstring)."""
    if model.codec is None:
        raise ConversationError("this model has no audio codec; a prompt needs one")
    t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
    sine = _fixed_frame(model, MIMI_SINE_CODES, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    silence = _fixed_frame(model, MIMI_SILENCE_CODES, np.zeros(FRAME_SAMPLES, np.float32))
    n_silence = int(prompt.silence_s * SAMPLE_RATE / FRAME_SAMPLES)  # PersonaPlex: int(0.5 * 12.5) = 6
    A = model.spec.num_audio_codebooks
    users: list[Tensor] = []
    texts: list[Tensor] = []
    audios: list[Tensor] = []
    embeddings = None

    def add(text: Tensor, audio: Tensor, user: Tensor | None = None) -> None:
        texts.append(text)
        audios.append(audio)
        users.append(sine.expand(len(text), -1) if user is None else user)

    if isinstance(prompt.voice, VoiceEmbeddings):
        prompt.voice.check(model.spec)
        embeddings = prompt.voice.embeddings
        user, text, audio = _voice_from_ring(prompt.voice, model, sine)
        add(text, audio, user)
    elif prompt.voice is not None:
        wav = as_waveform(prompt.voice)
        if prompt.normalize_voice and len(wav) >= BLOCK_S * SAMPLE_RATE:  # loudness needs one 0.4 s block

            wav = normalize_loudness(wav, SAMPLE_RATE, VOICE_LUFS)
        voice = model.codec.encode(wav[None])[0].T.cpu()  # [F, 8]
        add(torch.full((len(voice),), PAD), voice)
    if prompt.voice is not None or prompt.role:
        add(torch.full((n_silence,), PAD), silence.expand(n_silence, -1))
    if prompt.role:
        ids = torch.tensor(model.tokenizer.encode(wrap_role(prompt.role)), dtype=torch.long)
        add(ids, silence.expand(len(ids), -1))
        add(torch.full((n_silence,), PAD), silence.expand(n_silence, -1))
    if not texts:
        empty = torch.zeros((0, A), dtype=torch.long)
        return PromptFrames(empty, torch.zeros(0, dtype=torch.long), empty.clone())
    return PromptFrames(torch.cat(users), torch.cat(texts), torch.cat(audios), embeddings)


def run_prompt(session: DuplexSession, frames: PromptFrames) -> int:
    """Step a fresh `session` through a prompt (every item of the batch alike); returns its length.

    Step t feeds user frame t and forces the model's tokens of frame t + 1 (the session's rule), so
    element t + 1 is forced at step t and the last step forces nothing: the frame after the prompt
    is the model's own, as in PersonaPlex.
    """
    if session.frame != 0 and len(frames):
        raise ConversationError(f"a prompt starts a conversation; this session is already at frame {session.frame}")
    B, P = session.batch_size, len(frames)
    emb = frames.embeddings
    for t in range(P):
        forced = t + 1 < P
        session.step(frames.user[t].expand(B, -1),
                     text=frames.text[t + 1].expand(B) if forced else None,
                     audio=frames.audio[t + 1].expand(B, -1) if forced else None,
                     input_embedding=emb[t] if emb is not None and t < len(emb) else None)
    return P


# --- choosing a prompt (commands) -----------------------------------------------------------------
def check_voice_arg(voice: str | None) -> None:
    """Check a --voice value before any model loads: files exist, `.pt` files are voice files."""
    if voice is None or voice.lower() == NO_PROMPT:
        return
    path = Path(voice).expanduser()
    if path.suffix.lower() == ".pt" and path.is_file():
        read_voice_file(path)
    elif is_voice_name(voice):
        return  # a name in the model's voices; looked up once the model is known
    elif not path.is_file():
        raise VoiceError(f"voice file {voice} does not exist (give a voice name such as {DEFAULT_VOICE}, a .pt "
                         "voice file or a recording)")
    elif path.suffix.lower() not in AUDIO_SUFFIXES:
        raise VoiceError(f"voice {voice}: expected a .pt voice file or a recording ({', '.join(AUDIO_SUFFIXES)})")


def build_prompt(model: DuplexModel, voice: str | None = None, text_prompt: str | None = None
                 ) -> ConversationPrompt | None:
    """The prompt a command runs `model` with.

    voice: a name in the checkpoint's voices (voices.tgz), a `.pt` voice file or a recording;
    text_prompt: the role. None means the model's default: PersonaPlex-shaped models (user heads,
    `model.persona_prompts`) get PersonaPlex's default voice (when the checkpoint ships voices) and role,
    others nothing;
    "none" leaves that part out.
    """
    personaplex = model.persona_prompts
    check_voice_arg(voice)
    voices_dir = None
    if voice is None and personaplex:
        voices_dir = find_voices_dir(model_folder(model))
        voice = DEFAULT_VOICE if voices_dir is not None else None
    role = text_prompt if text_prompt is not None else (PERSONAPLEX_DEFAULT_ROLE if personaplex else None)
    if role is not None and (role.strip().lower() == NO_PROMPT or not role.strip()):
        role = None
    if voice is not None and voice.lower() == NO_PROMPT:
        voice = None
    if voice is None and role is None:
        return None
    prompt = ConversationPrompt(role=role)
    if voice is not None:
        path = voice_file(voice, voices_dir if voices_dir is not None else
                          (find_voices_dir(model_folder(model)) if is_voice_name(voice) else None))
        prompt.voice = read_voice_file(path) if path.suffix.lower() == ".pt" else str(path)
        prompt.voice_name = path.stem if is_voice_name(voice) else str(path)
        prompt.voice_sha256 = prompt.voice.sha256 if isinstance(prompt.voice, VoiceEmbeddings) else sha256_of(path)
        if isinstance(prompt.voice, VoiceEmbeddings):
            prompt.voice.check(model.spec)
    return prompt
