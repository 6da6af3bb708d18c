"""Onset-triggered steering: h(t) <- h(t) + alpha * w(t - t_onset) * mu for t in [t_onset, t_onset + span).

`Steering` says what to add (vector, layers, alpha, span, schedule); a `SteeringController`
holds each batch item's own onsets (absolute frame indices, set before or during a run by a
detector) and hands the hooks a [B, T] coefficient matrix for the frames of each call. `patch()`
installs it and returns a removable handle; `apply()` is the context manager on top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from ..errors import DuplexSteerError
from ..hooks import HookHandle, patch_add
from .vector import PerceptionVector

Schedule = Callable[[int, int], float]
"""w(k, span) for k = t - t_onset in [0, span)."""


def linear_decay(k: int, span: int) -> float:
    """The paper's schedule: 1, 1 - 1/span, ..., 1/span."""
    return 1.0 - k / span


def constant(k: int, span: int) -> float:
    return 1.0


def exponential(k: int, span: int) -> float:
    """exp(-3k/span): about 5% left at the end of the window."""
    return math.exp(-3.0 * k / span)


SCHEDULES: dict[str, Schedule] = {"linear": linear_decay, "constant": constant, "exponential": exponential}


class SteeringError(DuplexSteerError, ValueError):
    """Steering settings that cannot work (unknown schedule, non-positive span, ...)."""


@dataclass
class Steering:
    """What to inject: `alpha * schedule(k) * vector[layer]` at each of `layers`."""

    vector: PerceptionVector
    layers: Sequence[int] | None = None  # default: every layer the vector has
    alpha: float = 5.5
    span: int = 3
    schedule: str = "linear"

    def __post_init__(self) -> None:
        if self.span < 1:
            raise SteeringError(f"span must be at least 1 frame, got {self.span}")
        if self.schedule not in SCHEDULES:
            raise SteeringError(f"unknown schedule {self.schedule!r}; choose one of {sorted(SCHEDULES)}")
        self.layers = list(self.layers) if self.layers is not None else self.vector.layers
        for layer in self.layers:
            self.vector[layer]  # raises a clear VectorError for a layer the vector lacks

    def weight(self, k: int) -> float:
        """alpha * w(k) inside the window, 0 outside."""
        return self.alpha * SCHEDULES[self.schedule](k, self.span) if 0 <= k < self.span else 0.0


@dataclass
class SteeringController:
    """Per-item onsets -> per-call coefficient matrices. Gated on absolute frames, never call positions."""

    steering: Steering
    batch_size: int
    onsets: list[list[int]] = field(default_factory=list)
    enabled: list[bool] | None = None  # items that are steered at all (default: all)

    def __post_init__(self) -> None:
        if not self.onsets:
            self.onsets = [[] for _ in range(self.batch_size)]
        if len(self.onsets) != self.batch_size:
            raise SteeringError(f"got onsets for {len(self.onsets)} items, batch size is {self.batch_size}")
        if self.enabled is None:
            self.enabled = [True] * self.batch_size

    def trigger(self, item: int, frame: int) -> None:
        """An onset for batch item `item` at absolute frame `frame` (from a detector, live)."""
        self.onsets[item].append(int(frame))

    def steered_frames(self, item: int) -> list[int]:
        frames = {t + k for t in self.onsets[item] for k in range(self.steering.span)}
        return sorted(frames) if self.enabled[item] else []

    def coefficients(self, frames: range) -> torch.Tensor | None:
        coef = None
        for b in range(self.batch_size):
            if not self.enabled[b]:
                continue
            for onset in self.onsets[b]:
                if onset >= frames.stop or onset + self.steering.span <= frames.start:
                    continue  # this onset's window does not touch this call
                if coef is None:
                    coef = torch.zeros(self.batch_size, len(frames))
                for j, t in enumerate(frames):
                    coef[b, j] += self.steering.weight(t - onset)
        return coef


def patch(model, controller: SteeringController) -> HookHandle:
    """Install the controller's additions on every steered layer; returns the removable handle."""
    steering = controller.steering
    steering.vector.check_compatible(model)
    handles = [patch_add(model, layer, steering.vector[layer], controller.coefficients) for layer in steering.layers]
    return HookHandle.combine(handles)


@contextmanager
def apply(model, steering: Steering, onsets: Sequence[Sequence[int]] | None = None, batch_size: int | None = None,
          enabled: Sequence[bool] | None = None) -> Iterator[SteeringController]:
    """`with apply(model, Steering(vec, [23]), onsets=[[40], [52]]) as ctl: ...` (absolute frames).

    Onsets may also be added live with `ctl.trigger(item, frame)` (e.g. by an onset detector).
    """
    if batch_size is None:
        batch_size = len(onsets) if onsets is not None else 1
    ctl = SteeringController(steering, batch_size, [list(o) for o in onsets] if onsets is not None else [],
                             list(enabled) if enabled is not None else None)
    handle = patch(model, ctl)
    try:
        yield ctl
    finally:
        handle.remove()
