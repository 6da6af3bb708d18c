"""How fast can the organism's architecture learn its world's yes/no facts when hearing is perfect?

A diagnosis for the organism's correctness (about chance on ZBB): the same modules, vocabulary, optimizer
and schedule as `duplex-steer train-organism`, trained on symbolic episodes whose user codebook 0 is the
word's own class (what a perfect tag codec would give: each word 3-6 frames, the last word held 2 frames
more), the other codebooks silence, and only questions asked while the model is silent ("Subject,
description, right?" -> "yes|no subject", the answer weighted as in training). The loss is the text
loss only. Every `--eval-every` steps it asks the 100 ZBB items the same way and counts the answers whose
"yes" / "no" logit order is right (greedy, no sampling). So it bounds from above what the real recipe,
which must also hear and speak, can learn in the same steps; it says nothing about hearing.

    .venv/bin/python scripts/facts_learnability.py --questions 2 --false-descriptions 5 --out runs/facts-q2-f5.json

Seeded; one thread; about 1 s a step on 2 cores (one run per core). `--questions` sets the questions per
224-frame episode (the real mix asks about 2), `--false-descriptions` the world's fact table
(`EpisodeConfig.false_descriptions`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from duplex_steer.engine.tag_codec import SILENCE, TagCodec  # noqa: E402
from duplex_steer.engine.text import PAD  # noqa: E402
from duplex_steer.organism.checkpoint import WEIGHTS_DIR, new_model  # noqa: E402
from duplex_steer.organism.episodes import EpisodeConfig, draw_fact  # noqa: E402
from duplex_steer.organism.train import TrainConfig, text_loss, training_optimizer  # noqa: E402
from duplex_steer.organism.world import NO, YES, Fact, World  # noqa: E402
from zbb import load_items  # noqa: E402

FRAMES = EpisodeConfig().frames


class SymbolicEpisodes:
    """Episodes of silent questions with perfect hearing: user codebook 0 names the word being said."""

    def __init__(self, world: World, codec: TagCodec, tokenizer, false_descriptions: int, seed: int):
        self.world, self.codec, self.rng = world, codec, np.random.default_rng(seed)
        self.config = EpisodeConfig(false_descriptions=false_descriptions)
        self.word_class = {w: i for i, w in enumerate(codec.labels)}
        self.silence = codec.encode(np.zeros((1, 12 * 1920), np.float32))[0, :, -1]
        self.token = {w: tokenizer.encode(w)[0] for w in [YES, NO, *world.zbb_subjects, *world.extra_subjects]}
        self.candidates: dict[tuple[str, bool], tuple[list[str], list[str]]] = {}

    def blank(self) -> torch.Tensor:
        codes = torch.empty(17, FRAMES, dtype=torch.long)
        codes[0], codes[1:9], codes[9:] = PAD, self.silence[:, None], self.silence[:, None]
        return codes

    def fact(self) -> Fact:
        """A silent question's fact, drawn as the recipe's episodes draw it."""
        return draw_fact(self.world, self.rng, self.config, self.candidates)

    def place(self, codes: torch.Tensor, fact: Fact, t: int) -> tuple[int, int]:
        """Puts the question at frame t and the answer after it; returns (answer frame, next free frame)."""
        words = [w.strip(",.?").lower() for w in fact.question.split()]
        for word in words:
            d = int(self.rng.integers(3, 7))
            codes[9, t : t + d] = self.word_class.get(word, self.word_class[SILENCE])
            t += d
        codes[9, t : t + 2] = codes[9, t - 1]
        answer = t + 2 + int(self.rng.integers(2, 4))
        codes[0, answer] = self.token[YES if fact.truth else NO]
        codes[0, answer + 3] = self.token[fact.subject]
        return answer, answer + 6

    def episode(self, questions: int) -> torch.Tensor:
        codes, t = self.blank(), int(self.rng.integers(0, 40))
        for _ in range(questions):
            fact = self.fact()
            if t + 66 >= FRAMES:  # no room for a question of 9 words at most, its answer and a pause
                break
            _, t = self.place(codes, fact, t)
            t += int(self.rng.integers(3, 18))
        return codes


def text_logits(model, codes: torch.Tensor) -> torch.Tensor:
    delayed = model.delay(codes)
    return model.text_logits(model.final_norm(model.run_layers(model.embed(delayed[:, :, :-1]), 0)))


@torch.no_grad()
def zbb_accuracy(model, episodes: SymbolicEpisodes, world: World) -> float:
    model.eval()
    right = 0
    items = load_items()
    for item in items:
        codes = episodes.blank()
        answer, _ = episodes.place(codes, world.fact(item["subject"], item["description"]), 20)
        logits = text_logits(model, codes[None])[0, answer]
        said_yes = bool(logits[episodes.token[YES]] > logits[episodes.token[NO]])
        right += int(said_yes == bool(item["truth"]))
    model.train()
    return right / len(items)


@torch.no_grad()
def zbb_accuracy_heard(model, episodes: SymbolicEpisodes, world: World, rendering: Path) -> float:
    """The same question, but codebook 0 as the real tag codec hears the rendering's query audio (the other
    codebooks stay silence, as in training here): does a model that knows the facts still answer them when
    the description comes through the codec? Reads the frame 2-6 after the speech where "yes" + "no" is
    likeliest."""
    from duplex_steer.audio import FRAME_SAMPLES, load_audio

    codec = episodes.codec
    manifest = json.loads((rendering / "manifest.json").read_text())
    files = {e["id"]: rendering / e["file"] for e in manifest["entries"] if e["kind"] == "query"}
    model.eval()
    right, items = 0, load_items()
    for item in items:
        wav = load_audio(files[item["id"]])
        speech = -(-len(wav) // FRAME_SAMPLES)
        heard = codec.encode(np.pad(wav, (0, 8 * FRAME_SAMPLES))[None])[0, 0]
        codes = episodes.blank()
        codes[9, 20 : 20 + len(heard)] = heard
        logits = text_logits(model, codes[None])[0]
        yes, no = episodes.token[YES], episodes.token[NO]
        frames = range(20 + speech + 2, 20 + speech + 7)
        at = max(frames, key=lambda t: float(logits[t].softmax(-1)[[yes, no]].sum()))
        right += int(bool(logits[at, yes] > logits[at, no]) == bool(item["truth"]))
    model.train()
    return right / len(items)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=2, help="questions per episode")
    parser.add_argument("--false-descriptions", type=int, default=EpisodeConfig().false_descriptions)
    parser.add_argument("--steps", type=int, default=TrainConfig().steps)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="JSON file for the learning curve")
    parser.add_argument("--heard", default=None, metavar="RENDERING",
                        help="also ask the ZBB items as the tag codec hears this rendering's queries (codebook 0), "
                             "at the end, e.g. zbb/renderings/flite-slt")
    args = parser.parse_args()
    config = TrainConfig(seed=args.seed, steps=args.steps)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    world, codec = World.load(), TagCodec.load(WEIGHTS_DIR)
    model = new_model(world, codec, seed=args.seed)
    episodes = SymbolicEpisodes(world, codec, model.tokenizer, args.false_descriptions, args.seed)
    params, opt, sched = training_optimizer(model, config)
    answers = (episodes.token[YES], episodes.token[NO])
    curve, start = [], time.perf_counter()
    for step in range(config.steps + 1):
        if step % args.eval_every == 0 or step == config.steps:
            curve.append({"step": step, "zbb_accuracy": zbb_accuracy(model, episodes, world),
                          "wall_s": round(time.perf_counter() - start, 1)})
            print(f"step {step}: ZBB facts right {curve[-1]['zbb_accuracy']:.2f}", flush=True)
        if step == config.steps:
            break
        model.forget_fused_weights()
        codes = torch.stack([episodes.episode(args.questions) for _ in range(config.batch_size)])
        loss = text_loss(text_logits(model, codes), codes[:, 0], config.pad_weight, answers, config.answer_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
    record = {"settings": vars(args), "curve": curve, "torch": torch.__version__}
    if args.heard:
        record["heard"] = {"rendering": args.heard,
                           "zbb_accuracy": zbb_accuracy_heard(model, episodes, world, Path(args.heard))}
        print(f"heard through the codec ({args.heard}): ZBB facts right {record['heard']['zbb_accuracy']:.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
