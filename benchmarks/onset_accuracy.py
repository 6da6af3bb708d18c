"""Onset accuracy: how early or late each onset source finds the user's first word, on recordings where it is known.

    .venv/bin/python benchmarks/onset_accuracy.py            # a few minutes on one CPU thread
    .venv/bin/python benchmarks/onset_accuracy.py --queries 10

Recordings and their first-word times (truth frame = floor(t / 80 ms)):
- fdb: Full-Duplex-Bench user-interruption item 1 (../shared/fixtures): interrupt.json says 10.53 s; the
  recording is silent until its first sound at 11.10 s (frame RMS <= 0.0005 before, 0.014 at 11.10 s,
  0.139 at 11.14 s), taken as the truth; the user's first turn (0.16 s) is an onset too;
- dialogues, organism-dialogues: audio_fixtures/*dialogues, every turn's start (TTS timings);
- examples: audio_fixtures/interruption_example and organism_interruption, every turn's start;
- mixtures: ZBB queries (zbb/audio/queries, first N) placed at 3.0 s over "model speech" (the ZBB
  context renderings, a different sentence set, looped) at -inf (clean), -20 and -10 dB relative to
  the query's level: an echo of the model's own voice in the user's channel;
- model speech alone: the same echo without a query, for false triggers per minute.

Detectors run causally frame by frame, ungated (`only_while_model_speaks=False`: no model runs here, so
the gate would be the same for all), their defaults otherwise. A truth onset is detected by the first
fire in [truth - 3, truth + 25) frames (latency = fire - truth; negative = early); none = a miss. Fires
matched to no onset are false triggers. Oracle rows: the annotation as given (`oracle-annotated`) and
snapped to speech (`oracle-snapped`, duplex_steer.steering.snap), both against the same truth. The
speech sets are espeak-ng renderings; only the fdb item is a human recording.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from duplex_steer.audio import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, load_audio  # noqa: E402
from duplex_steer.speech.dialogues import load_dialogues  # noqa: E402
from duplex_steer.steering.onset import make_detector  # noqa: E402
from duplex_steer.steering.snap import OnsetSnapWarning, snap_onset  # noqa: E402

FDB = REPO.parent / "shared" / "fixtures" / "fdb-user-interruption-example" / "1"
FDB_FIRST_SOUND_S = 11.10
EARLY, LATE = 3, 25  # match window around a truth onset, frames
PLACE_S, TAIL_S = 3.0, 1.0
ECHO_DB = (None, -20.0, -10.0)
DETECTORS = ("energy", "vad")


def frame_of(seconds: float) -> int:
    return int(np.floor(seconds * FRAME_RATE + 1e-9))


def recordings(n_queries: int) -> tuple[list[dict], list[dict]]:
    """(labelled recordings, model-speech-only recordings); each {set, name, wav, onsets: [(truth_s, span)]}."""
    import soundfile as sf

    labelled = []
    if FDB.is_dir():
        wav, rate = sf.read(str(FDB / "input.wav"), dtype="float32")
        from duplex_steer.audio import resample

        start, end = json.loads((FDB / "interrupt.json").read_text())[0]["timestamp"]
        labelled.append({"set": "fdb", "name": "fdb/1", "wav": resample(wav, rate, SAMPLE_RATE),
                         "onsets": [(0.16, None), (FDB_FIRST_SOUND_S, (start, end))]})
    for set_name, folder in (("dialogues", "dialogues"), ("organism-dialogues", "organism_dialogues")):
        for d in load_dialogues(REPO / "audio_fixtures" / folder, verify=False):
            labelled.append({"set": set_name, "name": d.id, "wav": d.audio(),
                             "onsets": [(t.start_s, (t.start_s, t.end_s)) for t in d.turns]})
    for stem in ("interruption_example", "organism_interruption"):
        meta = json.loads((REPO / "audio_fixtures" / f"{stem}.json").read_text())
        labelled.append({"set": "examples", "name": stem, "wav": load_audio(REPO / "audio_fixtures" / meta["file"]),
                         "onsets": [(t["start_s"], (t["start_s"], t["end_s"])) for t in meta["turns"]]})
    manifest = json.loads((REPO / "zbb" / "audio" / "manifest.json").read_text())
    echo = np.concatenate([load_audio(REPO / "zbb" / "audio" / e["file"])
                           for e in manifest["entries"] if e["kind"] == "context"])
    queries = [e for e in manifest["entries"] if e["kind"] == "query"][:n_queries]
    alone = []
    for k, entry in enumerate(queries):
        query = load_audio(REPO / "zbb" / "audio" / entry["file"])
        n = int((PLACE_S + TAIL_S) * SAMPLE_RATE) + len(query)
        start = (k * 7919 * FRAME_SAMPLES) % (len(echo) - n)  # a different stretch of model speech per query
        model_speech = echo[start : start + n]
        q_rms = float(np.sqrt(np.mean(query ** 2)))
        m_rms = float(np.sqrt(np.mean(model_speech ** 2)))
        for db in ECHO_DB:
            bed = np.zeros(n, np.float32) if db is None else model_speech * (q_rms / m_rms * 10 ** (db / 20))
            wav = bed.copy()
            at = int(PLACE_S * SAMPLE_RATE)
            wav[at : at + len(query)] += query
            label = "clean" if db is None else f"{db:+.0f} dB"
            labelled.append({"set": f"mixtures ({label})", "name": entry["id"], "wav": wav.astype(np.float32),
                             "onsets": [(PLACE_S, (PLACE_S, PLACE_S + len(query) / SAMPLE_RATE))]})
            if db is not None:
                alone.append({"set": f"model speech alone ({label})", "name": entry["id"], "wav": bed.astype(np.float32)})
    return labelled, alone


def fires(name: str, wav: np.ndarray) -> list[int]:
    det = make_detector(name, only_while_model_speaks=False)
    frames = np.pad(wav, (0, (-len(wav)) % FRAME_SAMPLES)).reshape(-1, FRAME_SAMPLES)
    return [i for i, f in enumerate(frames) if det.update(f[None], i)[0]]


def match(truths: list[int], fired: list[int]) -> tuple[list[int | None], int]:
    """Latency per truth onset (None = miss) and the number of unmatched fires."""
    used, out = set(), []
    for t in truths:
        hit = next((f for f in fired if t - EARLY <= f < t + LATE and f not in used), None)
        if hit is not None:
            used.add(hit)
        out.append(None if hit is None else hit - t)
    return out, len([f for f in fired if f not in used])


def summarize(latencies: list[int | None]) -> dict:
    found = [v for v in latencies if v is not None]
    return {"n": len(latencies), "misses": len(latencies) - len(found),
            "median": float(np.median(found)) if found else None,
            "p90": float(np.percentile(found, 90)) if found else None,
            "early": sum(v < 0 for v in found)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=20, help="ZBB queries in the mixtures (default 20)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "onset_accuracy"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    started = time.time()
    labelled, alone = recordings(args.queries)
    lat: dict[tuple[str, str], list] = {}
    false: dict[tuple[str, str], int] = {}
    for rec in labelled:
        truths = [frame_of(t) for t, _ in rec["onsets"]]
        for det in DETECTORS:
            got, extra = match(truths, fires(det, rec["wav"]))
            lat.setdefault((rec["set"], det), []).extend(got)
            false[(rec["set"], det)] = false.get((rec["set"], det), 0) + extra
        for t, (_, span) in zip(truths, rec["onsets"], strict=True):
            if span is None:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OnsetSnapWarning)
                snapped = snap_onset(rec["wav"], SAMPLE_RATE, *span)
            lat.setdefault((rec["set"], "oracle-annotated"), []).append(snapped.annotated_frame - t)
            lat.setdefault((rec["set"], "oracle-snapped"), []).append(snapped.frame - t)
    alone_rates = {}
    for rec in alone:
        minutes = len(rec["wav"]) / SAMPLE_RATE / 60
        for det in DETECTORS:
            key = (rec["set"], det)
            n, m = alone_rates.get(key, (0, 0.0))
            alone_rates[key] = (n + len(fires(det, rec["wav"])), m + minutes)
    rows = []
    for (set_name, det), values in lat.items():
        rows.append({"set": set_name, "detector": det, **summarize(values),
                     "unmatched_fires": false.get((set_name, det)) if det in DETECTORS else None})
    alone_rows = [{"set": s, "detector": d, "fires": n, "minutes": round(m, 2), "per_minute": round(n / m, 2)}
                  for (s, d), (n, m) in alone_rates.items()]
    elapsed = time.time() - started
    lines = ["# Onset accuracy", "",
             f"`.venv/bin/python benchmarks/onset_accuracy.py --queries {args.queries}` ({elapsed:.0f} s, one CPU "
             "thread). Latency = detected onset frame - the first word's frame (80 ms frames; negative = early); "
             f"a miss = nothing in [-{EARLY}, +{LATE}) frames. Detectors ungated, default settings. See the script's "
             "docstring for the recordings; all but fdb are espeak-ng speech.", "",
             "| set | onset source | onsets | median | p90 | early | misses | unmatched fires |",
             "|---|---|---|---|---|---|---|---|"]
    fmt = lambda v: "n/a" if v is None else f"{v:g}"  # noqa: E731
    for r in rows:
        lines.append(f"| {r['set']} | {r['detector']} | {r['n']} | {fmt(r['median'])} | {fmt(r['p90'])} | "
                     f"{r['early']} | {r['misses']} | {fmt(r['unmatched_fires'])} |")
    lines += ["", "False triggers on model speech alone (no user):", "",
              "| set | detector | fires | minutes | per minute |", "|---|---|---|---|---|"]
    lines += [f"| {r['set']} | {r['detector']} | {r['fires']} | {r['minutes']} | {r['per_minute']} |" for r in alone_rows]
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "model_speech_alone": alone_rows,
                                                    "queries": args.queries, "seconds": elapsed}, indent=1))
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
