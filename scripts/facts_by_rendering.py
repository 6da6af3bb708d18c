"""Does the organism know its facts, or the audio it learned them from? ZBB's questions in three renderings.

    .venv/bin/python scripts/facts_by_rendering.py --model runs/organism-zt0 --out runs/facts-rendering-zt0

The organism is trained on each question sentence in a fixed set of acoustic variants (`EpisodeConfig.variants`:
the training voices clean plus seeded augmented copies) and answers its own ZBB items nearly always right
teacher-forced (`scripts/answer_accuracy.py`), yet fewer of ZBB's questions in a training voice. This asks the
same 100 no_interrupt questions (`zbb run --greedy`, one run each, the same contexts) in the same voice three ways:

1. `zbb`: ZBB's rendering (`--rendering`; flite slt, sentence by sentence, stored as ogg);
2. `training`: the training's own clean rendering of each question in `--voice` (the speech cache), stored as FLAC
   (lossless): the audio the model was trained on;
3. `training-ogg`: the same audio through ZBB's storage (resampled to the rendering's rate, ogg Vorbis).

Correctness and IWOR per rendering with 95% Wilson intervals (n items), and each against ZBB's rendering paired
by item (difference; exact McNemar p on the discordant pairs). A model whose answers hold across the three reads
the facts from what was said; one that answers its training audio better has tied them to that audio. Greedy
decoding, so the differences are the audio's, not sampling noise.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duplex_steer.audio import SAMPLE_RATE, resample, save_audio
from duplex_steer.speech.dialogues import write_ogg
from duplex_steer.speech.zbb_audio import read_items
from zbb.condition_check import scored_records
from zbb.rendering import manifest_from_recordings
from zbb.stats import mcnemar_exact, wilson_interval

RENDERINGS = ("zbb", "training", "training-ogg")


def write_recordings(folder: Path, contexts_from: Path, queries: Mapping[str, np.ndarray], ogg_rate: int | None = None) -> Path:
    """A rendering folder of `queries` ({item id: 24 kHz audio}) with the contexts of `contexts_from` (copied
    byte for byte): FLAC at 24 kHz, or with `ogg_rate` ogg Vorbis at that rate as `zbb build` stores speech."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "queries").mkdir(parents=True)
    shutil.copytree(contexts_from / "contexts", folder / "contexts")
    for item_id, wav in queries.items():
        if ogg_rate is None:
            save_audio(folder / "queries" / f"{item_id}.flac", wav, SAMPLE_RATE)
        else:
            write_ogg(folder / "queries" / f"{item_id}.ogg", resample(wav, SAMPLE_RATE, ogg_rate), ogg_rate)
    manifest_from_recordings(folder, speaker="the organism's training rendering", item_ids=list(queries))
    return folder


def summarize(records: Mapping[str, Sequence[Mapping[str, Any]]], reference: str = "zbb") -> list[dict[str, Any]]:
    """Per rendering: correctness and IWOR (k of n, Wilson interval) over its scored no_interrupt records, and
    the paired difference against `reference` (items scored in both; exact McNemar)."""
    by_id = {name: {r["id"]: r for r in scored_records(recs) if r["condition"] == "no_interrupt"}
             for name, recs in records.items()}
    rows = []
    for name, mine in by_id.items():
        row: dict[str, Any] = {"rendering": name, "n": len(mine)}
        for metric in ("correct", "iwor"):
            k = sum(int(r[metric]) for r in mine.values())
            row[metric] = (k, wilson_interval(k, len(mine)))
            if name != reference:
                common = sorted(set(mine) & set(by_id[reference]))
                a = [int(mine[i][metric]) for i in common]
                b = [int(by_id[reference][i][metric]) for i in common]
                test = mcnemar_exact(a, b)
                row[f"{metric}_vs_{reference}"] = ((sum(a) - sum(b)) / max(1, len(common)), test["gained"],
                                                   test["lost"], test["p_value"])
        rows.append(row)
    return rows


def render_table(rows: Sequence[Mapping[str, Any]], reference: str = "zbb") -> str:
    lines = [f"| rendering | n | correctness | IWOR | correctness - {reference} (gained / lost, McNemar p) |",
             "|---|---|---|---|---|"]
    for row in rows:
        cells = []
        for metric in ("correct", "iwor"):
            k, (low, high) = row[metric]
            cells.append(f"{k / max(1, row['n']):.2f} [{low:.2f}, {high:.2f}]")
        diff = row.get(f"correct_vs_{reference}")
        versus = "" if diff is None else f"{diff[0]:+.2f} ({diff[1]} / {diff[2]}, p {diff[3]:.3g})"
        lines.append(f"| {row['rendering']} | {row['n']} | {cells[0]} | {cells[1]} | {versus} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="an organism checkpoint folder")
    ap.add_argument("--rendering", default="zbb/renderings/flite-slt", help="ZBB's rendering in a training voice")
    ap.add_argument("--voice", default="flite:slt", help="the training voice that rendering speaks in")
    ap.add_argument("--speech-cache", default="runs/speech-cache", help="the training's speech cache (or empty)")
    ap.add_argument("--limit", type=int, default=None, help="the first N items only (a quick check)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import duplex_steer
    from duplex_steer.speech.aligned import render_corpus
    from zbb.results import read_run_records
    from zbb.run_config import RunConfig
    from zbb.runner import run

    rendering, out = Path(args.rendering), Path(args.out)
    if not (rendering / "manifest.json").is_file():
        raise SystemExit(f"{rendering} is not a ZBB rendering (no manifest.json); build it with `zbb build --tts`")
    items = read_items()[: args.limit]
    rate = json.loads((rendering / "manifest.json").read_text())["sample_rate"]
    spoken = render_corpus([args.voice], [it["text"] for it in items], workers=2, progress=True,
                           cache=args.speech_cache or None)
    queries = {it["id"]: spoken[(args.voice, it["text"])].audio for it in items if (args.voice, it["text"]) in spoken}
    if len(queries) < len(items):
        print(f"{len(items) - len(queries)} questions the engine could not align are left out of every row")
    folders = {"zbb": rendering,
               "training": write_recordings(out / "audio-training", rendering, queries),
               "training-ogg": write_recordings(out / "audio-training-ogg", rendering, queries, ogg_rate=rate)}
    model = duplex_steer.load(args.model)
    records = {}
    for name, folder in folders.items():
        config = RunConfig(model=args.model, conditions=["no_interrupt"], greedy=True, audio=str(folder),
                           items=list(queries))
        run(config, out / f"zbb-{name}", model=model)
        records[name] = read_run_records(out / f"zbb-{name}")
    table = render_table(summarize(records))
    (out / "facts_by_rendering.md").write_text(f"{args.model}, voice {args.voice}\n\n{table}\n")
    print(table)


if __name__ == "__main__":  # render_corpus starts worker processes (spawn): they import this file
    main()
