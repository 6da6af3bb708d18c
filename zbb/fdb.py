"""`zbb import-fdb`: run a model on Full-Duplex-Bench (FDB) user-interruption items; TOR and latency.

FDB's user-interruption set is a folder of item folders, each with `input.wav` (the user's channel,
any sample rate) and `interrupt.json` = [{"context", "interrupt", "timestamp": [start_s, end_s]}].
The recording IS the user's stream (no ZBB scenario placement): each input is played through the
model full duplex (`converse`, batched), and for every (item, condition) the output folder gets

    OUT/<condition>/<item>/output.wav   the model's channel, time-aligned with input.wav: same length,
                                        same sample rate (what FDB's own evaluation reads)
    OUT/<condition>/<item>/words.json   {"text", "chunks": [{"text", "timestamp": [s, e]}]}: the model's
                                        words, timed by frame index (or by the ASR with --asr-model)
    OUT/<condition>/<item>/input.wav, interrupt.json   copies, so OUT/<condition> is an FDB folder

plus results.jsonl (one line per finished item, flushed: a rerun resumes) and the report: take-over
rate and latency as FDB defines them (`zbb.scoring`), through the ZBB report code, with correctness and
IWOR marked not applicable. Conditions: `interrupt` (plain), and with a vector `interrupt+steer` (the
perception vector from the frame where the interruption starts: an oracle onset, interrupt.json's start
snapped to the first speech inside its span by `duplex_steer.steering.snap`, the annotation kept beside
it in every record), `interrupt+random` (a random direction, same time) and `interrupt+mistimed` (from
the annotated end).
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from duplex_steer import __version__
from duplex_steer.audio import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, resample, save_audio
from duplex_steer.engine.noise import key_for
from duplex_steer.engine.prompt import describe_prompt
from duplex_steer.errors import DuplexSteerError
from duplex_steer.model_args import torch_dtype
from duplex_steer.recording_limits import MAX_SECONDS, check_length, context_warning
from duplex_steer.steering.snap import SnappedOnset, SnapRule, snap_onset

from .header import resolved_run_settings, run_caveat, run_header
from .report import METRICS, RATE_METRICS, render_markdown, summarize, write_items_csv
from .results import RESULTS, append_records, read_results, repair_torn_tail
from .run_config import RANDOM_CONTROL, RunConfig
from .run_folder import RunError
from .runner import Runner
from .scenario import Scenario, ScenarioRules
from .scoring import latency, take_over
from .work import slices

FDB_CONDITIONS = ("interrupt", "interrupt+steer", "interrupt+random", "interrupt+mistimed")
TITLE = "Full-Duplex-Bench user interruption (imported)"


class FDBError(DuplexSteerError, ValueError):
    """A folder that is not a Full-Duplex-Bench user-interruption set, or a bad item in it."""


@dataclass
class FDBItem:
    """One item folder: where the user interrupts (seconds of input.wav) and the recording's format."""

    name: str
    folder: Path
    interrupt_start_s: float
    interrupt_end_s: float
    sample_rate: int
    samples: int
    onset: SnappedOnset | None = None  # the annotated start snapped to speech (`snap_item_onsets`)

    @property
    def input(self) -> Path:
        return self.folder / "input.wav"


def snap_item_onsets(items: Sequence[FDBItem]) -> None:
    """Set each item's oracle onset: interrupt.json's start moved to the first speech inside its span."""
    import soundfile as sf

    for item in items:
        wav, rate = sf.read(str(item.input), dtype="float32", always_2d=True)
        item.onset = snap_onset(wav.mean(1), rate, item.interrupt_start_s, item.interrupt_end_s)


