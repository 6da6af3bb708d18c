"""The organism's training step at 1 and 2 torch threads, in one process, in alternating rounds.

A training step of `duplex-steer train-organism` (teacher-forced pass, loss, backward, AdamW) on a batch of
the committed configuration's shape (12 episodes x 224 frames x 17 streams) with the committed codec and a
fresh seeded organism; the codes are random within their ranges (a step's cost depends on the shapes,
not on what the speech says). Rounds alternate between thread counts so that both see the same machine
load; reports the median and minimum seconds per step and the ratio, and `TrainConfig.steps` such steps:
a lower bound for a training's steps, which also draw episodes (each speech variant augmented and
encoded on first use). Run it on a quiet machine.

    .venv/bin/python benchmarks/train_step.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from duplex_steer.engine.tag_codec import load_small_codec  # noqa: E402
from duplex_steer.organism.checkpoint import WEIGHTS_DIR, new_model, trainable_parameters  # noqa: E402
from duplex_steer.organism.train import TrainConfig, loss_terms  # noqa: E402
from duplex_steer.organism.world import World  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--steps", type=int, default=4, help="steps per round")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/train_step.json"))
    args = parser.parse_args()

    config = TrainConfig()
    world = World.load()
    model = new_model(world, load_small_codec(WEIGHTS_DIR), seed=0)
    params = trainable_parameters(model)
    for p in params:
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW(params, lr=config.lr)
    gen = torch.Generator().manual_seed(0)
    B, T = config.batch_size, config.episodes.frames
    codes = torch.randint(0, model.spec.card, (B, model.spec.n_q + 1, T), generator=gen)
    codes[:, 0] = torch.randint(0, len(model.tokenizer.pieces), (B, T), generator=gen)
    answer_ids = tuple(model.tokenizer.encode(w)[0] for w in ("yes", "no"))

    def step() -> None:
        text, audio, user = loss_terms(model, codes, config.pad_weight, config.depth_fraction, gen, answer_ids,
                                       config.answer_weight)
        loss = text + audio + config.user_weight * user
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    times: dict[int, list[float]] = {n: [] for n in args.threads}
    load_before = os.getloadavg()[0]
    for n in args.threads:  # warm-up at each count
        torch.set_num_threads(n)
        step()
    for _ in range(args.rounds):
        for n in args.threads:
            torch.set_num_threads(n)
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                times[n].append(time.perf_counter() - start)
    load_after = os.getloadavg()[0]
    base = statistics.median(times[args.threads[0]])
    rows = []
    for n in args.threads:
        med = statistics.median(times[n])
        rows.append({"threads": n, "median_s": med, "min_s": min(times[n]), "speedup": base / med,
                     "steps_min": med * config.steps / 60})
    lines = [f"# train_step.py: the organism's training step by thread count ({os.cpu_count()} cores)", "",
             f"Batch {B} x {T} frames, depth fraction {config.depth_fraction}; {args.rounds} alternating rounds of "
             f"{args.steps} steps; 1-minute load average {load_before:.2f} before, {load_after:.2f} after; torch "
             f"{torch.__version__}.", "", "    .venv/bin/python benchmarks/train_step.py", "",
             "| threads | s/step (median) | min | speed-up | the steps of a training, at least (min) |", "|---|---|---|---|---|"]
    lines += [f"| {r['threads']} | {r['median_s']:.2f} | {r['min_s']:.2f} | x{r['speedup']:.2f} | "
              f"{r['steps_min']:.0f} ({config.steps} steps) |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "load": [load_before, load_after], "torch": torch.__version__}, indent=1))
    out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
