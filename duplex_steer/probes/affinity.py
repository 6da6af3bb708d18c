"""Generation and perception affinities per frame and layer, computed online during a conversation.

At step t (recording frame t) and layer l, with lenses reading layer l's residual state:
- S_gen[t, l]  = mean over the generation lenses (default: text, depformer on the model's codebook 0)
  of the probability of the token the model actually sampled at that step;
- S_perc[t, l] = the perception lens's probability (default: the depformer's user codebook 0 where the
  model has user heads, else the embedding-transpose lens) of the user's actual next input token, user
  codebook 0 of frame t + 1; NaN at the last frame.

Online: hooks keep only the current frame's layer outputs, the `on_frame` callback of `converse` turns
them into probabilities and drops them, and the user's next token is read from the user-embedding
input one step later. Only [B, T, L] floats accumulate, whatever the conversation length.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..audio import FRAME_RATE
from ..engine.conversation import ConversationResult, FrameCallback, Recording, as_waveform, converse
from ..engine.model import PIPELINE_CHECK_NOTE
from ..errors import DuplexSteerError
from ..hooks import CurrentFrameSink, HookHandle, check_layers, patch_record
from .activity import (
    Activity,
    detect_onsets,
    energy_activity,
    model_activity_rule,
    turn_onsets,
    turns_activity,
)
from .lenses import Lens, StepTokens, default_lenses, get_lens


class AffinityError(DuplexSteerError, ValueError):
    """Affinities that cannot be computed as asked (empty band, bad recording)."""


def default_band(num_layers: int) -> tuple[int, int]:
    """The middle band, layers 3/8 .. 3/4 of depth inclusive (0-based): 12..24 of 32, 1..3 of 4."""
    return (3 * num_layers) // 8, min((3 * num_layers) // 4, num_layers - 1)


@dataclass
class AffinityResult:
    """Affinities of a batch: S_gen / S_perc [B, T, L] over `layers`, plus who spoke when."""

    S_gen: np.ndarray
    S_perc: np.ndarray
    layers: list[int]
    band: tuple[int, int]
    activity: Activity | None
    onsets: list[list[int]]
    model_label: str
    is_random: bool
    lenses: dict[str, Any] = field(default_factory=dict)
    components: dict[str, np.ndarray] = field(default_factory=dict)  # per generation lens, [B, T, L]
    frame_rate: float = FRAME_RATE

    @property
    def frames(self) -> int:
        return self.S_gen.shape[1]

    def band_layers(self) -> list[int]:
        lo, hi = self.band
        chosen = [i for i, layer in enumerate(self.layers) if lo <= layer <= hi]
        if not chosen:
            raise AffinityError(f"no computed layer lies in the band {lo}..{hi} (computed: {self.layers})")
        return chosen

    def band_average(self, values: np.ndarray) -> np.ndarray:
        """Mean over the band's layers: [B, T, L] -> [B, T] (NaN where every band value is NaN)."""
        sel = values[..., self.band_layers()]
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(sel).sum(-1)
            total = np.where(np.isfinite(sel), sel, 0.0).sum(-1)
            return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)

    @property
    def band_gen(self) -> np.ndarray:
        return self.band_average(self.S_gen)

    @property
    def band_perc(self) -> np.ndarray:
        return self.band_average(self.S_perc)

    def to_json(self, item: int = 0) -> dict[str, Any]:
        """The documented JSON record of one batch item (NaN -> null)."""
        out = {
            "model": self.model_label,
            "is_random": self.is_random,
            "frames": self.frames,
            "frame_rate": self.frame_rate,
            "layers": list(self.layers),
            "band": list(self.band),
            "lenses": self.lenses,
            "S_gen": _nested(self.S_gen[item]),
            "S_perc": _nested(self.S_perc[item]),
            "band_S_gen": _nested(self.band_gen[item]),
            "band_S_perc": _nested(self.band_perc[item]),
            "components": {k: _nested(v[item]) for k, v in self.components.items()},
            "onsets": list(self.onsets[item]),
            "activity": self.activity.to_json(item) if self.activity is not None else None,
        }
        if self.is_random:
            out["note"] = PIPELINE_CHECK_NOTE
        return out

    def save_json(self, path: str | Path, item: int = 0, **extra: Any) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({**self.to_json(item), **extra}, indent=1, allow_nan=False))
        return path


def _nested(a: np.ndarray) -> Any:
    """Array -> nested lists of floats with NaN as None (strict JSON)."""
    if a.ndim == 0:
        v = float(a)
        return None if math.isnan(v) else round(v, 7)
    return [_nested(x) for x in a]


