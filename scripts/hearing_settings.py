"""How the organism's tag codec hears the held-out engine under other fitting settings.

Fits the tag codec exactly as `train-organism` does (its own `prepare_speech`: all its training speech in
the 8 training voices, `HearingConfig`'s settings, seed 0) with the settings given here changed, then
reports codebook 0's word accuracy (`hearing.tagging_accuracy`) on the 100 ZBB queries in each festival
voice (the held-out engine) and on the clean training speech, and the held-out accuracy by the word's place
in the query (the first word is the subject). 3.5 minutes on 2 cores once the speech is rendered (use
`--speech-cache`: the first run renders ~12,000 sentences, ~15 minutes). `--save-codec DIR` keeps the codec;
`train-organism --codec-from DIR` then trains an organism on it. The model card's "Hearing the held-out
engine" (the committed settings: 32 bands, 2 augmented copies; at `--threads 2` the codec equals the one
`train-organism --seed 0` fits, byte for byte). The festival rows include the buffered queries ("Um, excuse me,
<query>") and how often their subject is named, and the same in two training voices with the commas left out
(flite and espeak-ng then make no pause before the subject, as festival makes none: a check that needs no
held-out audio); `--codec DIR` measures a saved codec on those rows alone:

    .venv/bin/python scripts/hearing_settings.py --threads 2 --speech-cache runs/speech-cache
    .venv/bin/python scripts/hearing_settings.py --band-mels 0 --augmentations 1 --speech-cache runs/speech-cache
    .venv/bin/python scripts/hearing_settings.py --codec runs/organism-zm3 --speech-cache runs/speech-cache
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from dataclasses import asdict, replace

import numpy as np
import torch


def by_place(codec, utterances) -> dict[str, float]:
    """Held-out word accuracy by the word's place in its query: first, middle, last."""
    from duplex_steer.audio import FRAME_SAMPLES
    from duplex_steer.organism.hearing import frame_labels

    index = {w: i for i, w in enumerate(codec.labels)}
    hit, seen = Counter(), Counter()
    for utt in utterances:
        tags = codec.tag_logits(np.pad(utt.audio, (0, FRAME_SAMPLES))[None])[0].argmax(-1)
        lab = frame_labels(utt, index, len(tags))
        order = list(dict.fromkeys(lab[lab > 0].tolist()))
        for j, c in enumerate(order):
            place = "first" if j == 0 else "last" if j == len(order) - 1 else "middle"
            seen[place] += 1
            hit[place] += int(torch.mode(tags[lab == c]).values == c)
    return {place: hit[place] / seen[place] for place in ("first", "middle", "last")}


RUN_TOGETHER_VOICES = ("flite:slt", "espeak-ng:en-us")  # training voices; without commas they make no pauses


def subject_accuracy(codec, utterances) -> float:
    """Share of buffered queries ("Um, excuse me, <Subject>, ...") whose subject's frames codebook 0 names right
    (the mode of its tags over the frames labelled with the subject)."""
    from duplex_steer.audio import FRAME_SAMPLES
    from duplex_steer.organism.hearing import frame_labels
    from duplex_steer.speech.zbb_audio import BUFFER_TEXT

    index = {w: i for i, w in enumerate(codec.labels)}
    place, hits = len(BUFFER_TEXT.split()), 0
    for utt in utterances:
        tags = codec.tag_logits(np.pad(utt.audio, (0, FRAME_SAMPLES))[None])[0].argmax(-1)
        lab = frame_labels(utt, index, len(tags))
        subject = index.get(utt.words[place], 0)
        hits += int(bool((lab == subject).any()) and int(torch.mode(tags[lab == subject]).values) == subject)
    return hits / len(utterances)


