"""ZBB renderings: the benchmark's speech from any TTS engine or from recordings of people, with timings.

A rendering is a folder with queries/<id>.<ext>, buffered/<id>.<ext> ("Um, excuse me, <query>" spoken in
one go), contexts/<slug>.<ext> (the prompts that get the model talking first) and manifest.json
(version zbb-audio-2): the engine, voice, version and sample rate, and per file its text, SHA-256, the
first-word onset and the speech end (seconds in the file, detected from the audio's energy and checked
against the engine's own phone / word timings where it gives them). `zbb run --audio DIR` plays any such
folder; `validate_rendering` checks one before a model loads.

Built renderings are cut to their speech (2 ms before the onset, 20 ms after the end), stored as OGG
Vorbis at the engine's rate (at most 24 kHz). Recordings are kept as they are; the loaders in zbb.build
cut them to the manifest's onset and end.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duplex_steer.audio import SAMPLE_RATE, resample
from duplex_steer.speech.dialogues import FixtureError, read_json, sha256_file, write_json, write_ogg
from duplex_steer.speech.timing import Rendering, check_time, detect_speech_bounds
from duplex_steer.speech.tts import TTS, tts_settings

from .build import (
    AUDIO_VERSIONS,
    BUFFER_TEXT,
    ITEMS_PATH,
    LEAD_S,
    MANIFEST_NAME,
    TAIL_S,
    ZBB_DIR,
    buffered_text,
    context_slug,
    read_items,
)

RENDERING_VERSION = "zbb-audio-2"
RENDERINGS_DIR = ZBB_DIR / "renderings"
MAX_STORED_RATE = SAMPLE_RATE
RECORDING_SUFFIXES = (".wav", ".flac", ".ogg")
KIND_FOLDERS = {"query": "queries", "context": "contexts", "buffered": "buffered"}


def rendering_name(tts: TTS) -> str:
    """Default folder name of a rendering: '<engine>-<voice>' (e.g. 'flite-slt')."""
    voice = getattr(tts, "voice", None)
    return f"{tts.name}-{voice}" if voice else tts.name


def wanted_texts(items: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(kind, id, text) of every file a rendering of `items` holds: queries, contexts, buffered queries."""
    out = [("query", it["id"], it["text"]) for it in items]
    out += [("context", context_slug(c), c) for c in dict.fromkeys(it["context"] for it in items)]
    out += [("buffered", it["id"], buffered_text(it["text"])) for it in items]
    return out


def render_all(tts: TTS, texts: list[str]) -> list[Rendering]:
    """Every text spoken by `tts`: in one go where the engine can (`render_many`), with timings where it gives them."""
    if hasattr(tts, "render_many"):
        return list(tts.render_many(texts))
    if hasattr(tts, "render"):
        return [tts.render(t) for t in texts]
    return [Rendering(tts.synthesize(t), SAMPLE_RATE) for t in texts]  # a plain TTS: detected times only


def _shift(window: tuple[float, float] | None, by: float) -> tuple[float, float] | None:
    return None if window is None else (window[0] - by, window[1] - by)


def timing_fields(wav: np.ndarray, sample_rate: int, where: str, onset_window: tuple[float, float] | None = None,
                  end_window: tuple[float, float] | None = None) -> dict[str, Any]:
    """The manifest's timing of one file: first-word onset and speech end (detected, checked)."""
    bounds = detect_speech_bounds(wav, sample_rate)
    if bounds is None:
        raise FixtureError(f"{where}: no speech found (the audio is silent)")
    onset, end = check_time(bounds[0], onset_window), check_time(bounds[1], end_window)
    return {"first_word_onset_s": onset["s"], "speech_end_s": end["s"],
            "onset_check": onset["check"], "end_check": end["check"],
            "engine_onset_window_s": onset["engine_window_s"], "engine_end_window_s": end["engine_window_s"]}  # fmt: skip


