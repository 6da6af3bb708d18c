"""The fast step: one frame's temporal transformer, depformer loop and sampling as one compiled function.

`DuplexSession(fast=True)` (`model.session(..., fast=True)`) routes each step's computation through
`FastStep`: a function of device tensors with static shapes (the KV window is the whole preallocated
ring with a validity mask, the frame index is a device tensor updated in place, the sampling noise
is drawn before the call in the eager step's order), compiled with `torch.compile`:
- on CPU, inductor (C++): it removes most of the per-operation Python overhead;
- on CUDA, `mode="reduce-overhead"` (inductor's CUDA graphs: the step replays as one graph). This
  path is written for a GPU but has NOT been run here (the machine has none): treat it as untested.

Python forward hooks do not run inside a compiled or graph-captured step, so the fast step refuses
to run while a temporal layer has forward hooks (a clear error, never silently unsteered output).
Its steering is built in: `DuplexSession.add_steering` takes an addition whose coefficients are
computed on the device from the absolute frame (`steering.steer.attach` picks hooks or this); its
states for probes are captured with `DuplexSession.capture_layers` (`session.layer_states`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from ..errors import DuplexSteerError


class FastStepError(DuplexSteerError, RuntimeError):
    """Something the fast (compiled) step cannot do: forward hooks on the layers, for one."""


class DeviceAddition(Protocol):
    """Built-in steering: add coefficients[b] * vector at a layer's output, coefficients computed on the
    device from the absolute frame (`steering.steer.SteeringController` is one)."""

    def layer_vectors(self) -> list[tuple[int, Tensor]]: ...
    def tables(self) -> tuple[Tensor, ...]: ...
    def coefficients_from(self, frames: Tensor, *tables: Tensor) -> Tensor: ...


class StaticFrameCache:
    """The fast step's KV ring: `capacity` slots per layer, the whole ring attended with a mask.

    The slot and the mask come from `frame`, a device tensor the session updates in place, so the
    compiled step sees the same tensors every frame (what CUDA graphs need).
    """

    def __init__(self, model, batch_size: int, capacity: int, frame: Tensor):
        attn = model.layers[0].self_attn
        heads, head_dim = model.hf.config.num_key_value_heads, attn.head_dim
        shape = (batch_size, heads, capacity, head_dim)
        self.keys = [torch.zeros(shape, dtype=model.dtype, device=model.device) for _ in model.layers]
        self.values = [torch.zeros(shape, dtype=model.dtype, device=model.device) for _ in model.layers]
        self.capacity, self.frame = capacity, frame
        self.slots = torch.arange(capacity, device=model.device)

    def mask(self) -> Tensor:
        """[1, 1, 1, capacity]: the slots written so far (all of them once the ring has wrapped)."""
        return (self.slots <= self.frame).view(1, 1, 1, -1)

    def update(self, key: Tensor, value: Tensor, layer_idx: int, *args: Any, **kwargs: Any):
        slot = (self.frame % self.capacity).view(1)
        self.keys[layer_idx].index_copy_(2, slot, key)
        self.values[layer_idx].index_copy_(2, slot, value)
        return self.keys[layer_idx], self.values[layer_idx]

    def grown(self, model, capacity: int) -> StaticFrameCache:
        """A larger ring holding the same frames in the same slots (a too-short max_frames hint)."""
        out = StaticFrameCache.__new__(StaticFrameCache)
        pad = capacity - self.capacity
        out.keys = [torch.cat([k, k.new_zeros(*k.shape[:2], pad, k.shape[3])], 2) for k in self.keys]
        out.values = [torch.cat([v, v.new_zeros(*v.shape[:2], pad, v.shape[3])], 2) for v in self.values]
        out.capacity, out.frame = capacity, self.frame
        out.slots = torch.arange(capacity, device=self.slots.device)
        return out


class AdditionHandle:
    """Removes one built-in addition from a fast step (`.remove()`, as a hook handle)."""

    def __init__(self, step: FastStep, entry: tuple):
        self.step, self.entry = step, entry

    def remove(self) -> None:
        if self.entry in self.step.additions:
            self.step.additions.remove(self.entry)


_COMPILED: dict[str, Callable[..., Any]] = {}  # one compiled frame function per device kind, shared by sessions


def compiled_frame(device: torch.device) -> Callable[..., Any]:
    """`frame_core` compiled for `device`: inductor on CPU; on CUDA, inductor with CUDA graphs
    (mode="reduce-overhead"; written for a GPU, not run here). Sessions of the same model, batch and
    sampling settings share the compiled code (its guards), so only the first one pays the compile."""
    kind = device.type
    if kind not in _COMPILED:
        # one graph per batch size, noise kind (none, drawn) and steering (none, some): allow more than 8
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
        mode = "reduce-overhead" if kind == "cuda" else None
        _COMPILED[kind] = torch.compile(frame_core, mode=mode, dynamic=False)
    return _COMPILED[kind]


class FastStep:
    """One frame's computation for a session, through the shared compiled `frame_core` (module docstring)."""

    def __init__(self, model, batch_size: int, capacity: int, sampler: Callable[..., Tensor],
                 sampling, compile: bool = True):
        self.model, self.batch_size, self.sample = model, batch_size, sampler
        self.settings = (bool(sampling.greedy), float(sampling.text_temperature), int(sampling.text_top_k),
                         float(sampling.audio_temperature), int(sampling.audio_top_k))
        self.context = model.spec.context
        self.frame = torch.zeros((), dtype=torch.long, device=model.device)
        self.cache = StaticFrameCache(model, batch_size, capacity, self.frame)
        # built-in additions: (addition, its coefficient function, [(layer, vector on the device)])
        self.additions: list[tuple[DeviceAddition, Callable[..., Tensor], list[tuple[int, Tensor]]]] = []
        self.capture: tuple[int, ...] = ()
        self.core: Callable[..., Any] = compiled_frame(model.device) if compile else frame_core
        if compile and model.device.type == "cuda":
            self._mark_static()

    def _mark_static(self) -> None:
        """CUDA graphs replay fixed addresses: the ring and the frame counter are updated in place."""
        for buf in [*self.cache.keys, *self.cache.values, self.frame]:
            torch._dynamo.mark_static_address(buf)

    def add(self, addition: DeviceAddition) -> AdditionHandle:
        """Built-in steering from now on (removable); vectors go to the model's device and dtype once."""
        model = self.model
        vectors = [(layer, vector.to(model.device, model.dtype)) for layer, vector in addition.layer_vectors()]
        entry = (addition, type(addition).coefficients_from, vectors)
        self.additions.append(entry)
        return AdditionHandle(self, entry)

    def check_no_hooks(self) -> None:
        for i, layer in enumerate(self.model.layers):
            if layer._forward_hooks or layer._forward_pre_hooks:
                raise FastStepError(
                    f"temporal layer {i} has forward hooks, which do not run in the fast (compiled) step: "
                    "use a session with fast=False for hooks (record, intervene, steering.apply), or "
                    "steering.steer.attach / DuplexSession.capture_layers with the fast step")

    def __call__(self, t: int, inp: Tensor, x: Tensor | None, race: Sequence[Tensor] | None,
                 forced_text: Tensor, forced_now: Tensor, forced_pending: Tensor):
        """-> (normed [B, dim], text logits, text token [B], codes [B, A], captured states {layer: [B, dim]})."""
        self.check_no_hooks()
        if t >= self.cache.capacity and self.cache.capacity < self.context:
            self.cache = self.cache.grown(self.model, self.context)  # once; the step recompiles for it
            if self.core is not frame_core and self.model.device.type == "cuda":
                self._mark_static()
        self.frame.fill_(t)
        self.model.current_frames = range(t, t + 1)
        additions = [(fn, vectors, a.tables()) for a, fn, vectors in self.additions]  # tables: host-refreshed
        graphed = self.core is not frame_core and self.model.device.type == "cuda"
        if graphed:
            torch.compiler.cudagraph_mark_step_begin()  # one replay per frame
        out = self.core(self.model, self.settings, self.sample, self.capture, additions, inp.contiguous(), x,
                        race, forced_text, forced_now, forced_pending, self.cache)
        if graphed:  # a CUDA graph's outputs are overwritten by its next replay: keep this frame's
            normed, logits, text_tok, codes, captured = out
            out = (normed.clone(), logits.clone(), text_tok.clone(), codes.clone(),
                   {layer: state.clone() for layer, state in captured.items()})
        return out


