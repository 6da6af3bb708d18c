"""Forward hooks on the temporal transformer's layers: record residual streams, add to them.

Every hook knows which ABSOLUTE frames the current call covers (`model.current_frames`, set by the
engine): under a KV cache each call is one frame, in a teacher-forced pass it is all of them, and a
hook written against positions inside the call would be wrong in one of the two. `patch_*`
functions return a removable `HookHandle`; the context managers (`record`, `intervene`) remove
their hooks on exit, exceptions included. Nothing attached costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .errors import DuplexSteerError


class HookError(DuplexSteerError, ValueError):
    """A hook asked for something the model does not have (e.g. a layer out of range)."""


class HookHandle:
    """Removes a group of hooks; usable as a context manager. Removing twice is harmless."""

    def __init__(self, handles: Iterable[torch.utils.hooks.RemovableHandle] = ()):
        self._handles = list(handles)

    @classmethod
    def combine(cls, groups: Iterable[HookHandle]) -> HookHandle:
        """One handle that removes every hook of `groups` (e.g. one steering addition per layer)."""
        return cls(h for group in groups for h in group._handles)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def check_layers(model, layers: int | Sequence[int] | None) -> list[int]:
    """Normalise a layer selection (None = all; negative counts from the end) and validate it."""
    n = model.num_layers
    if layers is None:
        return list(range(n))
    chosen = [layers] if isinstance(layers, int) else list(layers)
    out = []
    for layer in chosen:
        if not isinstance(layer, int) or not -n <= layer < n:
            raise HookError(f"layer {layer!r} is out of range: this model has layers 0..{n - 1}")
        out.append(layer % n)
    return out


# --- recording -------------------------------------------------------------------------------------
FrameFilter = Callable[[int], bool]


class Sink:
    """Where recorded states go. Subclasses keep them, average them, or stream them to disk."""

    def add(self, layer: int, frame: int, states: Tensor) -> None:  # states: [B, dim]
        raise NotImplementedError


class CurrentFrameSink(Sink):
    """Keeps only the latest frame's states per layer: the hand-off from a hook to a per-frame callback
    (online affinities, the fitting labeler)."""

    def __init__(self) -> None:
        self.states: dict[int, Tensor] = {}

    def add(self, layer: int, frame: int, states: Tensor) -> None:
        self.states[layer] = states.detach()


@dataclass
class KeepSink(Sink):
    """Keeps every recorded frame in memory (optionally in a smaller dtype)."""

    dtype: torch.dtype | None = None
    frames: dict[int, list[int]] = field(default_factory=dict)
    states: dict[int, list[Tensor]] = field(default_factory=dict)

    def add(self, layer: int, frame: int, states: Tensor) -> None:
        self.frames.setdefault(layer, []).append(frame)
        s = states.detach()
        self.states.setdefault(layer, []).append((s.to(self.dtype) if self.dtype else s).cpu())

    def stacked(self, layer: int) -> Tensor:
        """[B, n_frames, dim] in recording order."""
        if layer not in self.states:
            raise HookError(f"nothing was recorded at layer {layer}")
        return torch.stack(self.states[layer], 1)


@dataclass
class MeanSink(Sink):
    """Running per-layer sums: memory independent of the number of frames."""

    sums: dict[int, Tensor] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)

    def add(self, layer: int, frame: int, states: Tensor) -> None:
        s = states.detach().double().sum(0).cpu()
        self.sums[layer] = self.sums[layer] + s if layer in self.sums else s
        self.counts[layer] = self.counts.get(layer, 0) + states.shape[0]

    def mean(self, layer: int) -> Tensor:
        return (self.sums[layer] / max(self.counts.get(layer, 0), 1)).float()


class DiskSink(Sink):
    """Streams states to `folder/layer{L}_{chunk}.safetensors` every `chunk_frames` frames."""

    def __init__(self, folder: str | Path, chunk_frames: int = 256, dtype: torch.dtype = torch.float16):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.chunk_frames, self.dtype = chunk_frames, dtype
        self._buf: dict[int, list[tuple[int, Tensor]]] = {}
        self._chunks: dict[int, int] = {}

    def add(self, layer: int, frame: int, states: Tensor) -> None:
        buf = self._buf.setdefault(layer, [])
        buf.append((frame, states.detach().to(self.dtype).cpu()))
        if len(buf) >= self.chunk_frames:
            self._flush(layer)

    def _flush(self, layer: int) -> None:
        from safetensors.torch import save_file

        buf = self._buf.get(layer)
        if not buf:
            return
        k = self._chunks.get(layer, 0)
        save_file({"frames": torch.tensor([f for f, _ in buf]), "states": torch.stack([s for _, s in buf], 1)},
                  str(self.folder / f"layer{layer}_{k:05d}.safetensors"))
        self._chunks[layer] = k + 1
        self._buf[layer] = []

    def close(self) -> None:
        for layer in list(self._buf):
            self._flush(layer)

    def load(self, layer: int) -> tuple[Tensor, Tensor]:
        """(frames [n], states [B, n, dim]) read back from disk."""
        from safetensors.torch import load_file

        parts = [load_file(str(p)) for p in sorted(self.folder.glob(f"layer{layer}_*.safetensors"))]
        if not parts:
            raise HookError(f"no states on disk for layer {layer} in {self.folder}")
        return torch.cat([p["frames"] for p in parts]), torch.cat([p["states"] for p in parts], 1)


def patch_record(model, layers: int | Sequence[int] | None, sink: Sink,
                 frames: FrameFilter | None = None) -> HookHandle:
    """Record the output of `layers` for the absolute frames `frames` accepts (None: all)."""
    handles = []
    for layer in check_layers(model, layers):
        def hook(module, args, output, layer=layer):
            for j, frame in enumerate(model.current_frames):
                if frames is None or frames(frame):
                    sink.add(layer, frame, output[:, j])
        handles.append(model.layers[layer].register_forward_hook(hook))
    return HookHandle(handles)


@contextmanager
def record(model, layers: int | Sequence[int] | None = None, frames: FrameFilter | None = None,
           sink: Sink | None = None) -> Iterator[Sink]:
    """`with record(model, [12, 23]) as rec: ...` then `rec.stacked(23)` -> [B, frames, dim]."""
    sink = sink if sink is not None else KeepSink()
    handle = patch_record(model, layers, sink, frames)
    try:
        yield sink
    finally:
        handle.remove()
        if isinstance(sink, DiskSink):
            sink.close()


# --- additive interventions --------------------------------------------------------------------------
Coefficients = Callable[[range], Tensor | None]
"""Given the absolute frames of a call, a [B, T] coefficient matrix, or None for 'no change here'."""


def patch_add(model, layer: int, vector: Tensor, coefficients: Coefficients) -> HookHandle:
    """At `layer`'s output add coefficients[b, t] * vector for each batch item b and frame t.

    Where `coefficients` returns None (the usual case outside a steering window) the output tensor
    is passed through untouched, so inactive steering is bit-identical to none.
    """
    (layer,) = check_layers(model, layer)
    if vector.shape != (model.hidden_size,):
        raise HookError(f"vector has shape {tuple(vector.shape)}; layer {layer} needs ({model.hidden_size},)")
    vec = vector.to(model.device, model.dtype)

    def hook(module, args, output):
        coef = coefficients(model.current_frames)
        if coef is None:
            return None
        return output + coef.to(output.device, output.dtype).unsqueeze(-1) * vec

    return HookHandle([model.layers[layer].register_forward_hook(hook)])


@contextmanager
def intervene(model, layer: int, vector: Tensor, coefficients: Coefficients) -> Iterator[HookHandle]:
    handle = patch_add(model, layer, vector, coefficients)
    try:
        yield handle
    finally:
        handle.remove()