def build_rendering(tts: TTS, out_dir: str | Path, items_path: str | Path = ITEMS_PATH,
                    item_ids: Sequence[str] | None = None, limit: int | None = None) -> dict[str, Any]:
    """Speak every query, context and buffered query of the items with `tts` into `out_dir`; return the manifest.

    Each text is one utterance (never word by word unless the engine is configured so). The audio is cut
    to its speech, stored as OGG, read back, and its onset and end detected on what was stored and checked
    against the engine's timings; entries whose check failed are listed under "flagged".
    """
    out = Path(out_dir)
    items = select_items(read_items(items_path), item_ids, limit)
    wanted = wanted_texts(items)
    renderings = render_all(tts, [text for _, _, text in wanted])
    buffer_words = len(BUFFER_TEXT.split())
    entries, rates = [], set()
    for (kind, key, text), r in zip(wanted, renderings, strict=True):
        rate = min(r.sample_rate, MAX_STORED_RATE)
        audio = resample(np.asarray(r.audio, np.float32), r.sample_rate, rate)
        bounds = detect_speech_bounds(audio, rate)
        if bounds is None:
            raise FixtureError(f"{tts.name} rendered silence for {text!r}")
        start = max(0, int(round((bounds[0] - LEAD_S) * rate)))
        stop = min(len(audio), int(round((bounds[1] + TAIL_S) * rate)))
        rel = f"{KIND_FOLDERS[kind]}/{key}.ogg"
        sha = write_ogg(out / rel, audio[start:stop], rate)
        stored = _read_native(out / rel)[0]
        offset = start / rate
        entry = {"kind": kind, "id": key, "text": text, "file": rel, "sample_rate": rate,
                 "duration_s": round(len(stored) / rate, 6), "n_samples": len(stored), "sha256": sha,
                 **timing_fields(stored, rate, rel, _shift(r.onset_window_s, offset), _shift(r.end_window_s, offset))}  # fmt: skip
        if kind == "buffered" and r.word_starts_s and len(r.word_starts_s) == len(text.split()):
            entry["subject_onset_s"] = round(r.word_starts_s[buffer_words] - offset, 4)  # engine word timing
        if kind == "query":
            entry["context_id"] = next(context_slug(it["context"]) for it in items if it["id"] == key)
        entries.append(entry)
        rates.add(rate)
    _remove_stale(out, {out / e["file"] for e in entries})
    manifest = _manifest(tts.name, getattr(tts, "voice", None), tts_settings(tts), rates, entries,
                         "synthesized sentence by sentence; times detected from the stored audio's energy and "
                         "checked against the engine's phone/word timings")
    write_json(out / MANIFEST_NAME, manifest)
    return manifest


def select_items(items: list[dict[str, Any]], item_ids: Sequence[str] | None, limit: int | None) -> list[dict]:
    """The items by id (in bank order) and/or the first `limit`; unknown ids are a FixtureError."""
    if item_ids:
        known = {it["id"] for it in items}
        unknown = [i for i in item_ids if i not in known]
        if unknown:
            raise FixtureError(f"unknown item ids {unknown[:5]}; `zbb items` prints the bank's path")
        items = [it for it in items if it["id"] in set(item_ids)]
    return items[:limit] if limit else items


def _manifest(engine: str, voice: str | None, settings: dict[str, Any], rates: set[int],
              entries: list[dict[str, Any]], note: str) -> dict[str, Any]:
    flagged = [e["file"] for e in entries if "flagged" in (e["onset_check"], e["end_check"])]
    return {"version": RENDERING_VERSION, "tts": engine, "voice": voice, "tts_settings": settings,
            "sample_rate": max(rates) if len(rates) == 1 else sorted(rates), "note": note,
            "flagged": flagged, "entries": entries}  # fmt: skip


