"""The committed turn-by-turn dialogue set and demo recording match their manifests and their promises."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex_steer.audio import SAMPLE_RATE, load_audio
from duplex_steer.speech import dialogues as dlg
from duplex_steer.speech.tts import ONSET_THRESHOLD, EspeakTTS, speech_onset
from zbb import ITEMS_PATH

EDGE = int(0.02 * SAMPLE_RATE)  # codec pre-echo margin around each turn: 20 ms


@pytest.fixture(scope="module")
def dialogues() -> list[dlg.Dialogue]:
    return dlg.load_dialogues()


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((dlg.DIALOGUES_DIR / dlg.MANIFEST_NAME).read_text())


def _zbb_items() -> list[dict]:
    if not ITEMS_PATH.is_file():
        pytest.skip(f"{ITEMS_PATH} not present")
    return [json.loads(line) for line in ITEMS_PATH.read_text().splitlines() if line.strip()]


def test_manifest_header(manifest: dict) -> None:
    assert manifest["version"] == dlg.MANIFEST_VERSION
    assert manifest["sample_rate"] == SAMPLE_RATE
    assert manifest["tts"] == "espeak-ng" and manifest["tts_settings"]["word_by_word"] is True
    assert manifest["n_turns"] == sum(len(d["turns"]) for d in manifest["dialogues"])


def test_set_has_at_least_100_turns_and_matches_the_code(dialogues: list[dlg.Dialogue]) -> None:
    assert sum(len(d.turns) for d in dialogues) >= 100
    assert [tuple(t.text for t in d.turns) for d in dialogues] == [tuple(ts) for ts in dlg.DIALOGUE_TURNS]


def test_folder_stays_small() -> None:
    total = sum(p.stat().st_size for p in dlg.DIALOGUES_DIR.iterdir())
    assert total < 2_000_000


def test_audio_matches_manifest_timings_and_is_silent_between_turns(
    dialogues: list[dlg.Dialogue], manifest: dict
) -> None:
    manifest_n_samples = {d["id"]: d["n_samples"] for d in manifest["dialogues"]}
    for d in dialogues:
        info = sf.info(str(d.path))
        assert (info.samplerate, info.channels) == (SAMPLE_RATE, 1)
        assert (info.format, info.subtype) == ("OGG", "VORBIS")
        assert info.frames == round(d.duration_s * SAMPLE_RATE) == manifest_n_samples[d.id]
        wav = d.audio()
        bounds = [(round(t.start_s * SAMPLE_RATE), round(t.end_s * SAMPLE_RATE)) for t in d.turns]
        assert bounds[0][0] >= round(0.45 * SAMPLE_RATE)  # lead-in silence
        edges = [0, *[b for pair in bounds for b in pair], len(wav)]
        for gap_start, gap_end in zip(edges[::2], edges[1::2], strict=True):
            gap = wav[gap_start + EDGE * (gap_start > 0) : gap_end - EDGE]
            assert np.abs(gap).max() < 0.01, f"{d.id}: sound in the gap {gap_start / SAMPLE_RATE:.2f} s"
        for (start, end), turn in zip(bounds, d.turns, strict=True):
            assert 0 < start < end <= len(wav)
            speech = wav[start:end]
            assert np.sqrt(np.mean(speech**2)) > 0.05, f"{d.id}: quiet turn {turn.text!r}"
            onset_shift = (
                speech_onset(wav[start - EDGE : end]) - EDGE
            )  # the codec blurs quiet onsets a little
            assert abs(onset_shift) <= 240, f"{d.id}: onset moved {onset_shift} samples for {turn.text!r}"
        gaps = [b[0] - a[1] for a, b in zip(bounds, bounds[1:], strict=False)] + [len(wav) - bounds[-1][1]]
        assert min(gaps) >= 3 * SAMPLE_RATE  # room for the model to answer


def test_user_speaking_mask_covers_the_turns(dialogues: list[dlg.Dialogue]) -> None:
    d = dialogues[0]
    mask = d.user_speaking()
    assert len(mask) == round(d.duration_s * 12.5)
    speech_s = sum(t.end_s - t.start_s for t in d.turns)
    assert speech_s * 12.5 <= mask.sum() <= speech_s * 12.5 + 2 * len(d.turns)


def test_no_turn_reuses_a_zbb_subject_or_context() -> None:
    items = _zbb_items()
    aliases = {a.lower() for item in items for a in [item["subject"], *item.get("aliases", [])]}
    contexts = {item["context"].lower() for item in items}
    descriptions = {item["description"].lower() for item in items}
    for turns in dlg.DIALOGUE_TURNS:
        for text in turns:
            words = set(re.findall(r"[a-z']+", text.lower()))
            assert not words & aliases, f"{text!r} mentions ZBB subject {words & aliases}"
            assert text.lower() not in contexts, f"{text!r} is a ZBB context prompt"
            assert not any(desc in text.lower() for desc in descriptions), f"{text!r} holds a ZBB fact"


def test_corrupted_copy_fails_with_the_file_named(tmp_path: Path) -> None:
    copy = tmp_path / "dialogues"
    shutil.copytree(dlg.DIALOGUES_DIR, copy)
    victim = copy / "dialogue_03.ogg"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert len(dlg.load_dialogues(copy, verify=False)) == len(dlg.DIALOGUE_TURNS)
    with pytest.raises(dlg.FixtureError, match=r"checksum mismatch for .*dialogue_03\.ogg"):
        dlg.load_dialogues(copy)
    victim.unlink()
    with pytest.raises(dlg.FixtureError, match=r"missing: .*dialogue_03\.ogg"):
        dlg.load_dialogues(copy)


def test_ogg_encoding_is_reproducible() -> None:
    wav = np.sin(np.linspace(0, 400, SAMPLE_RATE)).astype(np.float32) * 0.3
    assert dlg.encode_ogg(wav) == dlg.encode_ogg(wav)


def test_interruption_example() -> None:
    wav, info = dlg.load_interruption_example()
    question, interruption = info["turns"]
    assert (question["role"], question["text"]) == ("question", dlg.EXAMPLE_QUESTION)
    assert interruption["role"] == "interruption" and info["interruption_onset_s"] == interruption["start_s"]
    assert interruption["start_s"] - question["end_s"] >= 3.5  # the model has been talking for a while
    assert info["duration_s"] - interruption["end_s"] >= 2.5
    assert len(wav) == round(info["duration_s"] * SAMPLE_RATE)
    onset = round(interruption["start_s"] * SAMPLE_RATE)
    assert np.abs(wav[round(question["end_s"] * SAMPLE_RATE) + EDGE : onset - EDGE]).max() < 0.01
    assert np.abs(wav[onset : onset + 240]).max() >= ONSET_THRESHOLD
    items = {item["id"]: item for item in _zbb_items()}
    assert items[interruption["zbb_item"]]["text"] == interruption["text"]


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng binary not on PATH")
def test_rebuilding_one_dialogue_reproduces_the_committed_one(tmp_path: Path, manifest: dict) -> None:
    tts = EspeakTTS(**{k: v for k, v in manifest["tts_settings"].items() if k != "espeak_version"})
    if tts.settings()["espeak_version"] != manifest["tts_settings"]["espeak_version"]:
        pytest.skip("a different espeak-ng version is installed")
    rebuilt = dlg.build_dialogues(tmp_path, tts, dialogues=dlg.DIALOGUE_TURNS[:1])
    assert rebuilt["dialogues"][0]["turns"] == manifest["dialogues"][0]["turns"]
    fresh = load_audio(tmp_path / "dialogue_00.ogg")
    committed = load_audio(dlg.DIALOGUES_DIR / "dialogue_00.ogg")
    assert fresh.shape == committed.shape
    # the same speech (and the same bytes, given the same libvorbis)
    assert np.sqrt(np.mean((fresh - committed) ** 2)) < 0.01
