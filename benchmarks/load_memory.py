"""Peak memory and time of loading a native checkpoint (the 7B Moshi replica) with `duplex_steer.load`.

Each load runs in a fresh worker process; the parent samples the worker's resident memory every 50 ms
(/proc/PID/status VmRSS) and reads its high-water mark (VmHWM) at the end, so the figure is what the
operating system saw, page-cache-backed memory maps included. The target (issue 11): peak resident memory
at most 1.25x the checkpoint's bytes (LM + Mimi files) when loading to CPU in bfloat16.

    .venv/bin/python scripts/make_replica.py --kind moshi --size full --out /work/replicas/moshiko-full
    .venv/bin/python benchmarks/load_memory.py /work/replicas/moshiko-full

Results go to benchmarks/results/load_memory.{md,json}. Random weights: the figures are about the
loading path only. Run on a quiet machine with the memory free (the 7B needs about 20 GB).
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

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 1.25

WORKER = r"""
import sys, time, json, torch
t0 = time.perf_counter()
import duplex_steer
t1 = time.perf_counter()
model = duplex_steer.load(sys.argv[1], device="cpu", dtype=getattr(torch, sys.argv[2]))
t2 = time.perf_counter()
params = sum(p.numel() * p.element_size() for p in model.hf.parameters())
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "param_bytes": params, "dep_q": model.spec.dep_q,
                  "layers": model.spec.num_layers, "dim": model.spec.dim}), flush=True)
"""


def _status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def measure(folder: Path, dtype: str) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(folder), dtype], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    start, peak, hwm, trace = time.perf_counter(), 0, 0, []
    while proc.poll() is None:
        rss = _status_kib(proc.pid, "VmRSS")
        hwm = max(hwm, _status_kib(proc.pid, "VmHWM"))
        peak = max(peak, rss)
        trace.append((round(time.perf_counter() - start, 2), rss))
        time.sleep(0.05)
    out = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        raise SystemExit(f"error: the worker failed (exit {proc.returncode}); see its output above")
    result = json.loads(out.strip().splitlines()[-1])
    files = sum(f.stat().st_size for f in folder.iterdir() if f.suffix == ".safetensors")
    peak_bytes = max(peak, hwm) * 1024
    return {**result, "checkpoint_bytes": files, "peak_rss_bytes": peak_bytes, "ratio": peak_bytes / files,
            "wall_s": time.perf_counter() - start, "trace_kib": trace[:: max(1, len(trace) // 200)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--out", type=Path, default=RESULTS / "load_memory")
    args = ap.parse_args()
    if not args.folder.is_dir():
        raise SystemExit(f"error: {args.folder} is not a folder; write a replica with scripts/make_replica.py")
    r = measure(args.folder, args.dtype)
    verdict = "PASS" if r["ratio"] <= TARGET_RATIO else "FAIL"
    gb = 1e9
    table = "\n".join([
        f"# Loading {args.folder.name} to CPU in {args.dtype} ({platform.machine()}, {os.cpu_count()} cores)",
        "",
        "| checkpoint (GB) | parameters in memory (GB) | peak RSS (GB) | peak / checkpoint | import (s) | load (s) |",
        "|---|---|---|---|---|---|",
        f"| {r['checkpoint_bytes'] / gb:.2f} | {r['param_bytes'] / gb:.2f} | {r['peak_rss_bytes'] / gb:.2f} | "
        f"{r['ratio']:.3f}x | {r['import_s']:.1f} | {r['load_s']:.1f} |",
        "",
        f"Target: peak at most {TARGET_RATIO}x the checkpoint's bytes: **{verdict}**. Model: {r['layers']} layers x "
        f"{r['dim']}, dep_q {r['dep_q']}. Random weights (a replica): the loading path only.",
    ])
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
