"""The streaming duplex session: one 80 ms frame per `step`, a lockstep batch of conversations.

Semantics follow the reference `LMGen.step` exactly (checked token for token on the fixtures):
- tokens live in a small ring of delayed positions (size max_delay + 2); a stream with delay d
  holds frame p - d at position p;
- step t feeds the user's 8 codes of frame t and runs the transformer on position t, which holds the
  user's codebook 0 of frame t with the text and model audio sampled at step t - 1;
- positions p <= delay read the initial token (audio: card, text: text_card);
- step t returns the model's frame t (text token and 8 codes), or None at t = 0.
Past `context` frames, attention covers the last `context` frames (the reference's ring KV cache).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import torch
from torch import Tensor

from ..errors import DuplexSteerError
from .fast_step import AdditionHandle, DeviceAddition, FastStep, FastStepError
from .kv_cache import FrameKVCache
from .noise import KeyedNoise
from .spec import ModelSpec


class SteppableModel(Protocol):
    """What a session needs of its model (`engine.model.DuplexModel` is one): the pieces of one frame's
    forward pass. Typed here so that the session does not import the model, which creates sessions."""

    spec: ModelSpec

    @property
    def num_layers(self) -> int: ...
    @property
    def device(self) -> torch.device: ...
    @property
    def dtype(self) -> torch.dtype: ...
    def initial_tokens(self) -> Tensor: ...
    def embed(self, tokens: Tensor) -> Tensor: ...
    def run_layers(self, x: Tensor, start: int = 0, cache: FrameKVCache | None = None) -> Tensor: ...
    def final_norm(self, h: Tensor) -> Tensor: ...
    def text_logits(self, normed: Tensor) -> Tensor: ...
    def depth_step(self, k: int, normed: Tensor, prev_token: Tensor, kv: list[list[Tensor]]) -> Tensor: ...


@dataclass
class SamplingConfig:
    """Greedy decoding, or temperature + top-k sampling (the reference's defaults)."""

    greedy: bool = False
    text_temperature: float = 0.7
    text_top_k: int = 25
    audio_temperature: float = 0.8
    audio_top_k: int = 250


class Frame(NamedTuple):
    """What one step returns: the model's text token [B] and 8 audio codes [B, 8] for one frame."""

    text: Tensor
    audio: Tensor


def sample_token(logits: Tensor, greedy: bool, temperature: float, top_k: int,
                 generator: torch.Generator | None = None, groups: Tensor | None = None,
                 race: Tensor | None = None, num_groups: int | None = None) -> Tensor:
    """[N, V] logits -> [N] tokens. Top-k then a categorical draw (exponential race, as the reference).

    `groups` [N] (ids 0..G-1) makes rows of one group share their random draws (common random
    numbers), so a steered and an unsteered copy of a conversation differ only by the steering;
    give `num_groups` (G, known on the host) so that no device value is read to size the draw.
    `race` [N, >= top_k] gives the exponential variates per top-k rank instead (keyed noise,
    `engine.noise`); then neither `generator` nor `groups` is used.
    """
    if greedy or temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    top_p, top_i = torch.topk(probs, min(top_k, probs.shape[-1]), dim=-1)
    if race is not None:
        race = race[:, : top_p.shape[1]].to(top_p.dtype)
    elif groups is None:
        race = torch.empty_like(top_p).exponential_(1.0, generator=generator)
    else:
        if num_groups is None:
            num_groups = int(groups.max()) + 1  # a device read: the session passes num_groups instead
        race = torch.empty((num_groups, top_p.shape[1]), device=top_p.device,
                           dtype=top_p.dtype).exponential_(1.0, generator=generator)[groups]
    return top_i.gather(-1, (top_p / race).argmax(-1, keepdim=True)).squeeze(-1)


class SessionInputError(DuplexSteerError, ValueError):
    """User codes or forced tokens of the wrong shape, type or range."""


class DuplexSession:
    """Streaming state for `batch_size` independent conversations stepped in lockstep."""

    def __init__(self, model: SteppableModel, batch_size: int = 1, sampling: SamplingConfig | None = None,
                 seed: int | None = None, noise_groups: list[int] | None = None,
                 noise_keys: Sequence[int] | None = None, max_frames: int | None = None, fast: bool = False):
        if batch_size < 1:
            raise SessionInputError(f"batch_size must be >= 1, got {batch_size}")
        spec = model.spec
        self.model, self.spec, self.batch_size = model, spec, batch_size
        self.sampling = sampling or SamplingConfig()
        self.frame = 0  # absolute index of the next frame to step
        dev = model.device
        self._ring = spec.max_delay + 2
        self._tokens = torch.full((batch_size, spec.n_q + 1, self._ring), -2, dtype=torch.long, device=dev)
        self._initial = model.initial_tokens()
        # which rows still read the initial token at position p <= max_delay: [max_delay + 1, 17]
        self._initial_rows = torch.tensor([[p <= d for d in spec.delays] for p in range(spec.max_delay + 1)],
                                          device=dev)
        A = spec.num_audio_codebooks
        self._user_rows = torch.arange(A + 1, 2 * A + 1, device=dev)
        self._user_delays = torch.tensor(spec.delays[A + 1 :], device=dev)
        self._model_rows = torch.arange(1, A + 1, device=dev)
        self._model_delays = torch.tensor(spec.delays[1 : A + 1], device=dev)
        self._pending_audio: Tensor | None = None  # forced codes whose delayed part is sampled next step
        # allocated once at the first frame: min(context, max_frames) frames (see FrameKVCache)
        self.cache = FrameKVCache(model.num_layers, spec.context, max_frames)
        self.generator: torch.Generator | None = None
        if seed is not None:
            self.generator = torch.Generator(device=dev).manual_seed(int(seed))
        self.noise_groups: Tensor | None = None
        self.num_noise_groups: int | None = None  # kept on the host: sizing the draw never reads the device
        if noise_groups is not None:
            if len(noise_groups) != batch_size:
                raise SessionInputError(f"noise_groups has {len(noise_groups)} entries for batch size {batch_size}")
            distinct = sorted(set(noise_groups))
            self.num_noise_groups = len(distinct)
            self.noise_groups = torch.tensor([distinct.index(g) for g in noise_groups], device=dev)
        self.noise = self._keyed_noise(noise_keys, noise_groups, dev)
        # What the last step computed, for lenses and probes: the final-normed output [B, dim], the
        # text logits, and the tokens it sampled in the delayed layout (text and codebook 0 belong
        # to frame t + 1, codebooks 1-7 to frame t).
        self.last_hidden: Tensor | None = None
        self.last_text_logits: Tensor | None = None
        self.last_sampled_text: Tensor | None = None
        self.last_sampled_audio: Tensor | None = None
        self.last_input: Tensor | None = None  # the tokens [B, 17] the last token-embedded step fed (probes)
        # the fast step (engine.fast_step): compiled, static shapes, built-in steering; made at the first step
        self.fast = fast
        self.fast_step: FastStep | None = None
        self.layer_states: dict[int, Tensor] = {}  # fast step: the captured layers' outputs [B, dim] (capture_layers)
        self._capture: tuple[int, ...] = ()

    def _keyed_noise(self, keys: Sequence[int] | None, groups: list[int] | None, dev) -> KeyedNoise | None:
        """Per-row keyed noise (see `engine.noise`): a row draws the same whatever batch it is in."""
        if keys is None:
            return None
        if groups is not None:
            raise SessionInputError("give noise_keys or noise_groups, not both (equal keys already share noise)")
        if len(keys) != self.batch_size:
            raise SessionInputError(f"noise_keys has {len(keys)} entries for batch size {self.batch_size}")
        return KeyedNoise(keys, dev)

    def _step_race(self, t: int, text_vocab: int) -> Tensor | None:
        """This step's keyed exponential variates [B, 1 + codebooks, width], or None (generator noise, greedy)."""
        s = self.sampling
        if self.noise is None or s.greedy:
            return None
        width = max(min(s.text_top_k, text_vocab), min(s.audio_top_k, self.spec.card))  # the widest top-k
        return self.noise.race(t, 1 + self.spec.num_audio_codebooks, width)

    # --- validation -------------------------------------------------------------------------------
    def _codes(self, codes: Tensor | None, name: str, width: int | None) -> Tensor | None:
        if codes is None:
            return None
        codes = torch.as_tensor(codes)
        B = self.batch_size
        if codes.dtype.is_floating_point or codes.dtype == torch.bool:
            raise SessionInputError(f"{name} must be integer codes, got dtype {codes.dtype}")
        if width is None:
            if codes.dim() == 0:
                codes = codes.expand(B)
            if codes.shape != (B,):
                raise SessionInputError(f"{name} must have shape [{B}], got {list(codes.shape)}")
            return codes.to(self.model.device, torch.long)
        if codes.dim() == 3 and codes.shape[-1] == 1:
            codes = codes[..., 0]  # the reference's [B, K, 1] layout
        if codes.shape != (B, width):
            raise SessionInputError(f"{name} must have shape [{B}, {width}] (batch, codebooks), got "
                                    f"{list(codes.shape)}")
        if codes.device.type == "cpu":
            # checked where the codes come from, on the host (numpy: host memory, never a device read);
            # codes already on an accelerator are not checked, as that would force a sync per step
            host = codes.numpy()
            if ((host < -1) | (host >= self.spec.card)).any():
                raise SessionInputError(f"{name} values must be audio codes in [0, {self.spec.card}) or -1 "
                                        f"(no input), got range [{host.min()}, {host.max()}]")
        return codes.to(self.model.device, torch.long)

    def _embedding(self, emb: Tensor) -> Tensor:
        """A given transformer input [dim] or [B, dim] -> [B, 1, dim] in the model's dtype and device."""
        emb = torch.as_tensor(emb)
        if emb.shape not in ((self.spec.dim,), (self.batch_size, self.spec.dim)):
            raise SessionInputError(f"input_embedding must have shape [{self.spec.dim}] or [{self.batch_size}, "
                                    f"{self.spec.dim}], got {list(emb.shape)}")
        return emb.to(self.model.device, self.model.dtype).expand(self.batch_size, -1).unsqueeze(1)

    # --- the step ---------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, user_codes: Tensor, text: Tensor | int | None = None, audio: Tensor | None = None,
             input_embedding: Tensor | None = None) -> Frame | None:
        """Feed the user's codes [B, 8] for frame t; return the model's frame t, or None at t = 0.

        `text` / `audio` optionally force the model's own tokens of frame t + 1 (the frame whose text
        this step predicts), e.g. for a voice or role prompt; negative entries are not forced.
        `input_embedding` [dim] or [B, dim] replaces the summed token embedding as the transformer's
        input at frame t (a PersonaPlex voice `.pt`, `engine.prompt`).
        """
        spec, t, R = self.spec, self.frame, self._ring
        A = spec.num_audio_codebooks
        user = self._codes(user_codes, "user_codes", A)
        forced_text = self._codes(text, "text", None)
        forced_audio = self._codes(audio, "audio", A)
        tokens = self._tokens
        tokens[:, self._user_rows, (t + self._user_delays) % R] = user

        inp = tokens[:, :, t % R]
        if t <= spec.max_delay:  # t is a host int: no device read; torch.where, not a boolean index (no nonzero)
            inp = torch.where(self._initial_rows[t], self._initial, inp)
        x = None if input_embedding is None else self._embedding(input_embedding)
        if x is None:
            self.last_input = inp
        if self.fast:
            normed, logits, text_tok, audio_tok = self._fast_compute(t, inp, x, forced_text, forced_audio)
        else:
            normed, logits, text_tok, audio_tok = self._eager_compute(t, inp, x, forced_text, forced_audio)
        self._pending_audio = forced_audio
        self.last_hidden, self.last_text_logits = normed, logits
        self.last_sampled_text, self.last_sampled_audio = text_tok, audio_tok

        t += 1
        self.frame = t
        tokens[:, 0, t % R] = text_tok
        tokens[:, 1 : A + 1, t % R] = self.last_sampled_audio
        if t <= spec.max_delay:
            return None
        out_text = tokens[:, 0, (t - 1) % R]
        out_audio = tokens[:, self._model_rows, (t - 1 + self._model_delays) % R]
        return Frame(out_text.clone(), out_audio.clone())

    def _eager_compute(self, t: int, inp: Tensor, x: Tensor | None, forced_text: Tensor | None,
                       forced_audio: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Frame t's layers (hooks fire), depformer and sampling -> (normed, text logits, text token, codes)."""
        model, spec, A = self.model, self.spec, self.spec.num_audio_codebooks
        x = model.embed(inp.unsqueeze(-1)) if x is None else x
        self.cache.position = t
        h = model.run_layers(x, t, cache=self.cache)
        normed = model.final_norm(h)[:, 0]
        logits = model.text_logits(normed)
        s = self.sampling
        race = self._step_race(t, logits.shape[-1])
        text_tok = sample_token(logits, s.greedy, s.text_temperature, s.text_top_k, self.generator, self.noise_groups,
                                None if race is None else race[:, 0], self.num_noise_groups)
        if forced_text is not None:
            text_tok = torch.where(forced_text >= 0, forced_text, text_tok)
        kv: list[list[Tensor]] = [[] for _ in range(spec.depformer_num_layers)]
        prev, codes = text_tok, []
        for k in range(A):
            tok = sample_token(model.depth_step(k, normed, prev, kv), s.greedy, s.audio_temperature,
                               s.audio_top_k, self.generator, self.noise_groups, None if race is None else race[:, 1 + k],
                               self.num_noise_groups)
            force = forced_audio if spec.delays[k + 1] == 0 else self._pending_audio
            if force is not None:
                tok = torch.where(force[:, k] >= 0, force[:, k], tok)
            codes.append(tok)
            prev = tok
        return normed, logits, text_tok, torch.stack(codes, 1)

    # --- the fast step ----------------------------------------------------------------------------
    def _fast(self) -> FastStep:
        if self.fast_step is None:
            self.fast_step = FastStep(self.model, self.batch_size, self.cache.capacity, sample_token, self.sampling)
            self.fast_step.capture = self._capture
        return self.fast_step

    def add_steering(self, addition: DeviceAddition) -> AdditionHandle:
        """Built-in steering for the fast step (use `steering.steer.attach`, which picks hooks when not fast)."""
        if not self.fast:
            raise FastStepError("built-in steering is the fast step's; this session steps eagerly: use hooks "
                                "(steering.apply / steering.steer.attach)")
        return self._fast().add(addition)

    def capture_layers(self, layers: Sequence[int]) -> None:
        """Fast step: keep these layers' outputs [B, dim] of each frame in `layer_states` (probes read them)."""
        if not self.fast:
            raise FastStepError("capture_layers is for the fast step; eager sessions record with hooks "
                                "(duplex_steer.hooks.record)")
        self._capture = tuple(int(layer) % self.model.num_layers for layer in layers)
        if self.fast_step is not None:
            self.fast_step.capture = self._capture

    def _step_races(self, t: int, text_vocab: int) -> list[Tensor] | None:
        """Every stream's exponential race for frame t, drawn in the eager step's order (same numbers)."""
        s, A = self.sampling, self.spec.num_audio_codebooks
        keyed = self._step_race(t, text_vocab)
        if keyed is not None:
            return [keyed[:, i].contiguous() for i in range(1 + A)]  # one compiled graph for every noise kind
        if s.greedy:
            return None
        streams = [(min(s.text_top_k, text_vocab), s.text_temperature)]
        streams += [(min(s.audio_top_k, self.spec.card), s.audio_temperature)] * A
        rows = self.num_noise_groups if self.noise_groups is not None else self.batch_size
        races = []
        for width, temperature in streams:
            if temperature <= 0:  # greedy stream: the eager step draws nothing for it
                races.append(torch.empty(self.batch_size, width, device=self.model.device))
                continue
            race = torch.empty((rows, width), device=self.model.device).exponential_(1.0, generator=self.generator)
            races.append(race if self.noise_groups is None else race[self.noise_groups])
        return races

    def _fast_compute(self, t: int, inp: Tensor, x: Tensor | None, forced_text: Tensor | None,
                      forced_audio: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        step, B, A = self._fast(), self.batch_size, self.spec.num_audio_codebooks
        none_text = torch.full((B,), -1, dtype=torch.long, device=inp.device)
        none_audio = torch.full((B, A), -1, dtype=torch.long, device=inp.device)
        normed, logits, text_tok, codes, captured = step(
            t, inp, x, self._step_races(t, self.spec.text_card),
            none_text if forced_text is None else forced_text, none_audio if forced_audio is None else forced_audio,
            none_audio if self._pending_audio is None else self._pending_audio)
        self.layer_states = captured
        return normed, logits, text_tok, codes

    @torch.no_grad()
    def run(self, user_codes: Tensor, progress: bool = False) -> Frame:
        """Step through user codes [B, 8, T]; return the model's text [B, T] and audio [B, 8, T].

        Frames with no output (frame 0 of a fresh session) hold -1.
        """
        user_codes = torch.as_tensor(user_codes)
        if user_codes.dim() != 3:
            raise SessionInputError(f"user_codes must be [batch, 8, frames], got {list(user_codes.shape)}")
        B, A, T = user_codes.shape
        if not self.cache.allocated:  # a fresh session: the whole conversation is known
            self.cache.reserve(T)
        dev = self.model.device
        # outputs stay on the model's device until the end: one copy to the host, not one per frame
        text = torch.full((B, T), -1, dtype=torch.long, device=dev)
        audio = torch.full((B, A, T), -1, dtype=torch.long, device=dev)
        frames = range(T)
        if progress:
            from tqdm.auto import tqdm

            frames = tqdm(frames, desc="duplex frames", unit="frame")
        for i in frames:
            out = self.step(user_codes[:, :, i])
            if out is not None:
                text[:, i], audio[:, :, i] = out.text, out.audio
        return Frame(text.cpu(), audio.cpu())
