"""Attention recovery: how much attention the frames after an interruption onset pay to its first frames.

The paper reports that steering "restores attention to the first interruption frames". This module
measures it: a conversation's tokens are replayed as ONE teacher-forced pass (the same layer states
as the streamed run, by the engine's stepping/teacher-forcing parity), with eager attention switched
on for that pass only, and forward hooks on the named layers' `self_attn` read the attention
weights. The same `SteeringController` that acted in the stream can be active in the replay: it is
gated on absolute frames, so it adds the same vector to the same frames.

Frame bookkeeping (every frame number here is ABSOLUTE unless called a recording frame):

- absolute frame = `ConversationResult.frame_offset` + recording frame (the offset is the prompt);
- replay codes: column i holds absolute frame i + 1 (frame 0 is the model's initial tokens);
- teacher-forced position p is streamed step p, i.e. absolute frame p: row p and column j of the
  captured weights [B, H, T, T] are the query at frame p and the key at frame j.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..engine.conversation import ConversationPrompt, ConversationResult, prompt_frames
from ..engine.model import PIPELINE_CHECK_NOTE
from ..errors import DuplexSteerError
from ..hooks import HookError, HookHandle, check_layers
from .compare import SteeredComparison
from .steer import SteeringController, patch

FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE


class AttentionError(DuplexSteerError, ValueError):
    """An attention analysis that cannot run as asked (onset outside the sequence, missing prompt, ...)."""


# --- eager attention, temporarily --------------------------------------------------------------------
@contextmanager
def eager_attention(model) -> Iterator[None]:
    """Run the temporal layers with eager attention (which returns its weights) inside the block.

    Every config the temporal attention reads is switched to "eager" and restored to its previous
    value (normally "sdpa") on exit, exceptions included. The engine gives eager attention an
    additive mask (`DuplexModel.run_layers`).
    """
    configs = {id(c): c for c in [model.hf.config, *(layer.self_attn.config for layer in model.layers)]}
    previous = [(c, c._attn_implementation) for c in configs.values()]
    try:
        for config, _ in previous:
            config._attn_implementation = "eager"
        yield
    finally:
        for config, value in reversed(previous):
            config._attn_implementation = value


# --- replaying a conversation ------------------------------------------------------------------------
def conversation_codes(model, result: ConversationResult, prompt: ConversationPrompt | None = None) -> Tensor:
    """The tokens of a streamed conversation as teacher-forcing codes [B, 17, frame_offset + T].

    Column i holds absolute frame i + 1, so `model.forward_codes` on them replays every streamed
    step 0 .. frame_offset + T - 1 at positions of the same number. The last column (frame
    frame_offset + T, never produced) is a filler: with delays >= 0 it reaches no temporal position.
    A conversation that started with a prompt (frame_offset > 0) needs that `prompt` to rebuild its
    first frames.
    """
    user, text, audio = result.user_codes, result.text_tokens, result.model_codes
    B, A, T = user.shape
    offset = result.frame_offset
    if offset == 0:
        text_abs, audio_abs, user_abs = text[:, 1:], audio[:, :, 1:], user[:, :, 1:]
    else:
        if prompt is None:
            raise AttentionError(f"this conversation started {offset} frames into the session (a prompt); pass "
                                 "the ConversationPrompt it used so that those frames can be replayed")
        frames = prompt_frames(model, prompt)
        if frames.embeddings is not None:
            raise AttentionError("a conversation started from a voice .pt (precomputed embeddings) cannot be "
                                 "replayed as codes; run it with the voice as a recording (WAV) instead")
        if len(frames) != offset:
            raise AttentionError(f"the prompt gives {len(frames)} frames but the conversation's frame_offset is "
                                 f"{offset}: not the prompt this conversation ran with")
        # prompt element p is absolute frame p (frame 0, the initial tokens, is not a column)
        text_abs = torch.cat([frames.text[1:].expand(B, -1), text], 1)
        audio_abs = torch.cat([frames.audio[1:].T.expand(B, -1, -1), audio], 2)
        user_abs = torch.cat([frames.user[1:].T.to(user).expand(B, -1, -1), user], 2)
    codes = torch.cat([text_abs[:, None], audio_abs, user_abs], 1)
    if (codes < 0).any():
        raise AttentionError("the conversation has frames without model tokens (-1) after its first frame; "
                             "it cannot be replayed")
    return torch.cat([codes, codes.new_zeros(B, A * 2 + 1, 1)], 2)


def capture_attention(model, codes: Tensor, layers: int | Sequence[int], queries: range,
                      controller: SteeringController | None = None,
                      reduce: Callable[[Tensor, range], Tensor] | None = None) -> dict[int, Tensor]:
    """One teacher-forced pass over `codes` with eager attention; per layer, the weights of `queries`.

    Returns {layer: [B, H, len(queries), T]} (float32, CPU) where the last axis is absolute key
    frames 0 .. T - 1, or {layer: reduce(those weights, queries)}. `controller`, if given, steers the
    pass (its onsets are absolute frames). Codes beyond the last query are not run (causality).
    """
    chosen = check_layers(model, layers)
    n = codes.shape[-1]
    if len(queries) == 0 or queries.step != 1 or queries.start < 0 or queries.stop > n:
        raise AttentionError(f"query frames {queries.start}..{queries.stop - 1} must be a non-empty run of "
                             f"frames inside the replay's 0..{n - 1}")
    if controller is not None and controller.batch_size != codes.shape[0]:
        raise AttentionError(f"the steering controller is for {controller.batch_size} items, the codes have "
                             f"{codes.shape[0]}")
    captured: dict[int, Tensor] = {}

    def make_hook(layer: int):
        def hook(module, args, output):
            weights = output[1]
            frames = model.current_frames
            if weights is None:
                raise HookError(f"layer {layer} returned no attention weights: eager attention is not active")
            if frames.start != 0 or weights.shape[-2] != len(frames) or weights.shape[-1] != len(frames):
                raise HookError("attention weights were captured in a streamed call; replay with forward_codes")
            rows = weights[:, :, queries.start - frames.start : queries.stop - frames.start].detach().float()
            captured[layer] = (reduce(rows, queries) if reduce else rows).cpu()
        return hook

    handles = HookHandle([model.layers[layer].self_attn.register_forward_hook(make_hook(layer))
                          for layer in chosen])
    steer = patch(model, controller) if controller is not None else HookHandle()
    try:
        with eager_attention(model):
            model.forward_codes(codes[..., : queries.stop])
    finally:
        steer.remove()
        handles.remove()
    return captured


def mass_on_frames(weights: Tensor, keys: range) -> Tensor:
    """Attention mass on absolute key frames `keys`: weights [..., Q, T] (key axis = frames 0..T-1) -> [..., Q]."""
    return weights[..., keys.start : min(keys.stop, weights.shape[-1])].sum(-1)


@dataclass
class AttentionMass:
    """Per layer, the attention mass query frames put on the first `k_first` frames from the onset."""

    layers: list[int]
    onset: int  # absolute frame (= teacher-forced position)
    k_first: int
    query_frames: range  # absolute frames [onset, onset + query_window), clipped to the replay
    per_head: dict[int, Tensor]  # layer -> [B, H, Q]

    @property
    def key_frames(self) -> range:
        return range(self.onset, self.onset + self.k_first)

    @property
    def mass(self) -> dict[int, Tensor]:
        """layer -> [B, Q]: the mean over heads (each head's weights sum to 1, so this is a fraction)."""
        return {layer: m.mean(1) for layer, m in self.per_head.items()}

    def window_mean(self, layer: int) -> Tensor:
        """[B]: the mass averaged over the query window."""
        return self.mass[layer].mean(-1)


def attention_mass(model, codes: Tensor, layers: int | Sequence[int], onset: int, k_first: int = 3,
                   query_window: int = 12, controller: SteeringController | None = None) -> AttentionMass:
    """Attention mass that query frames [onset, onset + query_window) put on key frames [onset, onset + k_first).

    codes: teacher-forcing codes (column i = absolute frame i + 1, see `conversation_codes`); onset:
    absolute frame. One eager teacher-forced pass, optionally steered by `controller`.
    """
    if k_first < 1 or query_window < 1:
        raise AttentionError(f"k_first and query_window must be at least 1 frame, got {k_first}, {query_window}")
    n = codes.shape[-1]
    if not 0 <= onset < n:
        raise AttentionError(f"onset frame {onset} is outside the replay's frames 0..{n - 1}")
    queries = range(onset, min(onset + query_window, n))
    keys = range(onset, onset + k_first)
    per_head = capture_attention(model, codes, layers, queries, controller,
                                 reduce=lambda w, q: mass_on_frames(w, keys))
    return AttentionMass(check_layers(model, layers), onset, k_first, queries, per_head)


# --- steered vs unsteered ----------------------------------------------------------------------------
@dataclass
class AttentionComparison:
    """Attention mass on the first onset frames, unsteered (item 0) vs steered (item 1), per layer.

    `onset`, `query_frames` and `steered_frames` are recording frames (absolute = + frame_offset).
    """

    model_label: str
    is_random: bool
    layers: list[int]
    k_first: int
    onset: int
    frame_offset: int
    query_frames: list[int]
    steered_frames: list[int]
    steering: dict[str, Any]
    unsteered: dict[int, Tensor]  # layer -> [Q]
    steered: dict[int, Tensor]  # layer -> [Q]
    per_head: dict[int, Tensor] = field(default_factory=dict)  # layer -> [2, H, Q]

    @property
    def difference(self) -> dict[int, Tensor]:
        """layer -> [Q]: steered minus unsteered."""
        return {layer: self.steered[layer] - self.unsteered[layer] for layer in self.layers}

    def summary(self) -> dict[int, dict[str, float]]:
        """Per layer, the masses averaged over the query window and their difference."""
        return {layer: {"unsteered": float(self.unsteered[layer].mean()), "steered": float(self.steered[layer].mean()),
                        "difference": float(self.difference[layer].mean())} for layer in self.layers}

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model_label, "is_random": self.is_random, "layers": self.layers,
            "k_first": self.k_first, "onset_frame": self.onset, "frame_offset": self.frame_offset,
            "query_frames": self.query_frames, "steered_frames": self.steered_frames, "steering": self.steering,
            "unsteered": {str(k): v.tolist() for k, v in self.unsteered.items()},
            "steered": {str(k): v.tolist() for k, v in self.steered.items()},
            "summary": {str(k): v for k, v in self.summary().items()},
        }


