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
additive vector at layer L on every frame; `--probe-all-layers` with every layer's state captured each
frame, as online probes read it).

The timing, contention and memory helpers live in benchmarks/engine_timing.py, the report (targets,
verdicts, tables) in benchmarks/engine_speed_report.py; this script runs the workers and writes the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_common import cpu_name  # noqa: E402
from engine_speed_report import GPU_FULL_TARGET_MS, RATIO_TARGET, STEER_TARGET_PCT, fmt, render  # noqa: E402
from engine_timing import (  # noqa: E402 - siblings: this script runs as a file (benchmarks/ on sys.path)
    QUIET_CORES,
    HookFactory,
    Timings,
    additive_steering,
    is_clean,
    other_load,
    peak_rss_mib,
    state_capture,
    sync_device,
    time_generate,
    time_steps,
)

RESULTS = REPO / "benchmarks" / "results"


def measure_row(model, batch: int, cfg: dict[str, Any], steer: HookFactory | None,
                probe: HookFactory | None = None) -> dict[str, Any]:
    """All timings of one (preset, batch) row.

    Rounds interleave our step, the steered step, the probed step and generate, so all see the same load. After
    `repeats` rounds, more rounds run (waiting for a quiet moment first) while the best of any
    quantity was taken under contention, until `patience` seconds have passed. Round 0 times our
    step before generate has ever run, for a clean peak RSS of ours.
    """
    import torch

    device = model.device
    n1, n2 = cfg["gen_frames"]
    thr = cfg["quiet_cores"]
    row: dict[str, Any] = {"batch": batch}
    ours, steered, probed, g1, g2 = Timings(), Timings(), Timings(), Timings(), Timings()
    variants = [(ours, None), *((t, f) for t, f in ((steered, steer), (probed, probe)) if f is not None)]
    by_seconds = lambda r: r["seconds"]  # noqa: E731
    by_value = lambda r: r  # noqa: E731
    deadline = time.monotonic() + cfg["patience"]
    rounds = 0
    try:
        while True:
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
            if all(is_clean(t, thr) for t in (ours, steered, probed, g1, g2)) or time.monotonic() >= deadline:
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
    best_others = [t.best_others() for t in (ours, steered, probed, g1, g2) if t.values]
    best_others = [o for o in best_others if o is not None]
    all_others = [o for t in (ours, steered, probed, g1, g2) for o in t.others if o is not None]
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
    if probed.values and ours.values:
        pbest = probed.best()["ms_per_step"]
        row["probed_ms_per_step"] = pbest
        row["probe_overhead_pct"] = 100.0 * (pbest / row["ms_per_step"] - 1.0)
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
    sync_device(device)
    load_s = time.perf_counter() - t0
    rss_loaded = peak_rss_mib()
    cuda_loaded = torch.cuda.memory_allocated(device) / 2**20 if device.type == "cuda" else None
    steer = additive_steering(cfg["steer_layer"]) if cfg["steer_layer"] is not None else None
    probe = state_capture() if cfg.get("probe_all_layers") else None
    rows = []
    for batch in cfg["batches"]:
        row = {"preset": cfg["preset"], "load_s": load_s, "rss_after_load_mib": rss_loaded,
               "cuda_weights_mib": cuda_loaded}
        row.update(measure_row(model, batch, cfg, steer, probe))
        rows.append(row)
    return rows


# --- driver -------------------------------------------------------------------------------------------
def machine(device: str, threads: int | None) -> dict[str, Any]:
    import torch
    import transformers

    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": threads or torch.get_num_threads(),
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


def wait_quiet(max_wait: float, threshold: float) -> float | None:
    """Wait (up to max_wait s) until other processes keep fewer than `threshold` cores busy."""
    deadline = time.monotonic() + max_wait
    while True:
        busy = other_load(1.0)
        if busy is None or busy < threshold or time.monotonic() >= deadline:
            return busy
        time.sleep(4.0)


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
    p.add_argument("--probe-all-layers", action="store_true",
                   help="also time a probed step (every layer's state captured each frame, as online probes read it)")
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
            "probe_all_layers": args.probe_all_layers,
            "quiet_cores": args.quiet_cores, "patience": args.patience}
    jobs = ([{**base, "preset": p, "batches": [b]} for p in presets for b in args.batches] if isolate == "config"
            else [{**base, "preset": p, "batches": list(args.batches)} for p in presets])

    started, t0, load_start = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter(), os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for job in jobs:
        quiet = wait_quiet(args.wait_quiet, args.quiet_cores)
        print(f"[engine_speed] {job['preset']} batch {job['batches']} (other processes: "
              f"{fmt(quiet, '{:.2f}')} cores busy)", file=sys.stderr, flush=True)
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
