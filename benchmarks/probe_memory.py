"""Peak memory of the online affinity computation vs conversation length, at 32 layers x 4096 hidden.

The 7B model does not fit this CPU benchmark (a random `full` spec takes ~26 GB and ~1.5 s per frame),
and the probe's memory does not depend on what happens inside a layer. So the stand-in keeps what the
probe touches at full size: 32 hooked layers emitting [B, 1, 4096] residual states, the final norm,
the depformer-step interface with card 2048 (PersonaPlex-style, dep_q = 16, so the user-stream lens
runs 9 depformer steps per layer), and the 16 audio embeddings of 2049 x 4096. It replaces the
transformer layers with cheap residual stand-ins (a rank-16 update), and uses a small text vocabulary
(2,000, not 32,000) and a small depformer (dim 64): their transients are per frame and analytic.

Each (mode, length) runs in a fresh subprocess: build the stand-in, warm up 20 frames, return freed heap
to the OS (malloc_trim), reset the kernel's peak-RSS counter (/proc/self/clear_refs), step T frames of
random user codes, read VmHWM: the peak includes every per-frame transient.
Modes: `plain` (no probe), `online` (OnlineAffinity, every layer, default lenses), `keep` (record every
layer's state with a KeepSink: what an offline analysis would hold).

    .venv/bin/python benchmarks/probe_memory.py                  # 1, 2, 4 minutes; ~10-15 min on 2 CPU cores
    .venv/bin/python benchmarks/probe_memory.py --minutes 1 --modes plain online
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DIM, LAYERS, CARD, TEXT_CARD = 4096, 32, 2048, 2000
FRAME_RATE = 12.5


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def build_stand_in(dep_q: int = 16):
    """The stand-in DuplexModel described in the module docstring (random weights: a pipeline check)."""
    import torch
    from torch import nn

    from duplex_steer import load
    from duplex_steer.engine.spec import PRESETS, ModelSpec

    class StandInLayer(nn.Module):
        """x + tanh(x A) B: a fresh [B, T, dim] residual output per call, no KV cache."""

        def __init__(self, dim: int, rank: int = 16):
            super().__init__()
            self.a = nn.Parameter(torch.randn(dim, rank) / dim**0.5)
            self.b = nn.Parameter(torch.randn(rank, dim) / rank**0.5)

        def forward(self, x, **kwargs):
            return x + torch.tanh(x @ self.a) @ self.b

    spec = ModelSpec(dim=DIM, num_heads=32, num_layers=1, hidden_scale=0.25, text_card=TEXT_CARD, card=CARD,
                     dep_q=dep_q, depformer_dim=64, depformer_num_heads=2, depformer_num_layers=1,
                     depformer_dim_feedforward=128)
    PRESETS["probe-memory-stand-in"] = spec
    try:
        model = load("probe-memory-stand-in", device="cpu", dtype=torch.float32)
    finally:
        del PRESETS["probe-memory-stand-in"]
    torch.manual_seed(0)
    model.hf.decoder.model.layers = nn.ModuleList(StandInLayer(DIM) for _ in range(LAYERS)).requires_grad_(False)
    return model


def worker(mode: str, frames: int, batch: int) -> dict:
    """One measurement in this process; returns peak RSS growth over the run (MiB) and timings."""
    import torch

    from duplex_steer.hooks import KeepSink, record
    from duplex_steer.probes.affinity import OnlineAffinity

    torch.set_num_threads(1)
    model = build_stand_in()
    codes = torch.randint(0, CARD, (batch, 8, frames + 20), generator=torch.Generator().manual_seed(0))

    def run(n: int, start: int = 0) -> None:
        sess = model.session(batch_size=batch, seed=0)
        if mode == "online":
            with OnlineAffinity(model) as aff:
                for t in range(n):
                    sess.step(codes[:, :, start + t])
                    aff.on_frame(sess, t)
            aff.arrays()
        elif mode == "keep":
            with record(model, None, sink=KeepSink()) as sink:
                for t in range(n):
                    sess.step(codes[:, :, start + t])
            sink.stacked(0)
        else:
            for t in range(n):
                sess.step(codes[:, :, start + t])

    run(20)  # warm-up: allocator pools, lazily built weights
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed heap back, so reuse of it cannot hide growth
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    before = _rss_kib("VmRSS")
    t0 = time.perf_counter()
    run(frames, 20)
    seconds = time.perf_counter() - t0
    return {"mode": mode, "frames": frames, "batch": batch, "peak_growth_mib": (_rss_kib("VmHWM") - before) / 1024,
            "baseline_rss_mib": before / 1024, "ms_per_frame": 1000 * seconds / frames, "label": model.label}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 2, 4])
    parser.add_argument("--modes", nargs="+", default=["plain", "online", "keep"], choices=["plain", "online", "keep"])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--worker", nargs=2, metavar=("MODE", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.batch)))
        return

    rows = []
    for minutes in args.minutes:
        frames = round(minutes * 60 * FRAME_RATE)
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--worker", mode, str(frames), "--batch", str(args.batch)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"minutes": minutes, **row})
            print(f"  {minutes:g} min, {mode}: +{row['peak_growth_mib']:.1f} MiB peak, {row['ms_per_frame']:.1f} ms/frame",
                  file=sys.stderr)
    store = {m: 4 * 4 * round(m * 60 * FRAME_RATE) * LAYERS * args.batch / 2**20 for m in args.minutes}
    print(f"\nStand-in: {LAYERS} layers x {DIM} hidden, card {CARD}, dep_q 16, text vocab {TEXT_CARD}, batch "
          f"{args.batch}, CPU float32; random weights: a pipeline check of memory, not of any model's behaviour.\n")
    print("| conversation | frames | " + " | ".join(f"{m}: peak RSS growth (MiB)" for m in args.modes)
          + " | affinity arrays (MiB, computed) |")
    print("|---|---|" + "---|" * len(args.modes) + "---|")
    for minutes in args.minutes:
        cells = [next(r for r in rows if r["minutes"] == minutes and r["mode"] == m) for m in args.modes]
        print(f"| {minutes:g} min | {cells[0]['frames']} | " + " | ".join(f"{c['peak_growth_mib']:.1f}" for c in cells)
              + f" | {store[minutes]:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
