"""The README's main job (`zbb main`) timed as a whole command: one process against the default, and
optionally the code of an earlier commit, in alternating rounds, one command at a time.

Each round runs every variant once into a fresh folder and times it from spawn to exit; at the end the
records of every run are compared (they must be identical: the processes split whole items, whose noise
is keyed to the item). Run it on a quiet machine; its figures go into the README's speed section.

    .venv/bin/python benchmarks/main_job.py --baseline f2f37f4 --rounds 1

`--baseline COMMIT` checks that commit out into a temporary git worktree and runs `python -m zbb.cli main`
there with this checkout's virtual environment (the committed organism of that commit).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _records(folder: Path) -> dict:
    out = {}
    for f in sorted(folder.glob("results*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            out[(r["id"], r["condition"], r["repetition"])] = r
    return out


def _timed(cmd: list[str], cwd: Path, log: Path) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    start = time.perf_counter()
    with log.open("w") as fh:
        subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", default=None, metavar="COMMIT", help="also time this commit's code")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/main_job.json"))
    args = parser.parse_args()

    python = str(REPO / ".venv/bin/python")
    scratch = Path(tempfile.mkdtemp(prefix="main-job-"))
    variants: list[tuple[str, Path, list[str]]] = []
    if args.baseline:
        tree = scratch / "baseline-tree"
        subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), args.baseline], cwd=REPO, check=True)
        variants.append((f"before (commit {args.baseline}), its default", tree, [python, "-m", "zbb.cli", "main"]))
    variants.append(("this code, 1 process (--workers 1)", REPO, [python, "-m", "zbb.cli", "main", "--workers", "1"]))
    variants.append(("this code, the default processes", REPO, [python, "-m", "zbb.cli", "main"]))
    times: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    records: dict[str, dict] = {}
    load = [os.getloadavg()[0]]
    try:
        for k in range(args.rounds):
            for i, (name, cwd, cmd) in enumerate(variants):
                folder = scratch / f"run-{k}-{i}"
                print(f"round {k + 1}: {name}", flush=True)
                times[name].append(_timed([*cmd, "--out", str(folder)], cwd, scratch / f"run-{k}-{i}.log"))
                records.setdefault(name, _records(folder))
                print(f"  {times[name][-1]:.1f} s", flush=True)
        load.append(os.getloadavg()[0])
    finally:
        if args.baseline:
            subprocess.run(["git", "worktree", "remove", "--force", str(scratch / "baseline-tree")], cwd=REPO)
    first = next(iter(records.values()))
    identical = all(r == first for r in records.values())
    base = statistics.median(times[variants[0][0]])
    rows = [{"variant": name, "seconds": ts, "median_s": statistics.median(ts),
             "ratio": statistics.median(ts) / base} for name, ts in times.items()]
    lines = ["# main_job.py: `zbb main` (the organism, 100 items x 8 conditions) as a whole command", "",
             f"{args.rounds} alternating round(s), one command at a time; {os.cpu_count()} cores; 1-minute load average "
             f"{load[0]:.2f} before, {load[-1]:.2f} after; {time.strftime('%Y-%m-%d %H:%M')}.", "",
             f"    .venv/bin/python benchmarks/main_job.py{' --baseline ' + args.baseline if args.baseline else ''} "
             f"--rounds {args.rounds}", "",
             "| variant | wall time per round | median | of the first row's |", "|---|---|---|---|"]
    for r in rows:
        each = ", ".join(f"{int(t // 60)} min {t % 60:02.0f} s" for t in r["seconds"])
        lines.append(f"| {r['variant']} | {each} | {r['median_s']:.0f} s | {r['ratio']:.2f}x |")
    lines += ["", f"Records identical in every run: **{'yes' if identical else 'NO'}** ({len(first)} records)."]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.write_text(json.dumps({"rows": rows, "identical_records": identical, "load": load}, indent=1))
    out.with_suffix(".md").write_text(text)
    shutil.rmtree(scratch, ignore_errors=True)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
