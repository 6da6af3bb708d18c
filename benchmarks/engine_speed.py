"""Engine speed: frames/s, real-time factor and peak memory of `DuplexSession.step`, against HF `generate`.

For each preset and batch size, a fresh worker subprocess loads the model (random weights, no
download), times our streaming step, times transformers' `MoshiForConditionalGeneration.generate`
on the SAME weights, and reads its own peak memory. Timings interleave ours and generate's within
each repeat and keep the best of the repeats, so the ratio ours / generate is measured in one run
under the same load. Results go to stdout (markdown) and to benchmarks/results/engine_speed.{md,json}.

    .venv/bin/python benchmarks/engine_speed.py                      # CPU: tiny + mid, batch 1 8 32
    .venv/bin/python benchmarks/engine_speed.py --device cuda --dtype bfloat16 --presets full

Definitions used throughout:
- one "step" advances all B conversations of the lockstep batch by one 80 ms frame;
- ms/step = wall time of one step; frames/s = B * frames / seconds (conversation frames per second);
- real-time factor (RTF) = ms/step / 80 ms: below 1 every conversation of the batch runs faster
  than real time;
- generate ms/step = (t(N2) - t(N1)) / (N2 - N1) for two `max_new_tokens` values N1 < N2, which
  cancels the prefix pass and generate's fixed costs. generate is NOT full duplex (after its prefix it
  feeds blank user audio): it is only a cost yardstick for one frame of the same model.

Steering overhead hook: `time_steps(..., hook_factory=f)` installs `f(model, batch)` (anything with
`.remove()`, e.g. a `duplex_steer.hooks.HookHandle`) before warm-up and removes it afterwards, so a
steered variant is timed in the same run as the plain step (`--steer-layer L` does this with an
additive vector at layer L on every frame).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FRAME_MS = 80.0
RATIO_TARGET = 1.0  # our per-step cost at most 1.0x generate's
GPU_FULL_TARGET_MS = 80.0  # full 7B, bf16, batch 1: real time
STEER_TARGET_PCT = 2.0  # steering adds under 2% at batch 1 and 8 on mid
QUIET_CORES = 0.25  # "quiet": other processes keep fewer cores than this busy
RESULTS = REPO / "benchmarks" / "results"

HookFactory = Callable[[Any, int], Any]


# --- timing helpers (importable) --------------------------------------------------------------------
def _sync(device) -> None:
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
        _sync(model.device)
        start = time.perf_counter()
        for t in range(warmup, warmup + frames):
            session.step(codes[:, :, t])
        _sync(model.device)
        seconds = time.perf_counter() - start
    finally:
        _remove(handles)
    ms = 1000.0 * seconds / frames
    return {"seconds": seconds, "ms_per_step": ms, "frames_per_s": batch * frames / seconds,
            "rtf": ms / FRAME_MS}


def time_generate(model, batch: int, new_frames: int, prefix: int = 1) -> float:
    """Seconds for HF `generate` to produce `new_frames` frames after a `prefix`-frame random prompt.

    Sampling with the reference's defaults (text: temperature 0.7, top-k 25; audio: 0.8, 250); no
    waveform decoding; the Mimi codec only encodes generate's one frame of blank user audio.
    """
    import torch

    spec = model.spec
    gen = torch.Generator().manual_seed(1)
    A = spec.num_audio_codebooks
    ids = torch.randint(0, spec.text_card, (batch, prefix), generator=gen).to(model.device)
    user = torch.randint(0, spec.card, (batch, A, prefix), generator=gen).to(model.device)
    moshi = torch.randint(0, spec.card, (batch, A, prefix), generator=gen).to(model.device)
    torch.manual_seed(0)
    _sync(model.device)
    start = time.perf_counter()
    model.hf.generate(
        input_ids=ids, user_audio_codes=user, moshi_audio_codes=moshi, max_new_tokens=new_frames,
        min_new_tokens=new_frames, do_sample=True, temperature=0.7, top_k=25,
        depth_decoder_do_sample=True, depth_decoder_temperature=0.8, depth_decoder_top_k=250,
        return_audio_waveforms=False, return_audio_codes=True,
    )
    _sync(model.device)
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


def _clean(t: Timings, threshold: float) -> bool:
    """Whether the best measurement ran while other processes stayed under `threshold` cores."""
    if not t.values:
        return True
    o = t.best_others()
    return o is None or o < threshold


def measure_row(model, batch: int, cfg: dict[str, Any], steer: HookFactory | None) -> dict[str, Any]:
    """All timings of one (preset, batch) row.

    Rounds interleave our step, the steered step and generate, so all see the same load. After
    `repeats` rounds, more rounds run (waiting for a quiet moment first) while the best of any
    quantity was taken under contention, until `patience` seconds have passed. Round 0 times our
    step before generate has ever run, for a clean peak RSS of ours.
    """
    import torch

    device = model.device
    n1, n2 = cfg["gen_frames"]
    thr = cfg["quiet_cores"]
    row: dict[str, Any] = {"batch": batch}
    ours, steered, g1, g2 = Timings(), Timings(), Timings(), Timings()
    by_seconds = lambda r: r["seconds"]  # noqa: E731
    by_value = lambda r: r  # noqa: E731
    deadline = time.monotonic() + cfg["patience"]
    rounds = 0
    try:
        while True:
            variants = [(ours, None), (steered, steer)] if steer is not None else [(ours, None)]
            for store, factory in variants if rounds % 2 == 0 else variants[::-1]:  # ABBA: no order bias
                store.run(device, by_seconds, time_steps, model, batch, cfg["frames"], cfg["warmup"],
                          hook_factory=factory)
            if rounds == 0:
                row["peak_rss_ours_mib"] = peak_rss_mib()
            if cfg["generate"]:
                if rounds == 0:
                    time_generate(model, batch, 2)  # warm-up (first-call costs, allocator)
                g1.run(device, by_value, time_generate, model, batch, n1)
                g2.run(device, by_value, time_generate, model, batch, n2)
            rounds += 1
            if rounds < cfg["repeats"]:
                continue
            if all(_clean(t, thr) for t in (ours, steered, g1, g2)) or time.monotonic() >= deadline:
                break
            while time.monotonic() < deadline:  # wait for a quiet moment before the next round
                busy = other_load(1.0)
                if busy is None or busy < thr:
                    break
                time.sleep(2.0)
    except torch.OutOfMemoryError as exc:
        row["error"] = f"out of memory: {str(exc).splitlines()[0]}"
        if device.type == "cuda":
            torch.cuda.empty_cache()
    row["rounds"] = rounds
    if g2.values:
        row["peak_rss_with_generate_mib"] = peak_rss_mib()
    if device.type == "cuda":
        row["cuda_peak_ours_mib"] = ours.cuda_peak()
        row["cuda_peak_generate_mib"] = g1.cuda_peak() or g2.cuda_peak()
    best_others = [t.best_others() for t in (ours, steered, g1, g2) if t.values]
    best_others = [o for o in best_others if o is not None]
    all_others = [o for t in (ours, steered, g1, g2) for o in t.others if o is not None]
    if all_others:
        row["other_load_cores"] = {"best": max(best_others) if best_others else None,
                                   "mean": sum(all_others) / len(all_others), "max": max(all_others)}
    if ours.values:
        best = ours.best()
        row.update({"ms_per_step": best["ms_per_step"], "frames_per_s": best["frames_per_s"],
                    "rtf": best["rtf"], "ms_per_step_all": [r["ms_per_step"] for r in ours.values],
                    "other_load_all": ours.others})
    if steered.values and ours.values:
        sbest = steered.best()["ms_per_step"]
        row["steered_ms_per_step"] = sbest
        row["steering_overhead_pct"] = 100.0 * (sbest / row["ms_per_step"] - 1.0)
    if g1.values and g2.values:
        gen_ms = 1000.0 * (g2.best() - g1.best()) / (n2 - n1)
        row.update({"generate_ms_per_step": gen_ms, "generate_s": {str(n1): g1.values, str(n2): g2.values}})
        if ours.values and gen_ms > 0:
            row["ratio_ours_to_generate"] = row["ms_per_step"] / gen_ms
        elif gen_ms <= 0:
            row["error"] = "generate's per-step difference is not positive: timing noise, rerun on a quiet machine"
    return row


# --- worker (one subprocess per configuration or per preset) -----------------------------------------
def worker(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    import torch
    import transformers

    from duplex_steer import load

    transformers.logging.set_verbosity_error()
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    device = torch.device(cfg["device"])
    dtype = getattr(torch, cfg["dtype"])
    t0 = time.perf_counter()
    model = load(cfg["preset"], device=device, dtype=dtype)
    _sync(device)
    load_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mib()
    cuda_loaded = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else None
    steer = additive_steering(cfg["steer_layer"]) if cfg["steer_layer"] is not None else None
    rows = []
    for batch in cfg["batches"]:
        row = {"preset": cfg["preset"], "load_s": load_s, "rss_after_load_mib": rss_loaded,
               "cuda_weights_mib": cuda_loaded}
        row.update(measure_row(model, batch, cfg, steer))
        rows.append(row)
    return rows


# --- driver -------------------------------------------------------------------------------------------
def machine(device: str, threads: int | None) -> dict[str, Any]:
    import torch
    import transformers

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "device": device,
            "mem_total_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def run_worker_process(cfg: dict[str, Any], timeout: float) -> list[dict[str, Any]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cfg)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return [{"preset": cfg["preset"], "batch": b, "error": f"worker timed out after {timeout:.0f} s"}
                for b in cfg["batches"]]
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return [{"preset": cfg["preset"], "batch": b, "error": f"worker exit {proc.returncode}: {' | '.join(tail)}"}
            for b in cfg["batches"]]


def _contended(row: dict[str, Any], threshold: float = QUIET_CORES) -> bool:
    best = (row.get("other_load_cores") or {}).get("best")
    return best is not None and best >= threshold


def wait_quiet(max_wait: float, threshold: float) -> float | None:
    """Wait (up to max_wait s) until other processes keep fewer than `threshold` cores busy."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = other_load(1.0)
        if busy is None or busy < threshold or time.monotonic() >= deadline:
            return busy
        time.sleep(4.0)


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def verdicts(rows: list[dict[str, Any]], device: str, dtype: str) -> list[str]:
    out = []
    by = {(r["preset"], r["batch"]): r for r in rows}
    for r in rows:
        if r.get("ratio_ours_to_generate") is not None:
            ok = r["ratio_ours_to_generate"] <= RATIO_TARGET
            out.append(f"- {r['preset']} batch {r['batch']}: ours / generate per step = "
                       f"{r['ratio_ours_to_generate']:.2f}x (target <= {RATIO_TARGET:.1f}x) -> "
                       f"**{'PASS' if ok else 'FAIL'}**")
    if device == "cuda":
        r = by.get(("full", 1)) or by.get(("full-personaplex", 1))
        if r is not None and "ms_per_step" in r:
            ok = r["ms_per_step"] < GPU_FULL_TARGET_MS
            out.append(f"- {r['preset']} ({dtype}) batch 1: {r['ms_per_step']:.1f} ms/step (target < "
                       f"{GPU_FULL_TARGET_MS:.0f} ms, real time) -> **{'PASS' if ok else 'FAIL'}**")
    for r in rows:
        if r.get("steering_overhead_pct") is not None and r["preset"] == "mid" and r["batch"] in (1, 8):
            ok = r["steering_overhead_pct"] < STEER_TARGET_PCT
            out.append(f"- mid batch {r['batch']}: steering overhead {r['steering_overhead_pct']:+.1f}% "
                       f"(target < {STEER_TARGET_PCT:.0f}%) -> **{'PASS' if ok else 'FAIL'}**")
    return out


