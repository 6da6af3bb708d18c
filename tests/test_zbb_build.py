"""The committed ZBB audio covers every item, matches its manifest, and starts speaking at once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech.dialogues import FixtureError
from duplex_steer.speech.tts import speech_onset
from zbb import build

TEN_MS = SAMPLE_RATE // 100

pytestmark = pytest.mark.skipif(not build.ITEMS_PATH.is_file(), reason="zbb/items.jsonl not present yet")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return build.verify_audio(build.AUDIO_DIR, build.ITEMS_PATH)


def test_manifest_covers_every_item_and_context(manifest: dict) -> None:
    items = build.read_items()
    queries = {e["id"]: e for e in manifest["entries"] if e["kind"] == "query"}
    contexts = {e["id"]: e for e in manifest["entries"] if e["kind"] == "context"}
    assert set(queries) == {item["id"] for item in items}
    assert set(contexts) == {build.context_slug(item["context"]) for item in items}
    for item in items:
        assert queries[item["id"]]["text"] == item["text"]
        assert queries[item["id"]]["context_id"] == build.context_slug(item["context"])
    assert manifest["sample_rate"] == SAMPLE_RATE and manifest["version"] == build.AUDIO_VERSION


def test_every_file_starts_speaking_within_10ms(manifest: dict) -> None:
    for entry in manifest["entries"]:
        wav, sr = sf.read(str(build.AUDIO_DIR / entry["file"]), dtype="float32")
        assert sr == SAMPLE_RATE and wav.ndim == 1
        assert len(wav) == entry["n_samples"] == round(entry["duration_s"] * SAMPLE_RATE)
        onset = speech_onset(wav)
        assert onset is not None and onset <= TEN_MS, f"{entry['file']}: speech starts at sample {onset}"


def test_audio_folder_stays_small() -> None:
    # queries, contexts and buffered queries (each "Um, excuse me," + query in one go): about 4.1 MB
    assert sum(p.stat().st_size for p in build.AUDIO_DIR.rglob("*") if p.is_file()) < 4_500_000


def test_load_query_and_context_audio() -> None:
    item = build.read_items()[0]
    query = build.load_query_audio(None, item["id"])
    assert query.dtype == np.float32 and speech_onset(query) <= TEN_MS
    context = build.load_context_audio(build.AUDIO_DIR, item["context"])
    assert len(context) > SAMPLE_RATE // 2
    with pytest.raises(KeyError, match="no query audio 'no-such-item'"):
        build.load_query_audio(None, "no-such-item")


def test_corrupted_copy_fails_verification_naming_the_file(tmp_path: Path) -> None:
    copy = tmp_path / "audio"
    shutil.copytree(build.AUDIO_DIR, copy)
    victim = copy / "queries" / "penguins-false.ogg"
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(FixtureError, match=r"checksum mismatch for .*penguins-false\.ogg"):
        build.verify_audio(copy)
    with pytest.raises(FixtureError, match=r"penguins-false\.ogg"):
        build.load_query_audio(copy, "penguins-false")
    victim.unlink()
    with pytest.raises(FixtureError, match=r"missing: .*penguins-false\.ogg"):
        build.verify_audio(copy)


class _ToneTTS:
    """A stand-in TTS: 0.2 s of silence, then a tone whose length follows the text (no espeak needed)."""

    name = "tone"

    def synthesize(self, text: str) -> np.ndarray:
        n = 200 * len(text)
        tone = 0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / SAMPLE_RATE)
        return np.concatenate([np.zeros(4800), tone]).astype(np.float32)


def test_build_audio_with_a_plugged_in_tts(tmp_path: Path) -> None:
    items = [
        {"id": "a-true", "text": "Apples, they grow on trees, right?", "context": "Tell me about art."},
        {"id": "a-false", "text": "Apples, they grow in the sea, right?", "context": "Tell me about art."},
    ]
    items_path = tmp_path / "items.jsonl"
    items_path.write_text("\n".join(json.dumps(i) for i in items) + "\n")
    out = tmp_path / "audio"
    (out / "queries").mkdir(parents=True)
    (out / "queries" / "stale.ogg").write_bytes(b"old")
    manifest = build.build_audio(items_path, out, _ToneTTS())
    assert [(e["kind"], e["id"]) for e in manifest["entries"]] == [
        ("query", "a-true"), ("query", "a-false"), ("context", "tell-me-about-art"),
        ("buffered", "a-true"), ("buffered", "a-false"),
    ]  # fmt: skip
    assert not (out / "queries" / "stale.ogg").exists()
    assert build.verify_audio(out, items_path) == manifest
    assert speech_onset(build.load_query_audio(out, "a-false")) <= TEN_MS
    # a buffered query: "Um, excuse me," then the query, spoken in one go
    entry = next(e for e in manifest["entries"] if e["kind"] == "buffered" and e["id"] == "a-false")
    assert entry["text"] == "Um, excuse me, Apples, they grow in the sea, right?"
    assert len(build.load_buffered_query_audio(out, "a-false")) > len(build.load_query_audio(out, "a-false"))
    items_path.write_text(items_path.read_text() + json.dumps({**items[0], "id": "new"}) + "\n")
    with pytest.raises(FixtureError, match="no query audio for 'new'"):
        build.verify_audio(out, items_path)
