"""Onset-triggered steering: h(t) <- h(t) + alpha * w(t - t_onset) * mu for t in [t_onset, t_onset + span).

`Steering` says what to add (vector, layers, alpha, span, schedule); a `SteeringController`
holds each batch item's own onsets (absolute frame indices, set before or during a run by a
detector) and hands the hooks a [B, T] coefficient matrix for the frames of each call. `patch()`
installs it and returns a removable handle; `apply()` is the context manager on top.

The coefficients are computed on the model's device from a small onset table kept there: a copy
goes to the device only when an onset is added, never per frame, and nothing is read back. Whether
a call touches a window at all is decided on the host from the host's own onset lists, so frames
outside every window pass through untouched (bit-identical to no steering).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ..errors import DuplexSteerError
from ..hooks import HookHandle, patch_add
from .vector import PerceptionVector

if TYPE_CHECKING:
    from ..engine.conversation import FrameCallback

NO_ONSET = -(2**40)  # pads the device onset table: a frame so far back that its window never touches a call

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


COEFFICIENT_BLOCK = 64  # frames of coefficients a streamed controller computes at once (5 s)


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
        self.device = torch.device("cpu")
        self._uploaded: tuple | None = None  # the host onsets and enabled flags the device table holds
        self._onset_table = self._weights = self._enabled_mask = None
        self._block: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (first frame, onset table, [B, block])

    def to(self, device: torch.device | str) -> SteeringController:
        """Keep the coefficient tables on `device` (the model's; `patch` does this)."""
        self.device = torch.device(device)
        self._uploaded = None
        return self

    def tables(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The device tables: onsets [B, M] (padded with NO_ONSET), alpha * w(k) [span], enabled [B].

        Rebuilt (one host-to-device copy) only when the host's onsets or flags changed since the last call.
        """
        state = (tuple(tuple(o) for o in self.onsets), tuple(self.enabled))
        if state != self._uploaded:
            width = max(4, max(len(o) for o in self.onsets))
            table = [list(o) + [NO_ONSET] * (width - len(o)) for o in self.onsets]
            self._onset_table = torch.tensor(table, dtype=torch.long, device=self.device)
            self._enabled_mask = torch.tensor(self.enabled, dtype=torch.bool, device=self.device)
            span = self.steering.span
            self._weights = torch.tensor([self.steering.weight(k) for k in range(span)], dtype=torch.float32,
                                         device=self.device)
            self._uploaded = state
        return self._onset_table, self._weights, self._enabled_mask

    def coefficient_table(self, frames: torch.Tensor) -> torch.Tensor:
        """[B, T] coefficients for absolute frames [T] (a device tensor), branch-free on the device."""
        return self.coefficients_from(frames, *self.tables())

    @staticmethod
    def coefficients_from(frames: torch.Tensor, onsets: torch.Tensor, weights: torch.Tensor,
                          enabled: torch.Tensor) -> torch.Tensor:
        """[B, T] = sum over onsets of alpha * w(t - onset) inside [onset, onset + span), from `tables()`."""
        k = frames.view(1, -1, 1) - onsets[:, None, :]  # [B, T, M] frames since each onset
        inside = (k >= 0) & (k < weights.shape[0]) & enabled.view(-1, 1, 1)
        return (weights[k.clamp(0, weights.shape[0] - 1)] * inside).sum(-1)

    def layer_vectors(self) -> list[tuple[int, torch.Tensor]]:
        """(layer, direction) for each steered layer (the fast step's built-in additions)."""
        return [(layer, self.steering.vector[layer]) for layer in self.steering.layers]

    def touches(self, frames: range) -> bool:
        """Whether any steered item's window overlaps `frames` (host lists only: no device read)."""
        span = self.steering.span
        return any(onset < frames.stop and onset + span > frames.start
                   for b in range(self.batch_size) if self.enabled[b] for onset in self.onsets[b])

    def trigger(self, item: int, frame: int) -> None:
        """An onset for batch item `item` at absolute frame `frame` (from a detector, live)."""
        self.onsets[item].append(int(frame))

    def steered_frames(self, item: int) -> list[int]:
        frames = {t + k for t in self.onsets[item] for k in range(self.steering.span)}
        return sorted(frames) if self.enabled[item] else []

    def coefficients(self, frames: range) -> torch.Tensor | None:
        """[B, T] coefficients (on the controller's device) for the absolute frames of a call, or None
        when no window touches them (the hook then leaves the layer's output untouched).

        A streamed frame reads a column of a block of `COEFFICIENT_BLOCK` frames computed at once (a view: no
        device work per frame besides the addition itself); the block is recomputed when the frame leaves it
        or the onsets change. Same values as computing each frame alone (the computation is elementwise).
        """
        if not self.touches(frames):
            return None
        start = frames.start - frames.start % COEFFICIENT_BLOCK
        if frames.stop > start + COEFFICIENT_BLOCK:  # a whole sequence (teacher forcing): computed as it is
            return self.coefficient_table(torch.arange(frames.start, frames.stop, device=self.device))
        tables = self.tables()  # rebuilds (and forgets the block) when the onsets changed
        if self._block is None or self._block[0] != start or self._block[1] is not tables[0]:
            block = self.coefficients_from(torch.arange(start, start + COEFFICIENT_BLOCK, device=self.device), *tables)
            self._block = (start, tables[0], block)
        return self._block[2][:, frames.start - start : frames.stop - start]


def patch(model, controller: SteeringController) -> HookHandle:
    """Install the controller's additions on every steered layer; returns the removable handle."""
    steering = controller.steering
    steering.vector.check_compatible(model)
    controller.to(model.device)
    handles = [patch_add(model, layer, steering.vector[layer], controller.coefficients) for layer in steering.layers]
    return HookHandle.combine(handles)


def attach(session, controller: SteeringController) -> HookHandle:
    """Steer one session: hooks for an eager session (`patch`), the built-in addition for a fast one
    (`model.session(fast=True)`: hooks do not run in a compiled step). Returns the removable handle."""
    if not getattr(session, "fast", False):
        return patch(session.model, controller)
    controller.steering.vector.check_compatible(session.model)
    controller.to(session.model.device)
    return HookHandle([session.add_steering(controller)])


def row_controllers(model, steerings: Sequence[Steering | None]) -> tuple[list[SteeringController | None], HookHandle]:
    """Controllers for a batch whose rows steer differently: `steerings[b]` is row b's (None: unsteered).

    Rows holding the same `Steering` object share one controller enabled only on them; each distinct
    object gets its own (e.g. a random-direction control with one direction per row). Installed on
    `model`; returns each row's controller (None where unsteered) and the handle that removes them all.
    """
    shared: dict[int, SteeringController] = {}
    handles = []
    for steering in steerings:
        if steering is not None and id(steering) not in shared:
            enabled = [other is steering for other in steerings]
            shared[id(steering)] = SteeringController(steering, len(steerings), enabled=enabled)
            handles.append(patch(model, shared[id(steering)]))
    rows = [shared[id(st)] if st is not None else None for st in steerings]
    return rows, HookHandle.combine(handles)


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


@contextmanager
def steer_at_onsets(model, steering: Steering, onsets: Sequence[int]) -> Iterator[FrameCallback]:
    """Steer batch item b from its onset `onsets[b]` (a RECORDING frame) on; yields converse's `before_frame`.

    When recording frame onsets[b] is about to be stepped, the controller is triggered with the session's
    absolute frame (`session.frame`, which counts the prompt's frames too), so the window covers exactly
    frames onset .. onset + span - 1 of the recording. A negative onset means "do not steer this item".
    `functools.partial(steer_at_onsets, model, steering)` is a `probes.inertia.OnsetIntervention`.
    """
    with apply(model, steering, batch_size=len(onsets)) as ctl:
        def before_frame(session, frame: int) -> None:
            for b, onset in enumerate(onsets):
                if frame == onset:
                    ctl.trigger(b, session.frame)

        yield before_frame
