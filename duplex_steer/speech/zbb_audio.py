"""The Zero-Buffer Benchmark's speech, read as data: its item bank and rendering folders.

The benchmark (`zbb`) writes these files (`zbb build`, `zbb.rendering`); the toolkit reads them too: the
organism's world and training speech, its interruption example and the paired scenarios of `duplex-steer
analyze --pairs` are made of the benchmark's queries. Reading them here, through the data's location
(`duplex_steer.resources`) rather than by importing `zbb`, keeps the layers one-way: `zbb` builds on
`duplex_steer`, never the reverse.

A rendering folder holds manifest.json (zbb-audio-1: files already cut; zbb-audio-2: per file its
first-word onset and speech end) and the files it lists, each checked against its SHA-256 when loaded.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import SAMPLE_RATE, load_audio
from ..resources import ZBB_PACKAGE, package_dir, zbb_items_path
from .dialogues import FixtureError, read_json, verify_file

MANIFEST_NAME = "manifest.json"
AUDIO_VERSION = "zbb-audio-1"
# zbb-audio-2 (zbb.rendering): any engine or recordings; per file its rate, first-word onset and speech end.
AUDIO_VERSIONS = (AUDIO_VERSION, "zbb-audio-2")
# Audio kept before a manifest's first-word onset and after its speech end when a file is loaded.
LEAD_S, TAIL_S = 0.002, 0.02
REBUILD_HINT = "rebuild with: python -m zbb.build"
# The filler a buffered interruption starts with ("buffered" conditions). Each item's buffered query is
# spoken in one go ("Um, excuse me, Penguins, they ...") and stored as buffered/<id>.ogg.
BUFFER_TEXT = "Um, excuse me,"


def default_audio_dir() -> Path:
    """The committed default rendering (zbb/audio: espeak-ng en-us word by word)."""
    return package_dir(ZBB_PACKAGE) / "audio"


def read_items(items_path: str | Path | None = None) -> list[dict[str, Any]]:
    """The benchmark items (one JSON object per non-empty line); each needs 'id', 'text' and 'context'.
    None: the committed item bank."""
    items_path = Path(items_path) if items_path is not None else zbb_items_path()
    if not items_path.is_file():
        raise FixtureError(f"ZBB items file not found: {items_path}")
    items = []
    for number, line in enumerate(items_path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        item = json.loads(line)
        missing = {"id", "text", "context"} - item.keys()
        if missing:
            raise FixtureError(f"{items_path}:{number}: item lacks {sorted(missing)}")
        items.append(item)
    return items


def context_slug(text: str) -> str:
    """File-name slug of a context prompt: 'Tell me about music.' -> 'tell-me-about-music'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def buffered_text(text: str) -> str:
    """The buffered form of a query: 'Um, excuse me, Penguins, they live in icy places, right?'."""
    return f"{BUFFER_TEXT} {text}"


def load_entry(audio_dir: Path, kind: str, entry_id: str) -> np.ndarray:
    """A manifest entry's audio (checksum-verified) at 24 kHz, cut to its speech when the manifest times it.

    zbb-audio-2 entries carry first_word_onset_s and speech_end_s: the audio is cut from LEAD_S before the
    onset to TAIL_S after the end (recordings keep their silences on disk), so its first sample is the
    interruption onset and its length ends with the speech. zbb-audio-1 files are already cut.
    """
    manifest = read_json(audio_dir / MANIFEST_NAME)
    for entry in manifest["entries"]:
        if entry["kind"] == kind and entry["id"] == entry_id:
            path = audio_dir / entry["file"]
            verify_file(path, entry["sha256"], REBUILD_HINT)
            wav = load_audio(path)
            if "first_word_onset_s" in entry and "speech_end_s" in entry:
                start = max(0, int(round((entry["first_word_onset_s"] - LEAD_S) * SAMPLE_RATE)))
                wav = wav[start : int(round((entry["speech_end_s"] + TAIL_S) * SAMPLE_RATE))]
            return wav
    known = sorted(e["id"] for e in manifest["entries"] if e["kind"] == kind)
    raise KeyError(f"no {kind} audio {entry_id!r} in {audio_dir}; known: {', '.join(known[:6])}, ...")


def load_query_audio(audio_dir: str | Path | None, item_id: str) -> np.ndarray:
    """The spoken query of item `item_id` (checksum-verified): mono float32, 24 kHz, speech from the start.

    audio_dir None means the committed zbb/audio.
    """
    return load_entry(Path(audio_dir or default_audio_dir()), "query", item_id)


def load_buffered_query_audio(audio_dir: str | Path | None, item_id: str) -> np.ndarray:
    """The item's query spoken after "Um, excuse me,": the subject no longer starts the interruption."""
    return load_entry(Path(audio_dir or default_audio_dir()), "buffered", item_id)


def load_context_audio(audio_dir: str | Path | None, context: str) -> np.ndarray:
    """The spoken context prompt, given its text ('Tell me about music.') or its slug; None = zbb/audio."""
    return load_entry(Path(audio_dir or default_audio_dir()), "context", context_slug(context))


__all__ = ["AUDIO_VERSION", "AUDIO_VERSIONS", "BUFFER_TEXT", "LEAD_S", "MANIFEST_NAME", "REBUILD_HINT", "TAIL_S",
           "buffered_text", "context_slug", "default_audio_dir", "load_buffered_query_audio", "load_context_audio",
           "load_entry", "load_query_audio", "read_items"]
