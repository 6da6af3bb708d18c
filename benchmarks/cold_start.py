"""Cold start: how long a fresh process takes to show `--help`, and to have the organism ready to step.

Each figure is the median (and min / max) of `--runs` fresh processes, run one after another:
- `duplex-steer --help`, `duplex-steer steer --help`, `zbb --help`, `zbb run --help`: the console scripts'
  wall time from exec to exit (issue 14 target: under 1 s);
- organism ready to step: a fresh `python -c` that applies the toolkit's thread policy as every command
  does first (`duplex_steer.threads`: passive OpenMP wait, 1 thread for the organism), imports
  duplex_steer, loads the organism, opens a session and runs its first step, timed from the parent's spawn
  to the end of that step (target: under 5 s); the worker also reports where its time went (importing
  torch, the rest of the load, the first step);
- the same without the thread policy (a bare library call on torch's defaults: one spinning OpenMP worker
  per core, which on a loaded 2-core machine can cost ~0.5 s per organism step), for information;
- `python -c "import torch"` alone, the floor every torch process pays on this machine.
For the `python -c` rows the time from ready to the process's exit is shown apart ("ready -> exit"): the
interpreter's teardown (its garbage collector's passes over the objects torch and transformers leave)
is not part of being ready, but a user waits for it when a command ends.
Figures depend on the machine's load: the 1-minute load average is recorded with each row.

    .venv/bin/python benchmarks/cold_start.py                 # 5 runs each -> benchmarks/results/cold_start.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent
HELP_TARGET_S, READY_TARGET_S = 1.0, 5.0

READY_CODE = """
import time
t0 = time.perf_counter()
#THREADS
import torch
t1 = time.perf_counter()
import duplex_steer
model = duplex_steer.load("organism")
t2 = time.perf_counter()
session = model.session(batch_size=1, seed=0)
session.step(torch.zeros(1, model.spec.num_audio_codebooks, dtype=torch.long))
t3 = time.perf_counter()
ready_at = time.time()
import json, sys
print(json.dumps({"ready_at": ready_at, "import_torch_s": t1 - t0, "load_s": t2 - t1, "first_step_s": t3 - t2,
                  "transformers_imported": "transformers" in sys.modules, "librosa_imported": "librosa" in sys.modules,
                  "dynamo_imported": "torch._dynamo" in sys.modules}))
"""
# What every toolkit command does first (duplex_steer.threads): idle OpenMP workers sleep, 1 thread for the
# organism. A bare library call skips it and runs on torch's defaults (one spinning worker per core).
COMMAND_THREADS = ("from duplex_steer.threads import configure_threads, passive_wait\n"
                   "passive_wait()\nconfigure_threads(model_size_hint='organism')\n")
TORCH_CODE = "import time\nimport torch\nimport json\nprint(json.dumps({'ready_at': time.time()}))\n"


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str, float]:
    """(wall seconds from spawn to exit, stdout, the spawn's epoch time for the worker's `ready_at`)."""
    spawned, start = time.time(), time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    return wall, out.stdout, spawned


def measure(name: str, cmd: list[str], runs: int, env: dict[str, str], target: float | None) -> dict[str, Any]:
    walls, readies, details, loads = [], [], [], []
    for _ in range(runs):
        loads.append(os.getloadavg()[0])
        wall, stdout, spawned = timed(cmd, env)
        walls.append(wall)
        if stdout.strip().startswith("{"):
            details.append(json.loads(stdout.strip().splitlines()[-1]))
            readies.append(details[-1].pop("ready_at") - spawned)
    times = readies or walls  # a worker that reports when it is ready is timed to that point
    row = {"name": name, "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd))
           if len(" ".join(cmd)) < 200 else name, "timed_to": "ready" if readies else "exit", "runs_s": times,
           "median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
           "wall_to_exit_median_s": statistics.median(walls), "loadavg_1min": [min(loads), max(loads)],
           "target_s": target}
    if readies:
        row["exit_after_ready_median_s"] = statistics.median(w - r for w, r in zip(walls, readies, strict=True))
    if details and details[0]:
        row["parts_median_s"] = {k: statistics.median(d[k] for d in details)
                                 for k in details[0] if isinstance(details[0][k], float)}
        row["imported"] = {k: details[0][k] for k in details[0] if isinstance(details[0][k], bool)}
    print(f"[cold_start] {name}: median {row['median_s']:.2f} s to {row['timed_to']} "
          f"(load {min(loads):.2f}-{max(loads):.2f})",
          file=sys.stderr, flush=True)
    return row


def render(report: dict[str, Any]) -> str:
    lines = ["# Cold start", "",
             f"Run: {report['started']}; {report['runs']} fresh processes per row, one after another; "
             f"OMP_NUM_THREADS unset (the toolkit's own policy applies). Machine: {report['machine']}.",
             f"Command: `{report['command']}`", "",
             "The `python -c` rows are timed from the spawn to ready (the worker's report); the time from ready "
             "to the process's exit is the next column. The console scripts are timed to their exit.", "",
             "| what | median s | min / max s | ready -> exit, median s | 1-min load average | target |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        target = r.get("target_s")
        verdict = "" if target is None else f"< {target:g} s: **{'PASS' if r['median_s'] < target else 'FAIL'}**"
        lo, hi = r["loadavg_1min"]
        after = f"+{r['exit_after_ready_median_s']:.2f}" if "exit_after_ready_median_s" in r else "(timed to exit)"
        lines.append(f"| {r['name']} | {r['median_s']:.2f} | {r['min_s']:.2f} / {r['max_s']:.2f} | {after} | "
                     f"{lo:.2f}-{hi:.2f} | {verdict} |")
    for r in report["rows"]:
        if "parts_median_s" in r:
            parts = ", ".join(f"{k.removesuffix('_s').replace('_', ' ')} {v:.2f} s" for k, v in r["parts_median_s"].items())
            imported = r["imported"]
            said = ", ".join(f"{name} {'imported' if imported.get(key) else 'not imported'}" for name, key in
                             (("transformers", "transformers_imported"), ("torch._dynamo", "dynamo_imported"),
                              ("librosa", "librosa_imported")))
            lines += ["", f"{r['name']}, where the time goes (medians): {parts}; {said}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="fresh processes per row (default 5)")
    p.add_argument("--out", type=Path, default=RESULTS / "cold_start", help="output path without suffix")
    args = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["HF_HUB_OFFLINE"] = "1"
    py = sys.executable
    rows_spec = [
        ("duplex-steer --help", [str(BIN / "duplex-steer"), "--help"], HELP_TARGET_S),
        ("duplex-steer steer --help", [str(BIN / "duplex-steer"), "steer", "--help"], HELP_TARGET_S),
        ("zbb --help", [str(BIN / "zbb"), "--help"], HELP_TARGET_S),
        ("zbb run --help", [str(BIN / "zbb"), "run", "--help"], HELP_TARGET_S),
        ("import torch (floor)", [py, "-c", TORCH_CODE], None),
        ("organism ready to step", [py, "-c", READY_CODE.replace("#THREADS\n", COMMAND_THREADS)], READY_TARGET_S),
        ("organism ready to step, torch's default threads", [py, "-c", READY_CODE], None),
    ]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    rows = [measure(name, cmd, args.runs, env, target) for name, cmd, target in rows_spec]
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_common import git_head, machine_line, write_results

    report = {"started": started, "runs": args.runs, "machine": machine_line(), "git": git_head(),
              "command": " ".join([".venv/bin/python", "benchmarks/cold_start.py", *(argv or sys.argv[1:])]),
              "rows": rows}
    write_results(args.out, report, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
