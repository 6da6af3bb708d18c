"""Reference speed: our `DuplexSession.step` against the reference's `LMGen.step`, measured in one run.

The reference is kyutai's `moshi` 0.2.13 (LMGen, the implementation Moshi and PersonaPlex ship with), in
its own environment outside the repository (`bash scripts/setup_reference.sh`: moshi 0.2.13 on torch
2.9.1, by default in /work/refenv-2.9 or $DUPLEX_STEER_REFENV). It is never a dependency of duplex-steer.

One random checkpoint of the `mid` preset is written in kyutai's native format (released tensor names,
attention projections fused as `in_proj_weight`; float32). Two long-lived worker processes load it:
ours (`duplex_steer.load`, this environment) and the reference (`moshi.models.loaders.get_moshi_lm`, the
reference environment). The parent then times them in alternating rounds (ours first in even rounds,
the reference first in odd ones), one at a time while the other waits idle, for each batch size:
a fresh streaming state, `--warmup` untimed steps, `--frames` timed steps, random user codes (same seed),
sampling at the reference's defaults on both sides (text temperature 0.7 / top-k 25, audio 0.8 / 250),
the same thread count and environment. It reports ms per step (one 80 ms frame for all B conversations)
with min / median over rounds, the speedup reference / ours (of the medians, of the minima, and the
median of the per-round ratios) and ours / reference, and the 1-minute load average per round.
Random weights: this measures the pipeline's speed, never model quality.

    bash scripts/setup_reference.sh                        # once: the reference environment (~7 GB, 3 min)
    .venv/bin/python benchmarks/reference_speed.py         # mid, batch 1 and 8, 2 threads, 7 rounds

With `bash scripts/setup_reference.sh --no-deps` (moshi's code only) the reference worker runs on THIS
environment's torch; the results then say "reference code on torch <ours>" instead of its own torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import git_head, machine_line, write_results  # sibling: this script runs as a file

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DEFAULT_REFENV = "/work/refenv-2.9"
TARGET_SPEEDUP = {1: 1.5, 8: 2.0}  # issue 14: ours at least 1.5x the reference at batch 1, 2x at batch 8
REFERENCE_SAMPLING = {"temp_text": 0.7, "top_k_text": 25, "temp": 0.8, "top_k": 250}


# --- workers (run in their own processes; only the standard library is imported at module level) ------
def user_codes(torch, batch: int, codebooks: int, card: int, frames: int, seed: int):
    """Random user audio codes [batch, codebooks, frames] (same seed, same values in both workers)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, card, (batch, codebooks, frames), generator=gen)


class OursStepper:
    """duplex-steer's streaming session on the checkpoint."""

    def __init__(self, folder: Path):
        import torch

        from duplex_steer.engine.loading import load_engine_model

        self.torch = torch
        self.model = load_engine_model(folder, device="cpu", dtype=torch.float32, lm_only=True)
        self.codebooks, self.card = self.model.spec.num_audio_codebooks, self.model.spec.card

    def time(self, batch: int, frames: int, warmup: int, seed: int) -> float:
        codes = user_codes(self.torch, batch, self.codebooks, self.card, warmup + frames, seed)
        session = self.model.session(batch_size=batch, seed=seed)  # sampling: the reference's defaults
        with self.torch.inference_mode():
            for t in range(warmup):
                session.step(codes[:, :, t])
            start = time.perf_counter()
            for t in range(warmup, warmup + frames):
                session.step(codes[:, :, t])
            return time.perf_counter() - start


class ReferenceStepper:
    """kyutai moshi's LMGen on the checkpoint, loaded with its own loader."""

    def __init__(self, folder: Path):
        import torch
        from moshi.models import LMGen, loaders

        self.torch, self.LMGen = torch, LMGen
        config = json.loads((folder / "config.json").read_text())
        kwargs = {**loaders._lm_kwargs, **config}  # the loader's defaults, the checkpoint's architecture
        self.lm = loaders.get_moshi_lm(str(folder / "model.safetensors"), lm_kwargs=kwargs, device="cpu",
                                       dtype=torch.float32).eval()
        self.codebooks, self.card = self.lm.n_q - self.lm.dep_q, self.lm.card

    def time(self, batch: int, frames: int, warmup: int, seed: int) -> float:
        codes = user_codes(self.torch, batch, self.codebooks, self.card, warmup + frames, seed)
        self.torch.manual_seed(seed)
        gen = self.LMGen(self.lm, **REFERENCE_SAMPLING)
        with self.torch.inference_mode(), gen.streaming(batch):
            for t in range(warmup):
                gen.step(codes[:, :, t : t + 1])
            start = time.perf_counter()
            for t in range(warmup, warmup + frames):
                gen.step(codes[:, :, t : t + 1])
            return time.perf_counter() - start