def render(report: dict[str, Any]) -> str:
    m, a, rows = report["machine"], report["args"], report["rows"]
    cuda = a["device"] == "cuda"
    steer = any("steered_ms_per_step" in r for r in rows)
    lines = [
        "# Engine speed",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_total_gib']:.0f} GiB"
        + (f", GPU {m['gpu']}" if cuda else "")
        + f"; torch {m['torch']} ({m['torch_threads']} threads), transformers {m['transformers']}, "
        f"python {m['python']}; device {a['device']}, {a['dtype']}.",
        f"Run: {report['started']} ({report['wall_s']:.0f} s); load average (1 min) at start "
        f"{report['loadavg_start']:.2f}, at end {report['loadavg_end']:.2f} (includes this benchmark's own "
        "workers). 'other load' = cores that OTHER processes kept busy (/proc/stat minus the worker's own CPU "
        "time): during the measurements each figure was taken from (best), and the worst over the row (max); "
        "'rounds' = measurement rounds (more than the repeats when contention forced retries).",
        f"Command: `{report['command']}`",
        "",
        f"Each figure is the best of at least {a['repeats']} rounds of {a['frames']} timed steps after {a['warmup']} "
        "warm-up steps of a fresh sampling session (reference defaults), random user codes, random "
        "weights (pipeline check). One step advances all B conversations by one 80 ms frame. "
        "frames/s = B x frames / s; RTF = ms per step / 80 ms (below 1 = faster than real time). "
        f"generate = transformers `MoshiForConditionalGeneration.generate` on the same weights in the same "
        f"process, per step = (t({a['gen_frames'][1]} new) - t({a['gen_frames'][0]} new)) / "
        f"{a['gen_frames'][1] - a['gen_frames'][0]}; it is NOT full duplex (it feeds blank user audio after "
        "its prompt), only a cost yardstick. Peak memory: "
        + ("torch.cuda.max_memory_allocated per phase (reset before our steps and before generate); "
           if cuda else "")
        + ("ru_maxrss of a fresh worker process per row, read after our steps, then after generate."
           if a["isolate"] == "config" else
           "ru_maxrss of one worker process per preset, read after our steps, then after generate: "
           "cumulative over that preset's rows."),
        "",
    ]
    head = ["preset", "batch", "ms/step", "frames/s", "RTF", "generate ms/step", "ours/generate"]
    if steer:
        head += ["steered ms/step", "steering overhead"]
    head += ["peak RSS ours MiB", "peak RSS +generate MiB"]
    if cuda:
        head += ["GPU weights MiB", "GPU peak ours MiB", "GPU peak generate MiB"]
    head += ["other load best / max (cores)", "rounds"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if "error" in r and "ms_per_step" not in r:
            lines.append(f"| {r['preset']} | {r['batch']} | error: {r['error']} |" + " |" * (len(head) - 3))
            continue
        cells = [r["preset"], str(r["batch"]), _f(r.get("ms_per_step"), "{:.2f}"), _f(r.get("frames_per_s")),
                 _f(r.get("rtf"), "{:.3f}"), _f(r.get("generate_ms_per_step"), "{:.2f}"),
                 _f(r.get("ratio_ours_to_generate"), "{:.2f}x")]
        if steer:
            cells += [_f(r.get("steered_ms_per_step"), "{:.2f}"), _f(r.get("steering_overhead_pct"), "{:+.1f}%")]
        cells += [_f(r.get("peak_rss_ours_mib"), "{:.0f}"), _f(r.get("peak_rss_with_generate_mib"), "{:.0f}")]
        if cuda:
            cells += [_f(r.get("cuda_weights_mib"), "{:.0f}"), _f(r.get("cuda_peak_ours_mib"), "{:.0f}"),
                      _f(r.get("cuda_peak_generate_mib"), "{:.0f}")]
        other = r.get("other_load_cores") or {}
        flag = " (contended)" if _contended(r, a["quiet_cores"]) else ""
        cells.append(f"{_f(other.get('best'), '{:.2f}')} / {_f(other.get('max'), '{:.2f}')}{flag}")
        cells.append(str(r.get("rounds", "-")))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Targets (issue):", ""]
    lines += verdicts(rows, a["device"], a["dtype"]) or ["- (no targets apply to this selection)"]
    lines += ["", "The comparison with the reference implementation (kyutai moshi's LMGen) is measured in one run "
              "by benchmarks/reference_speed.py; the full 7B must step in under 80 ms "
              "per frame at batch 1 on a GPU (bf16). Absolute figures depend on the other load shown; "
              "ratios (ours/generate, steering overhead) are measured in the same process and are robust to it."]
    contended = [r for r in rows if _contended(r, a["quiet_cores"])]
    if contended:
        lines += ["", f"WARNING: in {len(contended)} row(s) (marked contended) a best figure was taken while other "
                  f"processes kept {report['args']['quiet_cores']} cores or more busy: absolute figures there are "
                  "pessimistic, and so may be ratios; rerun on a quiet machine."]
    errors = [r for r in rows if "error" in r]
    if errors:
        lines += ["", "Errors:", ""] + [f"- {r['preset']} batch {r['batch']}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=None,
                   help="presets to time (default: tiny mid on CPU, full on CUDA)")
    p.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    p.add_argument("--frames", type=int, default=30, help="timed steps per round (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing (default 5)")
    p.add_argument("--repeats", type=int, default=5, help="rounds at least; the best is kept (default 5)")
    p.add_argument("--gen-frames", nargs=2, type=int, default=[4, 20], metavar=("N1", "N2"),
                   help="generate's two max_new_tokens values; per step = (t(N2)-t(N1))/(N2-N1) (default 4 20)")
    p.add_argument("--no-generate", action="store_true", help="skip the HF generate yardstick")
    p.add_argument("--steer-layer", type=int, default=None,
                   help="also time a steered step (additive vector at this layer, every frame)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: float32 on CPU, bfloat16 on CUDA")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads in the workers (default: 2 on CPU, torch's default on CUDA)")
    p.add_argument("--isolate", choices=["config", "preset"], default=None,
                   help="one worker process per (preset, batch) [CPU default: clean ru_maxrss per row] or per "
                        "preset [CUDA default: the 7B model is built once]")
    p.add_argument("--wait-quiet", type=float, default=60.0, metavar="S",
                   help="before each worker, wait up to S s for other processes to go quiet (default 60)")
    p.add_argument("--patience", type=float, default=60.0, metavar="S",
                   help="per row, up to S s of extra rounds while a best figure was taken under contention "
                        "(default 60)")
    p.add_argument("--quiet-cores", type=float, default=QUIET_CORES,
                   help="'quiet' = other processes keep fewer cores than this busy (default 0.25)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per worker process")
    p.add_argument("--out", type=Path, default=RESULTS / "engine_speed",
                   help="output path without suffix (.md and .json are written)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("engine_speed: --device cuda was asked for but CUDA is not available on this machine "
              f"(torch {torch.__version__}, cuda build {torch.version.cuda}); run it on a GPU machine, or "
              "use --device cpu.", file=sys.stderr)
        return 2
    from duplex_steer.engine import PRESETS

    presets = args.presets or (["full"] if args.device == "cuda" else ["tiny", "mid"])
    unknown = [p for p in presets if p not in PRESETS]
    if unknown:
        print(f"engine_speed: unknown preset(s) {unknown}; choose from {sorted(PRESETS)}", file=sys.stderr)
        return 2
    if args.gen_frames[0] >= args.gen_frames[1] or args.gen_frames[0] < 1:
        print("engine_speed: --gen-frames needs 1 <= N1 < N2", file=sys.stderr)
        return 2
    dtype = args.dtype or ("bfloat16" if args.device == "cuda" else "float32")
    threads = args.threads if args.threads is not None else (2 if args.device == "cpu" else 0)
    isolate = args.isolate or ("preset" if args.device == "cuda" else "config")
    base = {"device": args.device, "dtype": dtype, "threads": threads, "frames": args.frames,
            "warmup": args.warmup, "repeats": args.repeats, "gen_frames": args.gen_frames,
            "generate": not args.no_generate, "steer_layer": args.steer_layer,
            "quiet_cores": args.quiet_cores, "patience": args.patience}
    jobs = ([{**base, "preset": p, "batches": [b]} for p in presets for b in args.batches] if isolate == "config"
            else [{**base, "preset": p, "batches": list(args.batches)} for p in presets])

    started, t0, load_start = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter(), os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for job in jobs:
        quiet = wait_quiet(args.wait_quiet, args.quiet_cores)
        print(f"[engine_speed] {job['preset']} batch {job['batches']} (other processes: "
              f"{_f(quiet, '{:.2f}')} cores busy)", file=sys.stderr, flush=True)
        for row in run_worker_process(job, args.timeout):
            row["other_load_at_start_cores"] = quiet
            rows.append(row)
    report = {
        "started": started, "wall_s": time.perf_counter() - t0, "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "command": " ".join([".venv/bin/python", "benchmarks/engine_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine(args.device, threads or None),
        "args": {**base, "presets": presets, "batches": args.batches, "isolate": isolate},
        "targets": {"ratio_ours_to_generate_max": RATIO_TARGET, "gpu_full_batch1_ms_max": GPU_FULL_TARGET_MS,
                    "steering_overhead_pct_max": STEER_TARGET_PCT},
        "rows": rows,
    }
    text = render(report)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"[engine_speed] wrote {args.out.with_suffix('.md')} and .json", file=sys.stderr)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
