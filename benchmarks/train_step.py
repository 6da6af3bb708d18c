"""The organism's training step at 1 and 2 torch threads, against its earlier form, in alternating rounds.

A training step of `duplex-steer train-organism` (teacher-forced pass, loss, backward, AdamW) on a batch of
the committed configuration's shape (12 episodes x 224 frames x 17 streams) with the committed codec and a
fresh seeded organism; the codes are random within their ranges (a step's cost depends on the shapes,
not on what the speech says). Rounds alternate between thread counts so that both see the same machine
load; reports the median and minimum seconds per step and the ratio, and `TrainConfig.steps` such steps:
a lower bound for a training's steps, which also draw episodes (each speech variant augmented and
encoded on first use). The baseline, timed in the same rounds, is the step as it was until 2026-12-02
(`stepwise_loss_terms` below): the depformer run step by step (`depth_step` 16 times) and each codebook's
loss taken on its own slice of the logits, whose backward writes a full-size zero gradient per codebook.
Run it on a quiet machine.

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
import torch.nn.functional as F  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from duplex_steer.engine.tag_codec import load_small_codec  # noqa: E402
from duplex_steer.organism.checkpoint import WEIGHTS_DIR, new_model  # noqa: E402
from duplex_steer.organism.train import TrainConfig, loss_terms, text_loss, training_optimizer  # noqa: E402
from duplex_steer.organism.world import World  # noqa: E402

FORMS = ("stepwise", "together")  # the baseline, then the recipe's `loss_terms`


def stepwise_loss_terms(model, codes, pad_weight, depth_fraction, generator, answer_ids, answer_weight):
    """The baseline: `loss_terms` as it was until 2026-12-02 (same values; the depformer step by step)."""
    B, K, T = codes.shape
    delayed = model.delay(codes)
    normed = model.final_norm(model.run_layers(model.embed(delayed[:, :, :-1]), 0))
    text = text_loss(model.text_logits(normed), codes[:, 0], pad_weight, answer_ids, answer_weight)
    dep_q = model.spec.dep_q
    dep_in = delayed[:, :dep_q, 1:].permute(0, 2, 1).reshape(B * T, -1)
    index = torch.randperm(B * T, generator=generator)[: max(1, int(depth_fraction * B * T))]
    flat, inputs = normed.reshape(B * T, -1)[index], dep_in[index]
    kv = [[] for _ in range(model.spec.depformer_num_layers)]
    logits = torch.stack([model.depth_step(k, flat, inputs[:, k], kv) for k in range(dep_q)], 1)
    item, frame = index // T, index % T
    audio = []
    for k in range(dep_q):
        d = model.spec.delays[k + 1]
        valid = frame >= d
        audio.append(F.cross_entropy(logits[valid, k], codes[item[valid], 1 + k, frame[valid] - d]))
    n = model.spec.num_audio_codebooks
    return text, torch.stack(audio[:n]).mean(), torch.stack(audio[n:]).mean()


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
    params, opt, _ = training_optimizer(model, config)  # the training's own optimizer (its schedule not stepped)
    gen = torch.Generator().manual_seed(0)
    B, T = config.batch_size, config.episodes.frames
    codes = torch.randint(0, model.spec.card, (B, model.spec.n_q + 1, T), generator=gen)
    codes[:, 0] = torch.randint(0, len(model.tokenizer.pieces), (B, T), generator=gen)
    answer_ids = tuple(model.tokenizer.encode(w)[0] for w in ("yes", "no"))

    def step(form: str) -> None:
        terms = stepwise_loss_terms if form == "stepwise" else loss_terms
        text, audio, user = terms(model, codes, config.pad_weight, config.depth_fraction, gen, answer_ids,
                                  config.answer_weight)
        loss = text + audio + config.user_weight * user
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    cases = [(form, n) for n in args.threads for form in FORMS]
    times: dict[tuple[str, int], list[float]] = {case: [] for case in cases}
    load_before = os.getloadavg()[0]
    for form, n in cases:  # warm-up
        torch.set_num_threads(n)
        step(form)
    for _ in range(args.rounds):
        for form, n in cases:
            torch.set_num_threads(n)
            for _ in range(args.steps):
                start = time.perf_counter()
                step(form)
                times[(form, n)].append(time.perf_counter() - start)
    load_after = os.getloadavg()[0]
    base = statistics.median(times[cases[0]])
    rows = []
    for form, n in cases:
        med = statistics.median(times[(form, n)])
        rows.append({"form": form, "threads": n, "median_s": med, "min_s": min(times[(form, n)]),
                     "speedup": base / med, "steps_min": med * config.steps / 60})
    lines = [f"# train_step.py: the organism's training step by form and thread count ({os.cpu_count()} cores)", "",
             f"Batch {B} x {T} frames, depth fraction {config.depth_fraction}; {args.rounds} alternating rounds of "
             f"{args.steps} steps; 1-minute load average {load_before:.2f} before, {load_after:.2f} after; torch "
             f"{torch.__version__}.", "", "    .venv/bin/python benchmarks/train_step.py", "",
             "stepwise: the baseline (the step until 2026-12-02); together: `loss_terms` now (the depformer's steps at "
             "once, one cross-entropy over every codebook). Speed-up against the first row.", "",
             "| form | threads | s/step (median) | min | speed-up | the steps of a training, at least (min) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['form']} | {r['threads']} | {r['median_s']:.2f} | {r['min_s']:.2f} | x{r['speedup']:.2f} | "
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