def worker(kind: str, folder: Path, threads: int, extra_path: str | None) -> int:
    """Load one side, say READY with its versions, then answer timing requests (JSON lines) on stdin."""
    if extra_path:  # --no-deps reference environment: torch comes from the project's environment
        sys.path.append(extra_path)
    if kind == "ours" and str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import torch

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    stepper = OursStepper(folder) if kind == "ours" else ReferenceStepper(folder)
    info = {"ready": True, "kind": kind, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "python": platform.python_version(), "load_s": time.perf_counter() - t0, "executable": sys.executable}
    if kind == "reference":
        import moshi

        info["moshi"] = moshi.__version__
    print(json.dumps(info), flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("op") == "quit":
            break
        seconds = stepper.time(req["batch"], req["frames"], req["warmup"], req["seed"])
        print(json.dumps({"seconds": seconds}), flush=True)
    return 0


# --- parent -------------------------------------------------------------------------------------------
class Worker:
    """A worker process driven over JSON lines."""

    def __init__(self, python: str, kind: str, folder: Path, threads: int, extra_path: str | None, env: dict):
        cmd = [python, str(Path(__file__).resolve()), "--worker", kind, "--checkpoint", str(folder),
               "--threads", str(threads)] + (["--extra-path", extra_path] if extra_path else [])
        self.kind = kind
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=str(REPO if kind == "ours" else tempfile.gettempdir()))
        self.info = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.kind} worker exited (code {self.proc.wait()}); see its stderr above")
        return json.loads(line)

    def time(self, **req: Any) -> float:
        self.proc.stdin.write(json.dumps({"op": "time", **req}) + "\n")
        self.proc.stdin.flush()
        return self._read()["seconds"]

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def refenv_has_torch(python: str) -> bool:
    probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('torch') else 1)"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def write_checkpoint(folder: Path, preset: str, seed: int) -> dict[str, Any]:
    """model.safetensors (kyutai names, released layout, float32) + config.json (kyutai kwargs)."""
    import torch

    from duplex_steer.engine.replica import write_lm
    from duplex_steer.engine.spec import PRESETS

    spec = PRESETS[preset]
    size = write_lm(folder / "model.safetensors", spec, seed=seed, dtype=torch.float32)
    (folder / "config.json").write_text(json.dumps(spec.to_kyutai(), indent=1))
    return {"preset": preset, "seed": seed, "bytes": size, "spec": spec.to_kyutai()}


def summarize(ours: list[float], ref: list[float]) -> dict[str, Any]:
    """ms/step lists of paired rounds -> min / median of each, speedups and ratios."""
    per_round = [r / o for o, r in zip(ours, ref, strict=True)]
    med_o, med_r, min_o, min_r = statistics.median(ours), statistics.median(ref), min(ours), min(ref)
    return {"ours_ms": ours, "reference_ms": ref, "ours_min_ms": min_o, "ours_median_ms": med_o,
            "reference_min_ms": min_r, "reference_median_ms": med_r,
            "speedup_median": med_r / med_o, "speedup_min": min_r / min_o,
            "speedup_per_round_median": statistics.median(per_round), "speedup_per_round": per_round,
            "ratio_ours_to_reference_median": med_o / med_r, "ratio_ours_to_reference_min": min_o / min_r}