def frame_core(model, settings: tuple, sample: Callable[..., Tensor], capture: tuple[int, ...], additions: list,
               inp: Tensor, x: Tensor | None, race: Sequence[Tensor] | None, forced_text: Tensor,
               forced_now: Tensor, forced_pending: Tensor, cache: StaticFrameCache):
    """One frame, static shapes, no host reads: embed, temporal layers (built-in additions, captures),
    text sampling, the depformer loop with its sampling, forcing. What `FastStep` compiles."""
    spec = model.spec
    greedy, text_temperature, text_top_k, audio_temperature, audio_top_k = settings
    if x is None:
        x = model.embed(inp.unsqueeze(-1))
    frame = cache.frame
    mask, pos = cache.mask(), frame.view(1, 1)
    per_layer: dict[int, list[tuple[Tensor, Tensor]]] = {}
    for coefficients_from, vectors, tables in additions:
        coef = coefficients_from(frame.view(1), *tables)  # [B, 1]
        for layer, vector in vectors:
            per_layer.setdefault(layer, []).append((coef, vector))
    captured = {}
    for i, layer in enumerate(model.layers):
        x = layer.forward(x, attention_mask=mask, position_ids=pos, past_key_values=cache)
        for coef, vector in per_layer.get(i, ()):
            x = x + coef.to(x.dtype).unsqueeze(-1) * vector
        if i in capture:
            captured[i] = x[:, 0]
    normed = model.final_norm(x)[:, 0]
    logits = model.text_logits(normed)
    text_tok = sample(logits, greedy, text_temperature, text_top_k, race=None if race is None else race[0])
    text_tok = torch.where(forced_text >= 0, forced_text, text_tok)
    kv: list[list[Tensor]] = [[] for _ in range(spec.depformer_num_layers)]
    prev, codes = text_tok, []
    for k in range(spec.num_audio_codebooks):
        tok = sample(model.depth_step(k, normed, prev, kv), greedy, audio_temperature, audio_top_k,
                     race=None if race is None else race[1 + k])
        force = forced_now if spec.delays[k + 1] == 0 else forced_pending
        tok = torch.where(force[:, k] >= 0, force[:, k], tok)
        codes.append(tok)
        prev = tok
    return normed, logits, text_tok, torch.stack(codes, 1), captured


__all__ = ["AdditionHandle", "DeviceAddition", "FastStep", "FastStepError", "StaticFrameCache", "compiled_frame",
           "frame_core"]