def _read_native(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        wav, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt files
        raise FixtureError(f"could not read {path} as audio ({exc}); give WAV, FLAC or OGG files") from None
    return wav.mean(axis=1), int(rate)


def _remove_stale(out: Path, keep: set[Path]) -> None:
    for folder in KIND_FOLDERS.values():
        for stale in out.glob(f"{folder}/*.ogg"):
            if stale not in keep:
                stale.unlink()


def _find_recording(folder: Path, key: str) -> Path | None:
    for suffix in RECORDING_SUFFIXES:
        if (folder / f"{key}{suffix}").is_file():
            return folder / f"{key}{suffix}"
    return None


def manifest_from_recordings(rec_dir: str | Path, items_path: str | Path = ITEMS_PATH, speaker: str = "",
                             item_ids: Sequence[str] | None = None, limit: int | None = None) -> dict[str, Any]:
    """Write `rec_dir`/manifest.json for a folder of recordings of people; return it.

    Expects queries/<id>.wav|flac|ogg and contexts/<slug>.* for every item (and optionally
    buffered/<id>.*); the files are left as they are, their onsets and ends detected (unchecked: no engine).
    Raises FixtureError listing what is missing or silent.
    """
    rec = Path(rec_dir)
    items = select_items(read_items(items_path), item_ids, limit)
    entries, rates, missing, silent = [], set(), [], []
    for kind, key, text in wanted_texts(items):
        path = _find_recording(rec / KIND_FOLDERS[kind], key)
        if path is None:
            if kind != "buffered":
                missing.append(f"{KIND_FOLDERS[kind]}/{key}.wav")
            continue
        wav, rate = _read_native(path)
        rel = path.relative_to(rec).as_posix()
        try:
            timing = timing_fields(wav, rate, rel)
        except FixtureError:
            silent.append(rel)
            continue
        entry = {"kind": kind, "id": key, "text": text, "file": rel, "sample_rate": rate,
                 "duration_s": round(len(wav) / rate, 6), "n_samples": len(wav), "sha256": sha256_file(path),
                 **timing}  # fmt: skip
        if kind == "query":
            entry["context_id"] = next(context_slug(it["context"]) for it in items if it["id"] == key)
        entries.append(entry)
        rates.add(rate)
    if missing or silent:
        parts = ([f"{len(missing)} recording(s) missing: {', '.join(missing[:6])}" + (" ..." if len(missing) > 6 else "")]
                 if missing else []) + ([f"silent: {', '.join(silent[:6])}"] if silent else [])  # fmt: skip
        raise FixtureError(f"{rec}: {'; '.join(parts)} (see docs/zbb.md, 'Recording the queries')")
    manifest = _manifest("recording", speaker or None, {"speaker": speaker}, rates, entries,
                         "recordings of a person; times detected from the audio's energy (no engine to check them)")
    write_json(rec / MANIFEST_NAME, manifest)
    return manifest


def validate_rendering(audio_dir: str | Path, items: Sequence[dict[str, Any]], kinds: Sequence[str]) -> dict[str, Any]:
    """Check a rendering folder has every file a run needs, intact; return its manifest.

    `kinds`: "query", "context", "buffered" (what the run's conditions play). Raises one FixtureError that
    names every missing, changed or unlisted file (the first few) and how to fix it. Cheap: no audio decoded.
    """
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise FixtureError(f"rendering folder not found: {audio_dir}")
    manifest = read_json(audio_dir / MANIFEST_NAME)
    if manifest.get("version") not in AUDIO_VERSIONS or not isinstance(manifest.get("entries"), list):
        raise FixtureError(f"{audio_dir / MANIFEST_NAME}: not a ZBB rendering manifest (version "
                           f"{manifest.get('version')!r}; expected one of {', '.join(AUDIO_VERSIONS)})")
    by_key = {(e.get("kind"), e.get("id")): e for e in manifest["entries"]}
    problems = []
    for kind, key, text in wanted_texts(items):
        if kind not in kinds:
            continue
        entry = by_key.get((kind, key))
        if entry is None:
            problems.append(f"no {kind} {key!r} in the manifest")
        elif entry.get("text") != text:
            problems.append(f"{entry.get('file')}: text {entry.get('text')!r}, the item says {text!r}")
        elif not (audio_dir / entry["file"]).is_file():
            problems.append(f"missing file {entry['file']}")
        elif sha256_file(audio_dir / entry["file"]) != entry.get("sha256"):
            problems.append(f"{entry['file']} changed since the manifest was written")
    if problems:
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise FixtureError(f"rendering {audio_dir} is not usable: {'; '.join(problems[:5])}{more}. Rebuild it "
                           "with `zbb build --tts ENGINE --voice V --out DIR` or, for recordings, "
                           "`zbb build --from-recordings DIR`")
    return manifest
