"""OpenMP's wait policy for a larger model on the CPU: alone, and two processes at once.

The toolkit's thread policy (`duplex_steer.threads`) makes idle OpenMP workers sleep (`OMP_WAIT_POLICY=
PASSIVE`) so that processes side by side do not collapse. This measures what that costs a model large
enough to get more than one thread: random `mid`, 2 threads, the eager step at batch 1 and 8 (best of 3
runs of 35 steps after 5 warm-up steps), under passive waiting, a short spin (`GOMP_SPINCOUNT=10000`) and
OpenMP's default spin, first one process alone, then two identical processes started together.
Random weights: speed only. Run it on a quiet machine:

    .venv/bin/python benchmarks/wait_policy.py --out benchmarks/results/wait_policy
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_common import git_head, machine_line, write_results  # sibling: this script runs as a file

WORKER = """
import json, sys, time, torch
torch.set_num_threads(2)
import duplex_steer
model = duplex_steer.load("mid", device="cpu")
out = {}
for batch in (1, 8):
    user = torch.randint(0, 2048, (batch, 8, 40), generator=torch.Generator().manual_seed(0))
    best = float("inf")
    for _ in range(3):
        session = model.session(batch_size=batch, seed=0, max_frames=40)
        for i in range(5):
            session.step(user[:, :, i])
        start = time.perf_counter()
        for i in range(5, 40):
            session.step(user[:, :, i])
        best = min(best, (time.perf_counter() - start) / 35 * 1000)
    out[batch] = round(best, 1)
print(json.dumps(out))
"""
POLICIES = {"passive (the toolkit's)": {"OMP_WAIT_POLICY": "PASSIVE"},
            "short spin (GOMP_SPINCOUNT=10000)": {"GOMP_SPINCOUNT": "10000"},
            "OpenMP's default spin": {}}


def run_together(extra: dict[str, str], copies: int) -> list[dict[str, float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    env.update(extra, HF_HUB_OFFLINE="1")
    procs = [subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(copies)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / "wait_policy")
    args = parser.parse_args()
    started, load = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]
    rows = []
    for name, extra in POLICIES.items():
        alone = run_together(extra, 1)[0]
        pair = run_together(extra, 2)
        rows.append({"policy": name, "env": extra, "alone_ms": alone, "together_ms": pair})
    lines = ["# wait_policy.py: OpenMP's wait policy, mid on 2 threads, alone and two processes at once", "",
             f"Machine: {machine_line()}; run {started}, 1-minute load average {load:.2f} before; code {git_head()}.",
             "Best of 3 runs of 35 eager steps (ms per step); random weights: speed only.", "",
             "    .venv/bin/python benchmarks/wait_policy.py --out benchmarks/results/wait_policy", "",
             "| wait policy | alone, batch 1 | alone, batch 8 | two at once, batch 1 (each) | two at once, batch 8 (each) |",
             "|---|---|---|---|---|"]
    for r in rows:
        b1 = " / ".join(f"{p['1']:.1f}" for p in r["together_ms"])
        b8 = " / ".join(f"{p['8']:.1f}" for p in r["together_ms"])
        lines.append(f"| {r['policy']} | {r['alone_ms']['1']:.1f} | {r['alone_ms']['8']:.1f} | {b1} | {b8} |")
    write_results(args.out, {"started": started, "load_before": load, "rows": rows}, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