def render(report: dict[str, Any]) -> str:
    ref, ours = report["workers"]["reference"], report["workers"]["ours"]
    label = (f"moshi {ref.get('moshi')} on torch {ref['torch']}" if not report["reference_no_deps"]
             else f"reference code (moshi {ref.get('moshi')}) on torch {ref['torch']} (the project's torch, "
                  "--no-deps reference environment)")
    loads = [r["loadavg_1min"] for r in report["rounds_log"]]
    lines = [
        "# Reference speed: our session vs kyutai moshi's LMGen, same checkpoint, one run", "",
        f"Machine: {report['machine']}; {report['threads']} threads in both workers "
        f"(torch.set_num_threads, OMP_NUM_THREADS); float32 on the CPU.",
        f"Reference: {label}. Ours: duplex-steer at {report['git']} on torch {ours['torch']}; "
        f"python {ours['python']}.",
        f"Run: {report['started']} ({report['wall_s']:.0f} s); 1-minute load average {report['loadavg_start']:.2f} "
        f"at start, {min(loads):.2f}-{max(loads):.2f} over the rounds, {report['loadavg_end']:.2f} at end "
        "(the load average counts this benchmark's own worker).",
        f"Command: `{report['command']}`", "",
        f"Checkpoint: random `{report['checkpoint']['preset']}` preset (seed {report['checkpoint']['seed']}, "
        f"{report['checkpoint']['bytes'] / 2**20:.0f} MiB float32, kyutai native names). Each round times, for "
        f"each batch size, {report['frames']} steps after {report['warmup']} warm-up steps of a fresh streaming "
        f"state, ours and the reference back to back (order alternating by round); {report['rounds']} rounds. "
        "Sampling at the reference's defaults on both sides. Random weights: speed of the pipeline only.", "",
        "| batch | ours ms/step min / median | reference ms/step min / median | speedup (ref / ours) of medians "
        "| of minima | per-round median | ours / reference (medians) | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for batch, row in report["results"].items():
        target = TARGET_SPEEDUP.get(int(batch))
        verdict = ("" if target is None else
                   f">= {target:.1f}x: **{'PASS' if row['speedup_median'] >= target else 'FAIL'}**")
        lines.append(f"| {batch} | {row['ours_min_ms']:.1f} / {row['ours_median_ms']:.1f} | "
                     f"{row['reference_min_ms']:.1f} / {row['reference_median_ms']:.1f} | "
                     f"{row['speedup_median']:.2f}x | {row['speedup_min']:.2f}x | "
                     f"{row['speedup_per_round_median']:.2f}x | {row['ratio_ours_to_reference_median']:.2f} | "
                     f"{verdict} |")
    lines += ["", "frames/s = batch x 1000 / ms per step. Per round (ms/step, ours / reference, load average):", ""]
    for entry in report["rounds_log"]:
        cells = ", ".join(f"b{b}: {v['ours']:.1f} / {v['reference']:.1f}" for b, v in entry["batches"].items())
        lines.append(f"- round {entry['round']} ({entry['first']} first, load {entry['loadavg_1min']:.2f}): {cells}")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refenv", default=os.environ.get("DUPLEX_STEER_REFENV", DEFAULT_REFENV),
                   help="the reference environment (scripts/setup_reference.sh; default $DUPLEX_STEER_REFENV "
                        f"or {DEFAULT_REFENV})")
    p.add_argument("--preset", default="mid", help="architecture of the random checkpoint (default mid)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--rounds", type=int, default=7, help="alternating rounds (default 7)")
    p.add_argument("--frames", type=int, default=30, help="timed steps per measurement (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--threads", type=int, default=None, help="torch threads in both workers (default: all cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="use (or, if empty, write) the checkpoint here instead of a temporary folder")
    p.add_argument("--out", type=Path, default=RESULTS / "reference_speed",
                   help="output path without suffix (.md and .json are written)")
    p.add_argument("--worker", choices=["ours", "reference"], help=argparse.SUPPRESS)
    p.add_argument("--extra-path", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    threads = args.threads or len(os.sched_getaffinity(0))
    if args.worker:
        return worker(args.worker, args.checkpoint, threads, args.extra_path)
    ref_python = Path(args.refenv) / "bin" / "python"
    if not ref_python.is_file():
        print(f"reference_speed: no reference environment at {args.refenv}; build it with "
              "`bash scripts/setup_reference.sh` (or pass --refenv / set DUPLEX_STEER_REFENV)", file=sys.stderr)
        return 2
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import sysconfig

    no_deps = not refenv_has_torch(str(ref_python))
    extra_path = sysconfig.get_paths()["purelib"] if no_deps else None
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started, t0, load_start = time.strftime("%Y-%m-%d %H:%M:%S"), time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="reference_speed_") as tmp:
        folder = args.checkpoint or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / "model.safetensors").is_file() and (folder / "config.json").is_file():
            checkpoint = {"preset": args.preset, "seed": args.seed, "bytes": (folder / "model.safetensors").stat().st_size}
        else:
            checkpoint = write_checkpoint(folder, args.preset, args.seed)
        print(f"[reference_speed] checkpoint in {folder}; starting workers", file=sys.stderr, flush=True)
        workers: dict[str, Worker] = {}
        try:
            workers["ours"] = Worker(sys.executable, "ours", folder, threads, None, env)
            workers["reference"] = Worker(str(ref_python), "reference", folder, threads, extra_path, env)
            times: dict[int, dict[str, list[float]]] = {b: {"ours": [], "reference": []} for b in args.batches}
            log = []
            for r in range(args.rounds):
                order = ["ours", "reference"] if r % 2 == 0 else ["reference", "ours"]
                entry = {"round": r, "first": order[0], "loadavg_1min": os.getloadavg()[0], "batches": {}}
                for b in args.batches:
                    for kind in order:
                        s = workers[kind].time(batch=b, frames=args.frames, warmup=args.warmup, seed=args.seed)
                        times[b][kind].append(1000.0 * s / args.frames)
                    entry["batches"][b] = {k: times[b][k][-1] for k in ("ours", "reference")}
                log.append(entry)
                print(f"[reference_speed] round {r}: " + ", ".join(
                    f"b{b} ours {v['ours']:.1f} ms / ref {v['reference']:.1f} ms" for b, v in entry["batches"].items())
                    + f" (load {entry['loadavg_1min']:.2f})", file=sys.stderr, flush=True)
        finally:
            for w in workers.values():
                w.close()
    report = {
        "started": started, "wall_s": time.perf_counter() - t0, "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0], "machine": machine_line(), "git": git_head(), "threads": threads,
        "command": " ".join([".venv/bin/python", "benchmarks/reference_speed.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "reference_no_deps": no_deps, "refenv": str(args.refenv),
        "workers": {k: w.info for k, w in workers.items()}, "checkpoint": checkpoint,
        "frames": args.frames, "warmup": args.warmup, "rounds": args.rounds, "sampling": REFERENCE_SAMPLING,
        "targets_speedup": TARGET_SPEEDUP, "rounds_log": log,
        "results": {str(b): summarize(times[b]["ours"], times[b]["reference"]) for b in args.batches},
    }
    write_results(args.out, report, render(report))
    print(f"[reference_speed] wrote {args.out.with_suffix('.md')} and .json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