def _natural(path: Path) -> tuple[int, int, str]:
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def find_items(root: str | Path) -> list[FDBItem]:
    """The item folders under `root` (or `root` itself if it is one), in natural order ("2" before "10")."""
    import soundfile as sf

    root = Path(root)
    if not root.is_dir():
        raise FDBError(f"Full-Duplex-Bench folder not found: {root}")
    if (root / "input.wav").is_file():
        folders = [root]
    else:
        folders = sorted((p for p in root.iterdir() if p.is_dir() and (p / "input.wav").is_file()), key=_natural)
    if not folders:
        raise FDBError(f"{root} holds no item folders (subfolders with input.wav and interrupt.json)")
    items = []
    for folder in folders:
        spec = folder / "interrupt.json"
        if not spec.is_file():
            raise FDBError(f"{folder} has input.wav but no interrupt.json")
        try:
            entries = json.loads(spec.read_text(encoding="utf-8"))
            start, end = (float(t) for t in entries[0]["timestamp"])
        except (json.JSONDecodeError, LookupError, TypeError, ValueError):
            raise FDBError(f"{spec}: expected [{{\"context\", \"interrupt\", \"timestamp\": [start_s, end_s]}}]") from None
        if not 0 <= start <= end:
            raise FDBError(f"{spec}: timestamp [{start}, {end}] must satisfy 0 <= start <= end")
        try:
            info = sf.info(str(folder / "input.wav"))
        except Exception as exc:  # soundfile raises several types for unreadable files
            raise FDBError(f"could not read {folder / 'input.wav'} ({exc})") from None
        items.append(FDBItem(folder.name, folder, start, end, int(info.samplerate), int(info.frames)))
    return items


def text_chunks(model, tokens: Sequence[int]) -> list[dict[str, Any]]:
    """Timed words of a per-frame text stream (frame i starts at i x 80 ms), as FDB's ASR chunks.

    The whole recording is one scenario window, so `Scenario.word_chunks` does the work.
    """
    window = Scenario({}, "", 0, np.zeros(0, np.float32), np.zeros(0, np.float32), ScenarioRules(),
                      onset_frame=0, end_frame=len(tokens), text={f: int(t) for f, t in enumerate(tokens)})
    return window.word_chunks(model.tokenizer)


def _fit_length(wav: np.ndarray, samples: int) -> np.ndarray:
    return wav[:samples] if len(wav) >= samples else np.pad(wav, (0, samples - len(wav)))


def _onset(item: FDBItem, condition: str) -> int | None:
    """Recording frame where steering starts: the frame of the interruption's first speech (the snapped
    oracle onset), or (mistimed) the frame after the annotated end."""
    if condition in ("interrupt+steer", "interrupt+random"):
        return item.onset.frame if item.onset is not None else int(item.interrupt_start_s * FRAME_RATE)
    if condition == "interrupt+mistimed":
        return math.ceil(item.interrupt_end_s * FRAME_RATE)
    return None


def _select(items: list[FDBItem], config: RunConfig) -> list[FDBItem]:
    if config.items:
        names = {it.name for it in items}
        missing = [n for n in config.items if n not in names]
        if missing:
            raise FDBError(f"unknown item folders {missing[:5]}")
        items = [it for it in items if it.name in set(config.items)]
    return items[: config.limit] if config.limit else items


def _check_config(config: RunConfig) -> None:
    config.validate()
    bad = [c for c in config.conditions if c not in FDB_CONDITIONS]
    if bad:
        raise RunError(f"conditions {bad} do not apply to FDB items (every item is an interruption); "
                       f"choose from {', '.join(FDB_CONDITIONS)}")


def import_fdb(root: str | Path, out_dir: str | Path, config: RunConfig, model=None, prompt=None,
               progress: bool = True, max_seconds: float | None = MAX_SECONDS) -> Path:
    """Run (or resume) FDB items through the model for each condition; returns the results file.

    `config` is a ZBB RunConfig: model, conditions, vector / layer / alpha / span / schedule, greedy,
    seed, batch_size, items (folder names), limit and asr_model apply; the scenario rules do not.
    The conversation start is `prompt` when given (a `ConversationPrompt`), else the one `config.voice` /
    `config.text_prompt` name (PersonaPlex's default voice and role for PersonaPlex-shaped models, as in
    `zbb run`); it is recorded in config.json. Sampling noise is keyed to (seed, item), so an item's
    conditions share it and no result depends on batching. Recordings longer than `max_seconds` (None: no
    limit) are refused before the model loads.
    """
    from duplex_steer import load

    _check_config(config)
    items = _select(find_items(root), config)
    for item in items:
        check_length(item.samples / item.sample_rate, max_seconds, str(item.input))
    snap_item_onsets(items)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = {"fdb": {"source": str(Path(root).resolve()), "run": config.to_json(),
                     "oracle_onset": f"snapped to speech: {SnapRule().describe()}",
                     "role": getattr(prompt, "role", None) or config.text_prompt,
                     "voice": str(prompt.voice) if prompt and prompt.voice else config.voice,
                     "random_control": RANDOM_CONTROL},
             "toolkit_version": __version__}
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        if json.loads(cfg_path.read_text()).get("fdb") != saved["fdb"]:
            raise RunError(f"{out} holds an import with another configuration; resume it with the same options "
                           "or choose a new --out")
    else:
        cfg_path.write_text(json.dumps(saved, indent=1))
    results = out / RESULTS
    repair_torn_tail(results)
    done = {(r["id"], r["condition"]) for r in read_results(results)}
    work = [(it, c) for it in items for c in config.conditions if (it.name, c) not in done]
    if not work:
        return results
    model = model or load(config.model, device=config.device, dtype=torch_dtype(config.dtype))
    runner = Runner(model, config)  # the steering set-up (vector, layer, random control), prompt and ASR of `zbb run`
    prompt = prompt if prompt is not None else runner.prompt
    record_model_facts(cfg_path, runner, items, prompt)
    records = (record for batch in slices(work, config.batch_size) for record in _play(runner, batch, out, prompt))
    append_records(results, records, len(work), f"fdb {model.source}" if progress else None)
    return results


