"""Zero-Buffer Benchmark audio: every query and every context prompt of zbb/items.jsonl as an OGG file.

Queries are named by item id (queries/<id>.ogg), context prompts by a slug of their text
(contexts/tell-me-about-music.ogg). Leading silence is trimmed so the first word, the subject, starts
2 ms after the first sample (within the 10 ms the benchmark asks for): spliced into a conversation, the
file's first sample is the interruption onset. zbb/audio/manifest.json lists every file with its text,
duration and SHA-256. Rebuild with `python -m zbb.build`. This default rendering is espeak-ng word by word (the
organism heard espeak-ng's voices speak whole sentences in training, never these files); sentence-level
renderings by other engines and recordings of people are built by zbb.rendering (`zbb build --tts ...`), and the loaders here play either kind.

This module reads zbb/items.jsonl by path and imports nothing else from zbb/. The loaders and the manifest's
format live in `duplex_steer.speech.zbb_audio` (the toolkit reads the benchmark's speech too) and are
re-exported here.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech.dialogues import FixtureError, read_json, seconds, verify_file, write_json, write_ogg
from duplex_steer.speech.tts import ONSET_THRESHOLD, TTS, default_tts, trim_silence, tts_settings
from duplex_steer.speech.zbb_audio import (  # the loaders and the manifest's format: duplex_steer reads them too
    AUDIO_VERSION,
    AUDIO_VERSIONS,
    BUFFER_TEXT,
    LEAD_S,
    MANIFEST_NAME,
    REBUILD_HINT,
    TAIL_S,
    buffered_text,
    context_slug,
    load_buffered_query_audio,
    load_context_audio,
    load_query_audio,
)
from duplex_steer.speech.zbb_audio import read_items as read_item_file

ZBB_DIR = Path(__file__).resolve().parent
ITEMS_PATH = ZBB_DIR / "items.jsonl"
AUDIO_DIR = ZBB_DIR / "audio"


def read_items(items_path: str | Path = ITEMS_PATH) -> list[dict[str, Any]]:
    """The benchmark items (one JSON object per non-empty line); each needs 'id', 'text' and 'context'."""
    return read_item_file(items_path)


def _entry(kind: str, entry_id: str, text: str, rel_file: str, out_dir: Path, tts: TTS) -> dict[str, Any]:
    wav = trim_silence(tts.synthesize(text))
    sha = write_ogg(out_dir / rel_file, wav)
    return {"kind": kind, "id": entry_id, "text": text, "file": rel_file,
            "duration_s": seconds(len(wav)), "n_samples": len(wav), "sha256": sha}  # fmt: skip


def build_audio(
    items_path: str | Path = ITEMS_PATH, out_dir: str | Path = AUDIO_DIR, tts: TTS | None = None
) -> dict[str, Any]:
    """Synthesize every item's query and every distinct context to `out_dir`; write and return the manifest.

    OGG files in out_dir/queries and out_dir/contexts that no longer belong to an item are removed.
    """
    tts = tts or default_tts()
    out_dir = Path(out_dir)
    items = read_items(items_path)
    entries = []
    for item in items:
        entry = _entry("query", item["id"], item["text"], f"queries/{item['id']}.ogg", out_dir, tts)
        entry["context_id"] = context_slug(item["context"])
        entries.append(entry)
    contexts = dict.fromkeys(item["context"] for item in items)  # distinct, in first-use order
    for text in contexts:
        slug = context_slug(text)
        entries.append(_entry("context", slug, text, f"contexts/{slug}.ogg", out_dir, tts))
    for item in items:
        entries.append(_entry("buffered", item["id"], buffered_text(item["text"]), f"buffered/{item['id']}.ogg",
                              out_dir, tts))
    wanted = {out_dir / e["file"] for e in entries}
    for stale in [*out_dir.glob("queries/*.ogg"), *out_dir.glob("contexts/*.ogg"), *out_dir.glob("buffered/*.ogg"),
                  *out_dir.glob("buffer.ogg")]:
        if stale not in wanted:
            stale.unlink()
    manifest = {
        "version": AUDIO_VERSION,
        "tts": tts.name,
        "tts_settings": tts_settings(tts),
        "sample_rate": SAMPLE_RATE,
        "onset_threshold": ONSET_THRESHOLD,
        "note": "speech starts 2 ms after the first sample of every file (|amplitude| >= onset_threshold)",
        "entries": entries,
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def verify_audio(audio_dir: str | Path = AUDIO_DIR, items_path: str | Path | None = None) -> dict[str, Any]:
    """Check every manifest file exists and matches its SHA-256; return the manifest.

    With `items_path`, also check that every item's query and context has audio with the item's text.
    Raises FixtureError naming the first bad file.
    """
    audio_dir = Path(audio_dir)
    manifest = read_json(audio_dir / MANIFEST_NAME)
    if manifest.get("version") not in AUDIO_VERSIONS:
        raise FixtureError(
            f"{audio_dir / MANIFEST_NAME}: version {manifest.get('version')!r}, expected one of {AUDIO_VERSIONS}"
        )
    for entry in manifest["entries"]:
        verify_file(audio_dir / entry["file"], entry["sha256"], REBUILD_HINT)
    if items_path is not None:
        by_key = {(e["kind"], e["id"]): e for e in manifest["entries"]}
        for item in read_items(items_path):
            for kind, key, text in (("query", item["id"], item["text"]),
                                    ("context", context_slug(item["context"]), item["context"])):  # fmt: skip
                entry = by_key.get((kind, key))
                if entry is None or entry["text"] != text:
                    raise FixtureError(
                        f"{audio_dir}: no {kind} audio for {key!r} with text {text!r}; {REBUILD_HINT}"
                    )
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    """python -m zbb.build [--items PATH] [--out DIR]: regenerate the benchmark audio."""
    parser = argparse.ArgumentParser(description="Synthesize the ZBB query and context audio.")
    parser.add_argument("--items", type=Path, default=ITEMS_PATH)
    parser.add_argument("--out", type=Path, default=AUDIO_DIR)
    args = parser.parse_args(argv)
    manifest = build_audio(args.items, args.out)
    kinds = [e["kind"] for e in manifest["entries"]]
    print(f"{kinds.count('query')} queries, {kinds.count('context')} contexts -> {args.out}")


__all__ = ["AUDIO_DIR", "AUDIO_VERSION", "AUDIO_VERSIONS", "BUFFER_TEXT", "ITEMS_PATH", "LEAD_S", "MANIFEST_NAME",
           "REBUILD_HINT", "TAIL_S", "ZBB_DIR", "build_audio", "buffered_text", "context_slug",
           "load_buffered_query_audio", "load_context_audio", "load_query_audio", "main", "read_items", "verify_audio"]

if __name__ == "__main__":
    main()
