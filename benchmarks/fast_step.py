"""The fast (compiled, static) step against the eager step, in one process, in alternating rounds.

For each batch size: one eager session and one fast session (`model.session(fast=True)`) on the same
random-weight preset, both with a `--max-frames` KV window; the fast session's first step is timed
apart (the compile), then rounds alternate eager / fast, `--steps` steps each, so both see the same
machine load. Reports min and median ms/step, the speed-up, the compile time, and whether a greedy
run of `--check-frames` frames gives the same tokens in both modes. Random weights: a pipeline
measurement, not a claim about real models.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fast_step.py --preset mid --batches 1 8 --out benchmarks/results/fast_step

On CUDA the fast step uses CUDA graphs (torch.compile mode="reduce-overhead"): written, not yet run
on a GPU (`--device cuda`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench_common import git_head, machine_line, write_results  # noqa: E402 - sibling: this script runs as a file

from duplex_steer import load  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _round(session, user: torch.Tensor, steps: int, device: torch.device) -> float:
    """ms/step over `steps` steps (the session keeps going: its frames advance across rounds)."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        session.step(user[:, :, session.frame % user.shape[-1]])
    _sync(device)
    return (time.perf_counter() - start) * 1000 / steps


def measure(model, batch: int, args) -> dict:
    device = model.device
    user = torch.randint(0, model.spec.card, (batch, 8, 64), generator=torch.Generator().manual_seed(batch))
    # token check first: a short greedy run in both modes
    frames = user[:, :, : args.check_frames]
    eager_rec = model.session(batch_size=batch, greedy=True).run(frames)
    fast_session = model.session(batch_size=batch, greedy=True, fast=True, max_frames=args.max_frames)
    text = torch.full_like(eager_rec.text, -1)
    audio = torch.full_like(eager_rec.audio, -1)
    for t in range(frames.shape[-1]):
        start = time.perf_counter()
        out = fast_session.step(frames[:, :, t])
        _sync(device)
        if t == 0:
            compile_s = time.perf_counter() - start  # the first step compiles (or reuses the compiled step)
        if out is not None:
            text[:, t], audio[:, :, t] = out.text.cpu(), out.audio.cpu()
    same = bool(torch.equal(eager_rec.text, text) and torch.equal(eager_rec.audio, audio))
    # timing: sampled sessions (the reference's defaults), alternating rounds after a warm-up round each
    eager = model.session(batch_size=batch, seed=0, max_frames=args.max_frames)
    fast = model.session(batch_size=batch, seed=0, fast=True, max_frames=args.max_frames)
    _round(eager, user, 3, device)
    _round(fast, user, 3, device)
    times: dict[str, list[float]] = {"eager": [], "fast": []}
    for _ in range(args.rounds):
        times["eager"].append(_round(eager, user, args.steps, device))
        times["fast"].append(_round(fast, user, args.steps, device))
    row = {"batch": batch, "compile_s": round(compile_s, 1), "token_exact": same}
    for mode, values in times.items():
        row[f"{mode}_min_ms"] = round(min(values), 2)
        row[f"{mode}_median_ms"] = round(statistics.median(values), 2)
    row["speedup_median"] = round(row["eager_median_ms"] / row["fast_median_ms"], 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="mid")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per round")
    parser.add_argument("--max-frames", type=int, default=400, help="KV window of both sessions (a 32 s talk)")
    parser.add_argument("--check-frames", type=int, default=12)
    parser.add_argument("--out", type=Path, default=None,
                        help="write OUT.md and OUT.json (e.g. benchmarks/results/fast_step)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load(args.preset, device=args.device)
    started, load_before = time.strftime("%Y-%m-%d %H:%M"), os.getloadavg()[0]
    print(f"{model.label}; device {args.device}, {args.threads} thread(s); load average before "
          f"{load_before:.2f}", flush=True)
    rows = []
    for batch in args.batches:
        row = measure(model, batch, args)
        row["load_average_1min_after"] = round(os.getloadavg()[0], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = ["| batch | eager ms/step (min / median) | fast ms/step (min / median) | speed-up (median) | compile s | "
             "token-exact |", "|---|---|---|---|---|---|"]
    table += [f"| {r['batch']} | {r['eager_min_ms']} / {r['eager_median_ms']} | {r['fast_min_ms']} / "
              f"{r['fast_median_ms']} | x{r['speedup_median']} | {r['compile_s']} | {r['token_exact']} |" for r in rows]
    text = "\n".join([
        f"# fast_step.py: eager vs fast (compiled) step, {args.preset} preset, {args.device}", "",
        f"Random-weight `{args.preset}`: a pipeline measurement, not a claim about real models. One process, "
        f"{args.threads} thread(s), KV window {args.max_frames} frames, sampled sessions (reference defaults), "
        f"{args.rounds} alternating rounds of {args.steps} steps after warm-up; token check: {args.check_frames} "
        f"greedy frames in both modes.",
        f"Machine: {machine_line()}; run {started}; load average {load_before:.2f} before, "
        f"{', '.join(str(r['load_average_1min_after']) for r in rows)} after each row. Code: {git_head()}; "
        f"torch {torch.__version__}.", "",
        f"    OMP_NUM_THREADS={args.threads} .venv/bin/python benchmarks/fast_step.py --preset {args.preset} "
        f"--batches {' '.join(map(str, args.batches))}", "", *table, ""])
    if args.out is not None:
        write_results(args.out.with_suffix(""), {"preset": args.preset, "device": args.device,
                                                 "threads": args.threads, "rows": rows}, text)
    else:
        print(text)

if __name__ == "__main__":
    main()