def context_note(model, items: Sequence[FDBItem]) -> str | None:
    """One line when some recordings outlast the model's attention window (None when all fit)."""
    frames = {it.name: math.ceil(it.samples / it.sample_rate * FRAME_RATE) for it in items}
    longest = max(frames, key=frames.get, default=None)
    warning = context_warning(frames[longest], model, f"item {longest}") if longest is not None else None
    if warning is None:
        return None
    over = sum(f > model.spec.context for f in frames.values())
    return f"{warning} ({over} of {len(frames)} items outlast it)"


def record_model_facts(cfg_path: Path, runner: Runner, items: Sequence[FDBItem], prompt=None) -> None:
    """Add to config.json what the loaded model decides: its caveat, the steering settings as resolved, the
    conversation start and whether recordings outlast its context; print the context warning."""
    note = context_note(runner.model, items)
    if note:
        print(note, file=sys.stderr)
    saved = json.loads(cfg_path.read_text())
    facts = {"caveat": runner.model.caveat, "context_warning": note, "prompt": describe_prompt(prompt),
             "steering": runner.settings.to_json() if runner.settings is not None else None}
    if any(saved.get(k) != v for k, v in facts.items()):
        cfg_path.write_text(json.dumps({**saved, **facts}, indent=1))


def _play(runner: Runner, batch: list[tuple[FDBItem, str]], out: Path, prompt) -> Iterator[dict[str, Any]]:
    """One batch through `converse`, steered per item where its condition says; yield its records."""
    from duplex_steer.engine.conversation import converse
    from duplex_steer.steering import row_controllers

    model, c = runner.model, runner.config
    names = [it.name for it, _ in batch]
    onsets = [_onset(it, cond) for it, cond in batch]
    rows = [(cond, item.name, 0) for item, cond in batch]  # (condition, item, repetition)
    controllers, handle = row_controllers(model, runner.row_steerings(rows))

    def trigger(session, frame: int) -> None:
        for b in range(len(batch)):
            if onsets[b] == frame and controllers[b] is not None:
                controllers[b].trigger(b, session.frame)

    try:
        keys = [key_for("fdb", int(c.seed), n) for n in names]  # an item's conditions share its noise, in any batch
        session = model.session(batch_size=len(batch), greedy=c.greedy, noise_keys=None if c.greedy else keys)
        res = converse(model, [it.input for it, _ in batch], greedy=c.greedy, prompt=prompt,
                       before_frame=trigger, session=session)
    finally:
        handle.remove()
    for b, (item, cond) in enumerate(batch):
        n24 = res.input_samples[b]
        tokens = res.text_tokens[b, : -(-n24 // FRAME_SAMPLES)].tolist()
        wave24 = res.model_audio[b, :n24]
        chunks, source, transcript = text_chunks(model, tokens), "text-stream", None
        if runner.asr is not None:
            heard = runner.asr.transcribe(wave24, SAMPLE_RATE)
            transcript = heard.text
            if heard.chunks is not None:
                chunks, source = heard.chunks, f"asr:{runner.asr.name}"
        folder = out / cond / item.name
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("input.wav", "interrupt.json"):
            shutil.copyfile(item.folder / name, folder / name)
        text = transcript if transcript is not None else " ".join(ch["text"] for ch in chunks)
        (folder / "words.json").write_text(json.dumps({"text": text, "chunks": chunks, "source": source}, indent=1))
        save_audio(folder / "output.wav", _fit_length(resample(wave24, SAMPLE_RATE, item.sample_rate), item.samples),
                   item.sample_rate)
        end = item.interrupt_end_s
        ctl = controllers[b]
        record = {
            "id": item.name, "condition": cond, "repetition": 0,
            "reply": " ".join(ch["text"] for ch in chunks if ch["timestamp"][1] > end),
            "correct": None, "iwor": None, "tor": take_over(chunks, end), "latency": latency(chunks, end),
            "interrupt_start_s": item.interrupt_start_s, "interrupt_end_s": end, "word_timing": source,
            "snapped_onset_s": item.onset.onset_s if item.onset else None,
            "oracle_onset": item.onset.to_json() if item.onset else None,
            "onset_frame": onsets[b], "steer_onsets": ctl.onsets[b] if ctl else [],
            "steered_frames": ctl.steered_frames(b) if ctl else [], "chunks": chunks,
            "output": str((folder / "output.wav").relative_to(out)), "model": model.source,
        }
        if transcript is not None:
            record["transcript"] = transcript
        yield record


def report_fdb(out_dir: str | Path, caveat: str | None = None) -> dict[str, Any]:
    """items.csv, report.json and report.md of an import: TOR and latency; correctness and IWOR n/a (null)."""
    out = Path(out_dir)
    records = {(r["id"], r["condition"]): r for r in read_results(out / RESULTS)}
    if not records:
        raise RunError(f"no results in {out}; run `zbb import-fdb DIR --out {out}` first")
    cfg = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else {}
    run_cfg = resolved_run_settings({"config": cfg.get("fdb", {}).get("run", {}), "steering": cfg.get("steering"),
                                     "random_control": cfg.get("fdb", {}).get("random_control")})
    caveat = caveat if caveat is not None else run_caveat({"config": run_cfg, "caveat": cfg.get("caveat")})
    rows = list(records.values())
    summary = summarize(rows)
    for stats in summary["conditions"].values():  # ZBB's measures do not apply to FDB items: null, shown n/a
        stats["metrics"] = {m: None if m in RATE_METRICS else stats["metrics"].get(m) for m in METRICS
                            if m in RATE_METRICS or m in stats["metrics"]}
    timing = sorted({r.get("word_timing", "text-stream") for r in rows})
    shifts = {r["id"]: r["oracle_onset"]["shift_s"] for r in rows if r.get("oracle_onset")}
    unsnapped = sorted({r["id"] for r in rows if r.get("oracle_onset") and not r["oracle_onset"]["found"]})
    header = run_header(run_cfg, model=next((r["model"] for r in rows if r.get("model")), None))
    report = {"title": TITLE, "caveat": caveat, "settings": header, **summary, "not_applicable": list(RATE_METRICS),
              "word_timing": timing, **cfg}
    write_items_csv(rows, out / "items.csv")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    note = ("\nTake-over rate and latency as Full-Duplex-Bench defines them (zbb.scoring); word times from "
            f"{', '.join(timing)} (a text-stream word starts at its frame index x 80 ms). Correctness and IWOR are ZBB measures: not "
            "applicable (n/a). FDB's relevance rating (its LLM judge) is not computed here: run FDB's own evaluation "
            f"on {out}/<condition>/.\n")
    if shifts:
        note += ("\nOnset source: oracle, interrupt.json's start snapped to the first speech inside its span "
                 f"(median shift {float(np.median(list(shifts.values()))):+.2f} s over {len(shifts)} items; "
                 f"annotation kept where no speech was found: {', '.join(unsnapped) or 'none'}); per item in "
                 "items.csv (interrupt_start_s, snapped_onset_s).\n")
    if cfg.get("context_warning"):
        note += f"\nContext: {cfg['context_warning']}.\n"
    (out / "report.md").write_text(render_markdown(summary, caveat=caveat, title=TITLE, header=header) + note, encoding="utf-8")
    return report


__all__ = ["FDBError", "FDBItem", "FDB_CONDITIONS", "find_items", "import_fdb", "report_fdb", "snap_item_onsets",
           "text_chunks"]
