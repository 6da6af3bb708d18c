"""How well a tag codec trained on some voices hears others: the organism's hearing, engine by engine.

Trains the organism's tagger (`duplex_steer.organism.hearing`, the committed settings unless given) on
`--texts` sentences of the world rendered by the `--train` voices, then reports codebook 0's word and
frame accuracy on the ZBB queries among them, rendered by each `--test` voice. About 5-10 minutes on 2
cores for the defaults. The figures in the organism's model card ("a speaker in no training voice"):

    .venv/bin/python scripts/hearing_voices.py \\
        --train flite:kal,flite:awb,flite:rms,flite:slt,festival:slt-hts,festival:kal \\
        --test espeak-ng:en-us,espeak-ng:en-us+m3
    .venv/bin/python scripts/hearing_voices.py \\
        --train espeak-ng:en-us,espeak-ng:en-us+m3,espeak-ng:en-us+f2,espeak-ng:en-gb+m7,festival:slt-hts,festival:kal \\
        --test flite:rms,flite:awb,flite:kal,flite:slt
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch


def main() -> None:
    from duplex_steer.engine.tag_codec import SILENCE
    from duplex_steer.organism.hearing import (
        HearingConfig,
        examples,
        fit_tag_codec,
        hearing_texts,
        tagging_accuracy,
    )
    from duplex_steer.organism.world import World
    from duplex_steer.speech.aligned import parse_voice, render_corpus
    from duplex_steer.speech.zbb_audio import read_items

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="comma-separated voice ids the tagger is trained on")
    ap.add_argument("--test", required=True, help="comma-separated voice ids it is tested on")
    ap.add_argument("--texts", type=int, default=300, help="sentences of the world (a seeded sample)")
    ap.add_argument("--augmentations", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    train_voices, test_voices = args.train.split(","), args.test.split(",")
    for voice in train_voices + test_voices:
        parse_voice(voice)  # a wrong voice id fails now, before anything is rendered
    torch.manual_seed(args.seed)
    texts = hearing_texts(World.load())
    rng = np.random.default_rng(args.seed)
    sample = [texts[i] for i in sorted(rng.choice(len(texts), min(args.texts, len(texts)), replace=False))]
    t0 = time.perf_counter()
    training = list(render_corpus(train_voices, sample, workers=2, progress=True).values())
    config = HearingConfig(augmentations=args.augmentations, epochs=args.epochs, seed=args.seed)
    labels = [SILENCE] + sorted({w for u in training for w in u.words})
    codec, _ = fit_tag_codec(examples(training, config), labels, config, progress=True)
    queries = [it["text"] for it in read_items() if it["text"] in set(sample)]
    rows = {"train_voices": train_voices, "texts": len(sample), "queries": len(queries),
            "training (clean, every 10th)": tagging_accuracy(codec, training[::10])}
    for voice in test_voices:
        rows[voice] = tagging_accuracy(codec, list(render_corpus([voice], queries, workers=2, progress=False).values()))
    rows["wall_s"] = round(time.perf_counter() - t0, 1)
    print("| voices | word accuracy | frame accuracy |\n|---|---|---|")
    for key, acc in rows.items():
        if isinstance(acc, dict):
            print(f"| {key} | {acc['word_accuracy']:.2f} ({acc['words']} words) | {acc['frame_accuracy']:.2f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":  # render_corpus starts worker processes (spawn): they import this file
    main()
