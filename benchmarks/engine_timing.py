"""Timing, contention and memory helpers of benchmarks/engine_speed.py (importable): time the streaming
step and HF `generate` on the same weights, measure how busy the rest of the machine is, read peak memory."""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HookFactory = Callable[[Any, int], Any]
FRAME_MS = 80.0
QUIET_CORES = 0.25  # "quiet": other processes keep fewer cores than this busy


# --- timing helpers (importable) --------------------------------------------------------------------
def sync_device(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def _remove(handles: Any) -> None:
    if handles is None:
        return
    if hasattr(handles, "remove"):
        handles.remove()
    elif isinstance(handles, Iterable):
        for h in handles:
            _remove(h)
    elif callable(handles):
        handles()


def user_codes(model, batch: int, frames: int, seed: int = 0):
    """Random user audio codes [batch, 8, frames] on the model's device (fixed seed)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, model.spec.card, (batch, model.spec.num_audio_codebooks, frames), generator=gen)
    return codes.to(model.device)


def time_steps(model, batch: int, frames: int, warmup: int, hook_factory: HookFactory | None = None) -> dict[str, float]:
    """Time `frames` streaming steps of a fresh sampling session (reference defaults, seed 0).

    `hook_factory(model, batch)`, if given, is called before the warm-up steps and must return
    something with `.remove()` (or an iterable of such, or a callable remover); it is removed after
    timing, also on error. Returns seconds, ms per step, frames/s (= batch * frames / seconds) and
    the real-time factor (ms per step / 80 ms).
    """
    codes = user_codes(model, batch, warmup + frames)
    handles = hook_factory(model, batch) if hook_factory is not None else None
    try:
        session = model.session(batch_size=batch, seed=0)
        for t in range(warmup):
            session.step(codes[:, :, t])
        sync_device(model.device)
        start = time.perf_counter()
        for t in range(warmup, warmup + frames):
            session.step(codes[:, :, t])
        sync_device(model.device)
        seconds = time.perf_counter() - start
    finally:
        _remove(handles)
    ms = 1000.0 * seconds / frames
    return {"seconds": seconds, "ms_per_step": ms, "frames_per_s": batch * frames / seconds,
            "rtf": ms / FRAME_MS}


_TRANSFORMERS_TWINS: dict[int, Any] = {}  # id(model) -> the same tensors in transformers' own modules


def transformers_twin(model):
    """transformers' `MoshiForConditionalGeneration` on the model's tensors, built once per model."""
    from duplex_steer.engine.modules import to_transformers

    if id(model) not in _TRANSFORMERS_TWINS:
        _TRANSFORMERS_TWINS[id(model)] = to_transformers(model.hf, model.spec)
    return _TRANSFORMERS_TWINS[id(model)]


def time_generate(model, batch: int, new_frames: int, prefix: int = 1) -> float:
    """Seconds for HF `generate` to produce `new_frames` frames after a `prefix`-frame random prompt.

    Sampling with the reference's defaults (text: temperature 0.7, top-k 25; audio: 0.8, 250); no
    waveform decoding; the Mimi codec only encodes generate's one frame of blank user audio.
    """
    import torch

    spec = model.spec
    hf = transformers_twin(model)
    gen = torch.Generator().manual_seed(1)
    A = spec.num_audio_codebooks
    ids = torch.randint(0, spec.text_card, (batch, prefix), generator=gen).to(model.device)
    user = torch.randint(0, spec.card, (batch, A, prefix), generator=gen).to(model.device)
    moshi = torch.randint(0, spec.card, (batch, A, prefix), generator=gen).to(model.device)
    torch.manual_seed(0)
    sync_device(model.device)
    start = time.perf_counter()
    hf.generate(
        input_ids=ids, user_audio_codes=user, moshi_audio_codes=moshi, max_new_tokens=new_frames,
        min_new_tokens=new_frames, do_sample=True, temperature=0.7, top_k=25,
        depth_decoder_do_sample=True, depth_decoder_temperature=0.8, depth_decoder_top_k=250,
        return_audio_waveforms=False, return_audio_codes=True,
    )
    sync_device(model.device)
    return time.perf_counter() - start


def additive_steering(layer: int, scale: float = 1.0) -> HookFactory:
    """A hook factory: the real steering path (PerceptionVector -> Steering -> SteeringController ->
    patch) with every item's window open on every timed frame: the worst case, steering each step."""

    def factory(model, batch: int):
        import torch

        from duplex_steer.steering import PerceptionVector, Steering, SteeringController, patch

        vec = torch.randn(model.hidden_size, generator=torch.Generator().manual_seed(2))
        vector = PerceptionVector({layer: scale * vec / vec.norm()}, {"model": model.fingerprint()})
        steering = Steering(vector, [layer], alpha=1.0, span=10**6, schedule="constant")
        return patch(model, SteeringController(steering, batch, onsets=[[0] for _ in range(batch)]))

    return factory


def state_capture(layers: list[int] | None = None) -> HookFactory:
    """A hook factory: every named layer's state handed to a per-frame sink (`hooks.patch_record` with a
    `CurrentFrameSink`), what online probes (`probes.affinity.OnlineAffinity`) read each frame; the lens
    arithmetic they then do is analysis, not timed here. None: every layer."""

    def factory(model, batch: int):
        from duplex_steer.hooks import CurrentFrameSink, patch_record

        return patch_record(model, layers, CurrentFrameSink())

    return factory


# --- contention -------------------------------------------------------------------------------------
def _cpu_busy_seconds() -> float | None:
    """CPU-seconds all cores of the machine have spent busy since boot (Linux /proc/stat), or None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Measures how many cores OTHER processes kept busy while the block ran (machine busy - ours)."""

    others_cores: float | None = None

    def __enter__(self) -> CpuMeter:
        self._busy, self._own, self._wall = _cpu_busy_seconds(), _own_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, wall = _cpu_busy_seconds(), time.perf_counter() - self._wall
        if busy is not None and self._busy is not None and wall > 0.05:
            self.others_cores = max(0.0, (busy - self._busy - (_own_cpu() - self._own)) / wall)


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def other_load(seconds: float = 1.0) -> float | None:
    """Cores kept busy by other processes over `seconds` (this process sleeps meanwhile)."""
    with CpuMeter() as meter:
        time.sleep(seconds)
    return meter.others_cores


# --- memory -----------------------------------------------------------------------------------------
def peak_rss_mib() -> float:
    """This process's peak resident set size so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cuda_peak_mib(device) -> float | None:
    import torch

    if getattr(device, "type", "cpu") != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _cuda_reset(device) -> None:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)


class Timings:
    """Repeated measurements of one quantity, each with the other processes' CPU use while it ran."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.others: list[float | None] = []
        self.cuda_peaks: list[float | None] = []

    def run(self, device, key: Callable[[Any], float], fn, *args, **kwargs) -> None:
        _cuda_reset(device)
        with CpuMeter() as meter:
            out = fn(*args, **kwargs)
        self.values.append(out)
        self.others.append(meter.others_cores)
        self.cuda_peaks.append(_cuda_peak_mib(device))
        self._key = key

    def best_index(self) -> int:
        return min(range(len(self.values)), key=lambda i: self._key(self.values[i]))

    def best(self) -> Any:
        return self.values[self.best_index()]

    def best_others(self) -> float | None:
        return self.others[self.best_index()]

    def cuda_peak(self) -> float | None:
        peaks = [p for p in self.cuda_peaks if p is not None]
        return max(peaks) if peaks else None


def is_clean(t: Timings, threshold: float) -> bool:
    """Whether the best measurement ran while other processes stayed under `threshold` cores."""
    if not t.values:
        return True
    o = t.best_others()
    return o is None or o < threshold