def main() -> None:
    from duplex_steer.engine.mel_codec import MelSettings
    from duplex_steer.engine.tag_codec import TagCodec
    from duplex_steer.organism.episodes import EpisodeConfig
    from duplex_steer.organism.hearing import tagging_accuracy
    from duplex_steer.organism.train import HELD_OUT_CHECK_VOICES, TrainConfig, prepare_speech
    from duplex_steer.organism.world import World
    from duplex_steer.speech.aligned import render_corpus
    from duplex_steer.speech.zbb_audio import buffered_text, read_items

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--band-mels", type=int, default=None, help="the tagger reads only the lowest N of 48 mel bands")
    ap.add_argument("--augmentations", type=int, default=None, help="augmented copies of each rendering")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--max-renderings", type=int, default=None, help="renderings sampled for the tagger (of 7,184 with the default fact table)")
    ap.add_argument("--band-masks", type=int, default=None, help="SpecAugment band masks per training example")
    ap.add_argument("--time-masks", type=int, default=None, help="SpecAugment time masks per training example")
    ap.add_argument("--channels", type=int, default=None, help="the tagger's width")
    ap.add_argument("--pause-share", type=float, default=None,
                    help="share of augmented copies whose pauses between words are closed (HearingConfig.pause_share)")
    ap.add_argument("--add-voices", default="", help="comma-separated voices trained on besides the 8 (e.g. espeak-ng:en-us+f4)")
    ap.add_argument("--false-descriptions", type=int, default=None, help="the fact table (train-organism's flag)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (train-organism's --threads; default 1)")
    ap.add_argument("--speech-cache", default=None, help="folder keeping rendered speech between runs")
    ap.add_argument("--save-codec", default=None, help="save the fitted codec in this folder")
    ap.add_argument("--codec", default=None, help="measure the tag codec of this organism folder instead of fitting one "
                                                  "(the festival and development rows only)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    n_mels = MelSettings.n_mels
    if args.band_mels is not None and not 0 <= args.band_mels <= n_mels:
        ap.error(f"--band-mels {args.band_mels} must lie in 0..{n_mels} (0: all bands)")
    config = TrainConfig(speech_cache=args.speech_cache)
    if args.false_descriptions is not None:
        config.episodes = EpisodeConfig(false_descriptions=args.false_descriptions)
    shape = config.hearing.shape
    if args.band_mels is not None:
        shape = replace(shape, band_mels=args.band_mels)
    if args.channels is not None:
        shape = replace(shape, channels=args.channels)
    changes = {k: v for k, v in (("augmentations", args.augmentations), ("epochs", args.epochs),
                                 ("max_renderings", args.max_renderings), ("band_masks", args.band_masks),
                                 ("time_masks", args.time_masks), ("pause_share", args.pause_share)) if v is not None}
    if args.add_voices:
        changes["voices"] = config.hearing.voices + tuple(v.strip() for v in args.add_voices.split(",") if v.strip())
    config.hearing = replace(config.hearing, shape=shape, **changes)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.codec:
        codec = TagCodec.load(args.codec)
        rows: dict = {"codec": args.codec}
    else:
        bank, record = prepare_speech(World.load(), config)  # train-organism's own speech and codec fit
        codec = bank.codec
        if args.save_codec:
            codec.save(args.save_codec)
        rows = {"config": asdict(config.hearing), "training (clean, a sample of 600)":
                record["tagging_training_clean"], "festival (both voices)": record["tagging_held_out"]}
    queries = [it["text"] for it in read_items()]
    buffered = [buffered_text(q) for q in queries]
    run_together = [re.sub(r"[,?.]", "", t) for t in buffered]  # without commas no engine pauses

    def heard_in(voice: str, texts: list[str]) -> list:
        return list(render_corpus([voice], texts, workers=2, progress=False, cache=args.speech_cache).values())

    for voice in HELD_OUT_CHECK_VOICES:
        heard = heard_in(voice, queries)
        rows[voice] = {**tagging_accuracy(codec, heard), "by_place": by_place(codec, heard)}
        heard = heard_in(voice, buffered)
        rows[f"{voice}, buffered"] = {**tagging_accuracy(codec, heard), "subject": subject_accuracy(codec, heard)}
    for voice in RUN_TOGETHER_VOICES:  # a development check without the held-out engine
        heard = heard_in(voice, run_together)
        rows[f"{voice}, buffered without commas"] = {**tagging_accuracy(codec, heard),
                                                      "subject": subject_accuracy(codec, heard)}
    rows["wall_s"] = round(time.perf_counter() - t0, 1)
    print("| speech | word accuracy | frame accuracy | first / middle / last word |\n|---|---|---|---|")
    for key, acc in rows.items():
        if isinstance(acc, dict) and "word_accuracy" in acc:
            place = " / ".join(f"{v:.2f}" for v in acc["by_place"].values()) if "by_place" in acc else \
                f"subject {acc['subject']:.2f}" if "subject" in acc else ""
            print(f"| {key} | {acc['word_accuracy']:.2f} ({acc['words']} words) | {acc['frame_accuracy']:.2f} | {place} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":  # render_corpus starts worker processes (spawn): they import this file
    main()
