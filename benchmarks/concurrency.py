"""Concurrency: do N toolkit processes side by side take about N times as long as one, or collapse?

For each thread setting, one toolkit command runs alone, then two identical copies run at once; the
report gives each wall time and the ratio (slowest of the pair) / (alone). On a machine with C cores, two
processes that share them cleanly take at most about 2x one alone (less when one process cannot use
all the cores); far above 2x is the collapse issue 14 describes (OpenMP workers of both processes
spinning on the same cores). Settings:
- `policy`: no `--threads`: duplex_steer.threads chooses (1 thread for the organism; OMP_WAIT_POLICY=PASSIVE);
- `threads 2`: `--threads 2` (still passive waiting);
- `threads 2, spin`: `--threads 2` with OMP_WAIT_POLICY=ACTIVE in the environment (workers spin while
  waiting; close to torch's default before the policy).
The command (default `duplex-steer fit-vector --model organism --dialogues 4`) writes into a temporary folder.

    .venv/bin/python benchmarks/concurrency.py                  # -> benchmarks/results/concurrency.{md,json}
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent
SETTINGS = {  # name -> (extra arguments, extra environment)
    "policy": ([], {}),
    "threads 2": (["--threads", "2"], {}),
    "threads 2, spin": (["--threads", "2"], {"OMP_WAIT_POLICY": "ACTIVE"}),
}


def command(args: argparse.Namespace, out: Path, extra: list[str]) -> list[str]:
    return [str(BIN / "duplex-steer"), "fit-vector", "--model", args.model, "--dialogues", str(args.dialogues),
            "--out", str(out), *extra]


def run_at_once(cmds: list[list[str]], env: dict[str, str]) -> list[float]:
    """Start all commands together; each one's wall time in seconds."""
    logs = [tempfile.TemporaryFile(mode="w+") for _ in cmds]  # files, not pipes: progress bars cannot block
    start = time.perf_counter()
    procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=str(REPO))
             for c, log in zip(cmds, logs, strict=True)]
    walls: list[float | None] = [None] * len(procs)
    while any(w is None for w in walls):
        for i, p in enumerate(procs):
            if walls[i] is None and p.poll() is not None:
                walls[i] = time.perf_counter() - start
                if p.returncode != 0:
                    logs[i].seek(0)
                    raise RuntimeError(f"{' '.join(cmds[i])} failed ({p.returncode}): {logs[i].read()[-2000:]}")
        time.sleep(0.05)
    for log in logs:
        log.close()
    return [float(w) for w in walls]


def measure(name: str, args: argparse.Namespace, base_env: dict[str, str], tmp: Path) -> dict[str, Any]:
    extra, env_extra = SETTINGS[name]
    env = {**base_env, **env_extra}
    load_alone = os.getloadavg()[0]
    alone = run_at_once([command(args, tmp / f"{name}-alone.safetensors", extra)], env)[0]
    load_pair = os.getloadavg()[0]
    pair = run_at_once([command(args, tmp / f"{name}-{i}.safetensors", extra) for i in range(2)], env)
    row = {"setting": name, "extra_args": extra, "extra_env": env_extra, "alone_s": alone, "pair_s": pair,
           "ratio": max(pair) / alone, "loadavg_1min_before": {"alone": load_alone, "pair": load_pair}}
    print(f"[concurrency] {name}: alone {alone:.1f} s, two at once {pair[0]:.1f} / {pair[1]:.1f} s "
          f"(x{row['ratio']:.2f}; load {load_alone:.2f} / {load_pair:.2f})", file=sys.stderr, flush=True)
    return row


def render(report: dict[str, Any]) -> str:
    lines = ["# Concurrency: one process alone, then two at once", "",
             f"Run: {report['started']} ({report['wall_s']:.0f} s); machine: {report['machine']}; code at {report['git']}.",
             f"Command (each process): `{report['process']}`; OMP_NUM_THREADS / MKL_NUM_THREADS unset.",
             f"Reproduce: `{report['command']}`", "",
             "| setting | threads | alone s | two at once s | slowest / alone | 1-min load before (alone / pair) |",
             "|---|---|---|---|---|---|"]
    for r in report["rows"]:
        threads = r["extra_args"][1] if r["extra_args"] else "policy (1 for the organism)"
        wait = r["extra_env"].get("OMP_WAIT_POLICY", "PASSIVE")
        lb = r["loadavg_1min_before"]
        lines.append(f"| {r['setting']} | {threads}, {wait.lower()} wait | {r['alone_s']:.1f} | "
                     f"{r['pair_s'][0]:.1f} / {r['pair_s'][1]:.1f} | {r['ratio']:.2f}x | "
                     f"{lb['alone']:.2f} / {lb['pair']:.2f} |")
    lines += ["", "Two processes sharing the cores cleanly take at most about 2x one alone (the target: N processes "
              "take at most about N times as long as one); well above 2x is a collapse. Wall times include "
              "start-up (importing torch and transformers, loading the model). Other processes on the machine "
              "add to every figure; the load average before each measurement is shown."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="organism")
    p.add_argument("--dialogues", type=int, default=4)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--out", type=Path, default=RESULTS / "concurrency", help="output path without suffix")
    args = p.parse_args(argv)
    base_env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
    base_env["HF_HUB_OFFLINE"] = "1"
    started, t0 = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="concurrency_") as tmp:
        rows = [measure(name, args, base_env, Path(tmp)) for name in args.settings]
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_common import git_head, machine_line, write_results

    report = {"started": started, "wall_s": time.perf_counter() - t0, "machine": machine_line(), "git": git_head(),
              "process": " ".join(["duplex-steer", *command(args, Path("OUT"), [])[1:]]),
              "command": " ".join([".venv/bin/python", "benchmarks/concurrency.py", *(argv or sys.argv[1:])]),
              "rows": rows}
    write_results(args.out, report, render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