def comparison_controller(comparison: SteeredComparison) -> SteeringController:
    """The controller `steer_recording` used: both items' onsets at absolute frames, item 1 steered only."""
    offset = comparison.result.frame_offset
    onsets = [offset + f for f in comparison.onset_frames]
    return SteeringController(comparison.steering, 2, [list(onsets), list(onsets)], enabled=[False, True])


def compare_attention(model, comparison: SteeredComparison, layers: int | Sequence[int], k_first: int = 3,
                      query_window: int = 12, prompt: ConversationPrompt | None = None,
                      onset_index: int = 0) -> AttentionComparison:
    """Replay both copies of a `steer_recording` result (with its steering) and measure attention recovery.

    Analyses the `onset_index`-th detected onset; every onset's steering is replayed. `prompt`: the
    ConversationPrompt the comparison ran with, if any.
    """
    if not comparison.onset_frames:
        raise AttentionError("the onset detector never fired in this comparison: no onset to analyse")
    if not -len(comparison.onset_frames) <= onset_index < len(comparison.onset_frames):
        raise AttentionError(f"onset_index {onset_index} is out of range: {len(comparison.onset_frames)} onsets")
    result = comparison.result
    offset = result.frame_offset
    onset = comparison.onset_frames[onset_index]
    codes = conversation_codes(model, result, prompt)
    m = attention_mass(model, codes, layers, offset + onset, k_first, query_window, comparison_controller(comparison))
    mass = m.mass
    s = comparison.steering
    return AttentionComparison(
        model_label=model.label, is_random=bool(model.is_random), layers=m.layers, k_first=k_first, onset=onset,
        frame_offset=offset, query_frames=[f - offset for f in m.query_frames],
        steered_frames=list(comparison.steered_frames),
        steering={"layers": list(s.layers), "alpha": s.alpha, "span": s.span, "schedule": s.schedule},
        unsteered={layer: mass[layer][0] for layer in m.layers}, steered={layer: mass[layer][1] for layer in m.layers},
        per_head=m.per_head,
    )


