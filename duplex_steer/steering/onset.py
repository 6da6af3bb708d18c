"""Causal interruption-onset detectors: they see the user's audio up to the current frame only.

Each detector is batch-native: `update(audio [B, 1920], frame, model_speaking [B])` -> [B] bool,
True where an onset is declared at this frame. Shared options: trigger only while the model is
speaking, and a refractory period after each onset. The causal detectors (energy, VAD) fire only
while the model speaks by default (`ONLY_WHILE_MODEL_SPEAKS`), in the CLI, ZBB and the demo alike;
`model_speaking=None` counts as speaking. `FalseTriggers` fires at random frames at a chosen rate,
for the robustness study.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..errors import DuplexSteerError

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE

ONLY_WHILE_MODEL_SPEAKS = True
"""Default for the causal detectors: an interruption is the user speaking over the model, so sound
while the model is silent (the user's first turn, a reply to its question) is not one. The callers
pass "is the model speaking" per frame (the model's text stream, `probes.activity`)."""
CAUSAL_DETECTORS = ("energy", "vad")


class OnsetError(DuplexSteerError, ValueError):
    """A detector asked to do something it cannot (wrong shapes, unknown name)."""


@dataclass
class OnsetDetector:
    """Base: gating by model activity and a refractory period around a raw per-frame decision."""

    only_while_model_speaks: bool = False
    refractory_frames: int = 25  # 2 s: one interruption, one onset
    _last: np.ndarray | None = field(default=None, init=False, repr=False)

    def reset(self, batch_size: int) -> None:
        self._last = np.full(batch_size, -(10**9))
        self._reset(batch_size)

    def _reset(self, batch_size: int) -> None:
        pass

    def _raw(self, audio: np.ndarray, frame: int) -> np.ndarray:
        raise NotImplementedError

    def update(self, audio: np.ndarray, frame: int, model_speaking: np.ndarray | None = None) -> np.ndarray:
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim != 2 or audio.shape[1] != FRAME_SAMPLES:
            raise OnsetError(f"onset detectors take [batch, {FRAME_SAMPLES}] audio frames, got {audio.shape}")
        if self._last is None or len(self._last) != audio.shape[0]:
            self.reset(audio.shape[0])
        fire = self._raw(audio, frame)
        if self.only_while_model_speaks:
            speaking = np.ones(len(fire), bool) if model_speaking is None else np.asarray(model_speaking, bool)
            fire &= speaking
        fire &= (frame - self._last) > self.refractory_frames
        self._last[fire] = frame
        return fire


@dataclass
class OracleOnset(OnsetDetector):
    """Onsets given in advance (one recording frame per item, None for none)."""

    frames: list[int | None] = field(default_factory=list)

    def _raw(self, audio: np.ndarray, frame: int) -> np.ndarray:
        if len(self.frames) != audio.shape[0]:
            raise OnsetError(f"oracle has onsets for {len(self.frames)} items, batch has {audio.shape[0]}")
        return np.array([f is not None and f == frame for f in self.frames])


@dataclass
class EnergyOnset(OnsetDetector):
    """RMS against a noise floor estimated online, with hysteresis.

    On when RMS > max(on_ratio * floor, min_rms) for `on_frames` frames; off again when RMS <
    off_ratio * floor for `off_frames` frames. The floor follows quiet frames (exponential average).
    """

    only_while_model_speaks: bool = ONLY_WHILE_MODEL_SPEAKS
    on_ratio: float = 6.0
    off_ratio: float = 3.0
    min_rms: float = 0.01
    on_frames: int = 1
    off_frames: int = 4
    floor_adapt: float = 0.1
    floor_min: float = 1e-4

    def _reset(self, batch_size: int) -> None:
        self._floor = np.full(batch_size, np.nan)
        self._active = np.zeros(batch_size, bool)
        self._on = np.zeros(batch_size, int)
        self._off = np.zeros(batch_size, int)

    def _raw(self, audio: np.ndarray, frame: int) -> np.ndarray:
        rms = np.sqrt((audio.astype(np.float64) ** 2).mean(1))
        first = np.isnan(self._floor)
        self._floor[first] = np.maximum(rms[first], self.floor_min)
        loud = rms > np.maximum(self.on_ratio * self._floor, self.min_rms)
        quiet = rms < self.off_ratio * self._floor
        self._on = np.where(loud, self._on + 1, 0)
        self._off = np.where(quiet, self._off + 1, 0)
        fire = ~self._active & (self._on >= self.on_frames)
        self._active |= fire
        self._active &= ~(self._off >= self.off_frames)
        adapt = ~self._active & ~loud
        self._floor[adapt] = np.maximum(
            (1 - self.floor_adapt) * self._floor[adapt] + self.floor_adapt * rms[adapt], self.floor_min)
        return fire


@dataclass
class SileroVADOnset(OnsetDetector):
    """Silero VAD (the `silero-vad` package's bundled model, no download) with hysteresis."""

    only_while_model_speaks: bool = ONLY_WHILE_MODEL_SPEAKS
    threshold: float = 0.5
    off_threshold: float = 0.35
    off_frames: int = 4

    def _reset(self, batch_size: int) -> None:
        import torch
        from silero_vad import load_silero_vad

        self._torch = torch
        self._model = load_silero_vad(onnx=False)
        self._model.reset_states()
        self._pending = np.zeros((batch_size, 0), np.float32)  # 16 kHz samples not yet scored
        self._active = np.zeros(batch_size, bool)
        self._off = np.zeros(batch_size, int)
        self._tail = np.zeros((batch_size, 0), np.float32)

    def _raw(self, audio: np.ndarray, frame: int) -> np.ndarray:
        import torchaudio.functional as AF

        torch = self._torch
        # resample with 240 samples of past context so frame edges do not click
        ctx = np.concatenate([self._tail, audio], 1)
        res = AF.resample(torch.from_numpy(ctx), SAMPLE_RATE, 16_000).numpy()
        skip = self._tail.shape[1] * 2 // 3
        self._tail = audio[:, -240:]
        self._pending = np.concatenate([self._pending, res[:, skip:]], 1)
        prob = np.zeros(audio.shape[0])
        with torch.no_grad():
            while self._pending.shape[1] >= 512:
                chunk = torch.from_numpy(np.ascontiguousarray(self._pending[:, :512]))
                prob = np.maximum(prob, self._model(chunk, 16_000).numpy()[:, 0])
                self._pending = self._pending[:, 512:]
        fire = ~self._active & (prob >= self.threshold)
        self._active |= fire
        self._off = np.where(prob < self.off_threshold, self._off + 1, 0)
        self._active &= ~(self._off >= self.off_frames)
        return fire


@dataclass
class FalseTriggers(OnsetDetector):
    """Random onsets at `rate_hz` per item (Bernoulli per frame), seeded: the false-trigger study."""

    rate_hz: float = 0.1
    seed: int = 0

    def _reset(self, batch_size: int) -> None:
        self._rng = np.random.default_rng(self.seed)

    def _raw(self, audio: np.ndarray, frame: int) -> np.ndarray:
        return self._rng.random(audio.shape[0]) < self.rate_hz * FRAME_S


DETECTORS = {"oracle": OracleOnset, "energy": EnergyOnset, "vad": SileroVADOnset, "false": FalseTriggers}


def make_detector(name: str, **options) -> OnsetDetector:
    if name not in DETECTORS:
        raise OnsetError(f"unknown onset detector {name!r}; choose one of {sorted(DETECTORS)}")
    return DETECTORS[name](**options)
