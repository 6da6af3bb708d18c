"""Are the organism's wrong answers the codec's mishearing? ZBB answers split by what codebook 0 heard.

    .venv/bin/python scripts/facts_by_tagging.py RUN [RUN ...] [--codec FOLDER]

For each ZBB run folder (`zbb main` / `zbb run`), the no_interrupt questions the model heard in silence (it did
not talk over them: `zbb.talk_split.talked_over`) are split by whether the tag codec's codebook 0 names every word
of the question's description somewhere in the run's own rendering of the question (the `audio` in its
config.json; the codec of `--codec`, else of the run's model). Correctness per part, k of n with 95% Wilson
intervals, per run and pooled. A gap between the parts is what hearing costs the facts; correctness where every
word is named is what the model knows of them in that audio.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duplex_steer.audio import FRAME_SAMPLES
from duplex_steer.engine.tag_codec import SILENCE, TagCodec
from duplex_steer.organism.checkpoint import WEIGHTS_DIR
from duplex_steer.speech.zbb_audio import load_query_audio, read_items
from zbb.condition_check import scored_records
from zbb.results import read_run_records
from zbb.stats import wilson_interval
from zbb.talk_split import talked_over


def description_heard(codec: TagCodec, audio_dir: str | Path, items: Sequence[Mapping[str, Any]]) -> dict[str, bool]:
    """{item id: every word of its description is among codebook 0's tags of its spoken query}."""
    out = {}
    for item in items:
        wav = load_query_audio(audio_dir, item["id"])
        tags = codec.tag_logits(np.pad(wav, (0, FRAME_SAMPLES))[None])[0].argmax(-1)
        named = {codec.labels[int(t)] for t in tags} - {SILENCE}
        out[item["id"]] = set(re.findall(r"[a-z]+", item["description"].lower())) <= named
    return out


def split_correctness(records: Sequence[Mapping[str, Any]], heard: Mapping[str, bool]) -> dict[bool, tuple[int, int]]:
    """{heard: (right, n)} over the scored no_interrupt records the model did not talk over."""
    out = {True: [0, 0], False: [0, 0]}
    for r in scored_records(records):
        if r["condition"] == "no_interrupt" and not talked_over(r) and r["id"] in heard:
            part = out[heard[r["id"]]]
            part[0] += int(r["correct"])
            part[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}


def cell(right: int, n: int) -> str:
    if n == 0:
        return "n/a"
    low, high = wilson_interval(right, n)
    return f"{right / n:.2f} [{low:.2f}, {high:.2f}] ({right} of {n})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="ZBB run folders")
    ap.add_argument("--codec", default=None, help="an organism folder whose tag codec tags the questions "
                                                  "(default: each run's model)")
    args = ap.parse_args()
    items = read_items()
    cache: dict[tuple[str, str], dict[str, bool]] = {}
    pooled = {True: [0, 0], False: [0, 0]}
    print("| run | rendering | every description word named | a word not named |\n|---|---|---|---|")
    for run in args.runs:
        config = json.loads((Path(run) / "config.json").read_text()).get("config", {})
        codec_dir, audio = args.codec or config.get("model"), config.get("audio")
        codec_dir = str(WEIGHTS_DIR) if codec_dir == "organism" else codec_dir
        if not codec_dir or not Path(codec_dir, "codec.json").is_file() or not audio:
            raise SystemExit(f"{run}: needs a run of an organism folder on a rendering (or --codec FOLDER)")
        key = (codec_dir, audio)
        if key not in cache:
            cache[key] = description_heard(TagCodec.load(codec_dir), audio, items)
        parts = split_correctness(read_run_records(run), cache[key])
        for k, (right, n) in parts.items():
            pooled[k][0] += right
            pooled[k][1] += n
        print(f"| {run} | {Path(audio).name} ({sum(cache[key].values())} of {len(items)} named) | "
              f"{cell(*parts[True])} | {cell(*parts[False])} |")
    if len(args.runs) > 1:
        print(f"| pooled (runs are not independent) | | {cell(*pooled[True])} | {cell(*pooled[False])} |")


if __name__ == "__main__":
    main()