# --- plot ----------------------------------------------------------------------------------------------
def _runs(frames: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted frames -> (first, last) of each run of consecutive frames."""
    runs: list[tuple[int, int]] = []
    for f in sorted(set(frames)):
        if runs and f == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], f)
        else:
            runs.append((f, f))
    return runs


def plot_attention_recovery(result: AttentionComparison, path: str | Path) -> Path:
    """PNG: per layer, mass on the first K onset frames over query time, unsteered vs steered."""
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's backend alone
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(result.layers)
    x = [q - result.onset for q in result.query_frames]  # frames since the onset
    steered_rel = [f - result.onset for f in result.steered_frames if f >= result.onset]
    top_in, bottom_in, panel_in = 1.35, 0.95 if result.is_random else 0.7, 2.2
    height = top_in + bottom_in + panel_in * n
    fig = Figure(figsize=(9, height))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)
    fig.subplots_adjust(left=0.1, right=0.97, top=1 - top_in / height, bottom=bottom_in / height, hspace=0.35)
    for ax, layer in zip(axes[:, 0], result.layers, strict=True):
        for i, (first, last_frame) in enumerate(_runs(steered_rel)):
            ax.axvspan(first - 0.5, last_frame + 0.5, color="tab:red", alpha=0.1, lw=0,
                       label="steering window" if i == 0 else None)
        ax.axvspan(-0.5, result.k_first - 0.5, ymin=0.94, ymax=1.0, color="tab:green", alpha=0.6, lw=0,
                   label=f"keys: first {result.k_first} frames from onset")
        ax.axvline(0, color="black", lw=1, ls="--", label="interruption onset")
        ax.plot(x, result.unsteered[layer].numpy(), "o-", color="tab:blue", label="unsteered")
        ax.plot(x, result.steered[layer].numpy(), "s-", color="tab:orange", label="steered")
        top = max(float(result.unsteered[layer].max()), float(result.steered[layer].max()), 1e-3)
        ax.set_ylim(0, top * 1.2)  # headroom keeps the points clear of the key-frame bar at the top
        ax.yaxis.set_major_locator(MaxNLocator(5))
        ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 1])
        ax.set_ylabel("mass (head mean)")
        steered_here = " (steering layer)" if layer in result.steering["layers"] else ""
        ax.set_title(f"layer {layer}{steered_here}", loc="left", fontsize=10)
        ax.grid(alpha=0.3)
    last = axes[-1, 0]
    last.set_xlabel(f"query frame since onset (80 ms frames; onset = recording frame {result.onset}, "
                    f"{result.onset * FRAME_SECONDS:.2f} s)")
    last.set_xlim(min(x) - 0.5, max(x) + 0.5)
    last.xaxis.set_major_locator(MaxNLocator(integer=True))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    order = [labels.index(name) for name in ("unsteered", "steered", "interruption onset")]
    order += [i for i in range(len(labels)) if i not in order]
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.75 / height), ncol=5, fontsize=8,
               frameon=False)
    s = result.steering
    label = result.model_label.replace(f" - {PIPELINE_CHECK_NOTE}", "")
    fig.suptitle(f"Attention mass on the first {result.k_first} interruption frames, with and without steering\n"
                 f"{label}; steering at layer(s) {', '.join(map(str, s['layers']))}, alpha {s['alpha']:g}, "
                 f"span {s['span']}", fontsize=10, y=1 - 0.08 / height)
    if result.is_random:
        fig.text(0.5, 0.12 / height, f"Caveat: {PIPELINE_CHECK_NOTE}", ha="center", fontsize=8.5, color="darkred")
    fig.savefig(path, dpi=120)
    return path