class OnlineAffinity:
    """Hooks + an `on_frame` callback computing S_gen / S_perc frame by frame.

    with OnlineAffinity(model, layers) as aff:
        result = converse(model, wav, on_frame=aff.on_frame)
    S_gen, S_perc, comps = aff.arrays()
    """

    def __init__(self, model, layers: int | Sequence[int] | None = None,
                 gen_lenses: Sequence[str | Lens] | None = None, perc_lens: str | Lens | None = None,
                 session=None):
        self.model = model
        # a fast session (model.session(fast=True)) runs no hooks: its captured layer states are read instead
        self.session = session if getattr(session, "fast", False) else None
        self.layers = check_layers(model, layers)
        default_gen, default_perc = default_lenses(model)
        self.gen_lenses = [get_lens(g) for g in gen_lenses] if gen_lenses else default_gen
        self.perc_lens = get_lens(perc_lens) if perc_lens is not None else default_perc
        if not self.gen_lenses:
            raise AffinityError("at least one generation lens is needed")
        for lens in [*self.gen_lenses, self.perc_lens]:
            lens.check(model)
        if self.perc_lens.stream != "user_cb0":
            raise AffinityError(f"the perception lens must read the user's codebook 0; {self.perc_lens.name} reads "
                                f"{self.perc_lens.stream}")
        self._sink = CurrentFrameSink()
        self._handles: list[HookHandle] = []
        self._user_token: Tensor | None = None
        self._pending: Tensor | None = None  # perception lens distribution of the previous frame [L, B, V]
        # rows[series, b, t, l]; series 0 = S_gen, 1 = S_perc, 2.. = the generation lenses. One buffer grown
        # by doubling: no per-frame objects stay alive (they fragment the heap over long conversations).
        self._rows = np.empty((0, 0, 0, 0), np.float32)
        self.frames = 0

    # --- hooks ----------------------------------------------------------------------------------------
    def attach(self) -> OnlineAffinity:
        if self.session is not None:
            self.session.capture_layers(self.layers)
            self._handles = [HookHandle()]  # nothing to remove: the session captures
        elif not self._handles:
            user_emb = self.model.hf.embed_tokens[self.model.spec.num_audio_codebooks]

            def grab(module, args, output):  # the user's codebook-0 token this step feeds: [B, 1]
                self._user_token = args[0][:, -1].detach()

            self._handles = [patch_record(self.model, self.layers, self._sink),
                             HookHandle([user_emb.register_forward_hook(grab)])]
        return self

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> OnlineAffinity:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    # --- per frame --------------------------------------------------------------------------------
    @torch.no_grad()
    def on_frame(self, session, frame: int) -> None:
        """converse's callback: score this frame's states and the previous frame's perception."""
        if not self._handles:
            raise AffinityError("OnlineAffinity.on_frame called while detached; use `with OnlineAffinity(...)`")
        tokens = StepTokens.from_session(session)
        if self.session is not None:  # the fast step's captures and the user's codebook 0 it fed
            h = torch.stack([session.layer_states[layer] for layer in self.layers])
            fed = session.last_input
            user = None if fed is None else fed[:, self.model.spec.num_audio_codebooks + 1].clamp(min=0)
            self.update(h, tokens, user)
            return
        self.update(self.current_states(), tokens, self._user_token)

    def current_states(self) -> Tensor:
        missing = [layer for layer in self.layers if layer not in self._sink.states]
        if missing:
            raise AffinityError(f"no state was recorded at layers {missing} this frame")
        h = torch.stack([self._sink.states[layer] for layer in self.layers])  # [L, B, dim]
        self._sink.states.clear()
        return h

    @torch.no_grad()
    def update(self, h: Tensor, tokens: StepTokens, user_token: Tensor | None) -> None:
        """One frame: h [L, B, dim] raw layer outputs; user_token [B] = the user's codebook 0 of THIS
        frame (it scores the previous frame's perception distribution); None leaves it NaN."""
        L, B = len(self.layers), h.shape[1]
        if self._pending is not None:
            if user_token is not None:
                idx = user_token.to(self._pending.device).long().view(1, -1, 1).expand(L, -1, 1)
                self._rows[1, :, self.frames - 1] = self._pending.gather(-1, idx)[..., 0].T.cpu().numpy()
            self._pending = None
        t = self._grow(B)
        gen = []
        for i, lens in enumerate(self.gen_lenses):
            probs = lens(self.model, h, self.layers, tokens)  # [L, B, V]
            target = tokens.target(lens.stream).to(probs.device).long()
            p = probs.gather(-1, target.view(1, -1, 1).expand(L, -1, 1))[..., 0].T  # [B, L]
            self._rows[2 + i, :, t] = p.cpu().numpy()
            gen.append(p)
        self._rows[0, :, t] = torch.stack(gen).mean(0).cpu().numpy()
        self._pending = self.perc_lens(self.model, h, self.layers, tokens)

    def _grow(self, batch: int) -> int:
        """Make room for one more frame; return its row."""
        n, _, cap, _ = self._rows.shape
        if cap == 0:
            self._rows = np.full((2 + len(self.gen_lenses), batch, 256, len(self.layers)), np.nan, np.float32)
        elif self.frames == cap:
            grown = np.full((n, batch, 2 * cap, len(self.layers)), np.nan, np.float32)
            grown[:, :, :cap] = self._rows
            self._rows = grown
        self.frames += 1
        return self.frames - 1

    def arrays(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """(S_gen, S_perc, per-lens generation components), each [B, T, L] float32."""
        if not self.frames:
            raise AffinityError("no frame was scored")
        rows = self._rows[:, :, : self.frames].copy()
        return rows[0], rows[1], {lens.name: rows[2 + i] for i, lens in enumerate(self.gen_lenses)}

    def lens_info(self) -> dict[str, Any]:
        return {"gen": [lens.name for lens in self.gen_lenses], "perc": self.perc_lens.name}


def compute_affinities(
    model,
    recordings: Recording | Sequence[Recording],
    *,
    layers: int | Sequence[int] | None = None,
    band: tuple[int, int] | None = None,
    gen_lenses: Sequence[str | Lens] | None = None,
    perc_lens: str | Lens | None = None,
    turns: Sequence[Sequence[Any] | None] | None = None,
    onsets: Sequence[Sequence[int]] | None = None,
    greedy: bool = False,
    seed: int | None = 0,
    prompt=None,
    progress: bool = False,
    decode_audio: bool = False,
    noise_keys: Sequence[int] | None = None,
    before_frame: FrameCallback | None = None,
) -> tuple[AffinityResult, ConversationResult]:
    """Run `converse` with online affinities; add activity and onsets. Layers default to all.

    turns: per recording, known user turn timings (start_s / end_s) or None to use the audio energy;
    onsets: per recording, known onset frames (default: turn starts, else detected from activity);
    noise_keys: one sampling-noise key per recording (`engine.noise.key_for`): equal keys draw the same
    noise in any batch, so paired runs (e.g. steered and unsteered) differ only by what was changed;
    before_frame(session, recording_frame): run before each step (e.g. to trigger steering at an onset).
    """
    items = [recordings] if isinstance(recordings, (str, Path, np.ndarray, tuple)) else list(recordings)
    waves = [as_waveform(r) for r in items]
    band = band if band is not None else default_band(model.num_layers)
    if not (0 <= band[0] <= band[1] < model.num_layers):
        raise AffinityError(f"band {band[0]}..{band[1]} is not a layer range of this model (0..{model.num_layers - 1})")
    if noise_keys is not None and len(noise_keys) != len(waves):
        raise AffinityError(f"got {len(noise_keys)} noise keys for {len(waves)} recordings")
    with OnlineAffinity(model, layers, gen_lenses, perc_lens) as aff:
        conv = converse(model, waves, greedy=greedy, seed=seed, prompt=prompt, on_frame=aff.on_frame,
                        before_frame=before_frame, progress=progress, decode_audio=decode_audio,
                        noise_keys=None if noise_keys is None else list(noise_keys))
    S_gen, S_perc, comps = aff.arrays()
    T = S_gen.shape[1]
    turns = list(turns) if turns is not None else [None] * len(waves)
    user = np.stack([turns_activity(tr, T) if tr else energy_activity(w, T) for w, tr in zip(waves, turns, strict=True)])
    rule = model_activity_rule(model)
    model_active = rule.speaking(conv.text_tokens.numpy())
    if onsets is None:
        onsets = [turn_onsets(tr, T) if tr else detect_onsets(u) for tr, u in zip(turns, user, strict=True)]
    onsets = [list(map(int, o)) for o in onsets]
    activity = Activity(user=user, model=model_active, onsets=onsets,
                        user_source=" / ".join(sorted({"turn timings" if tr else "audio energy" for tr in turns})),
                        model_source=f"text stream: {rule.name}, a token + {rule.hold} frames")
    result = AffinityResult(S_gen=S_gen, S_perc=S_perc, layers=aff.layers, band=tuple(band), activity=activity,
                            onsets=onsets, model_label=model.label, is_random=model.is_random,
                            lenses=aff.lens_info(), components=comps)
    result.band_layers()  # fail early on an empty band
    return result, conv
