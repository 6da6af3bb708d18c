"""ZBB renderings: build with any engine, manifest round trip, recordings of people, validation, runs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech.dialogues import FixtureError
from duplex_steer.speech.timing import Rendering
from zbb import build, rendering
from zbb.cli import main as zbb_main
from zbb.runner import RunConfig

TEN_MS = SAMPLE_RATE // 100
RATE = 16_000
LEAD_S = 0.3  # engine silence before the speech


class _BuzzTTS:
    """A stand-in engine: 0.3 s of silence, then a buzz whose length follows the text, with exact timings."""

    name = "buzz"
    voice = "low"

    def render(self, text: str) -> Rendering:
        n = int(0.05 * len(text) * RATE)
        t = np.arange(n) / RATE
        buzz = (0.3 * np.sign(np.sin(2 * np.pi * 150 * t))).astype(np.float32)
        audio = np.concatenate([np.zeros(int(LEAD_S * RATE), np.float32), buzz, np.zeros(RATE // 10, np.float32)])
        end = LEAD_S + n / RATE
        return Rendering(audio, RATE, (LEAD_S - 0.05, LEAD_S + 0.05), (end - 0.05, end), None)

    def synthesize(self, text: str) -> np.ndarray:
        raise AssertionError("a rendering uses render()")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("r") / "buzz-low"
    return out, rendering.build_rendering(_BuzzTTS(), out, limit=2)


def test_build_writes_every_kind_with_checked_onsets(built) -> None:
    out, manifest = built
    items = build.read_items()[:2]
    assert manifest["version"] == rendering.RENDERING_VERSION and manifest["tts"] == "buzz"
    assert manifest["voice"] == "low" and manifest["sample_rate"] == RATE and manifest["flagged"] == []
    assert [(e["kind"], e["id"]) for e in manifest["entries"]] == [
        ("query", items[0]["id"]), ("query", items[1]["id"]), ("context", build.context_slug(items[0]["context"])),
        ("buffered", items[0]["id"]), ("buffered", items[1]["id"])]  # fmt: skip
    for e in manifest["entries"]:
        wav, rate = sf.read(out / e["file"], dtype="float32")
        assert rate == RATE == e["sample_rate"] and len(wav) == e["n_samples"]
        assert e["onset_check"] == e["end_check"] == "ok"
        assert e["first_word_onset_s"] <= 0.005  # cut 2 ms before the detected onset
        expected_speech = 0.05 * len(e["text"])
        assert e["speech_end_s"] - e["first_word_onset_s"] == pytest.approx(expected_speech, abs=0.01)
        assert e["engine_onset_window_s"][0] == pytest.approx(-0.05 + 0.002, abs=0.001)  # shifted by the cut
    assert manifest["entries"][3]["text"] == f"{build.BUFFER_TEXT} {items[0]['text']}"


def test_manifest_round_trip_and_loading(built) -> None:
    out, manifest = built
    items = build.read_items()[:2]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert rendering.validate_rendering(out, items, ["query", "context", "buffered"]) == manifest
    assert build.verify_audio(out) == manifest
    query = build.load_query_audio(out, items[0]["id"])
    assert np.flatnonzero(np.abs(query) > 0.1)[0] <= TEN_MS
    assert len(query) / SAMPLE_RATE == pytest.approx(0.05 * len(items[0]["text"]) + 0.022, abs=0.01)
    assert len(build.load_buffered_query_audio(out, items[0]["id"])) > len(query)
    assert len(build.load_context_audio(out, items[0]["context"])) > 0


def _recordings(root: Path, items: list[dict], lead_s: float = 0.7, skip: str | None = None) -> Path:
    """Recordings 'of a person': 44.1 kHz WAVs with a known silence (and a noise floor) before the speech."""
    rng = np.random.default_rng(0)
    for kind, key, text in rendering.wanted_texts(items):
        if kind == "buffered" or key == skip:
            continue
        n_speech = int(0.05 * len(text) * 44_100)
        speech = 0.4 * np.sin(2 * np.pi * 200 * np.arange(n_speech) / 44_100)
        wav = np.concatenate([np.zeros(int(lead_s * 44_100)), speech, np.zeros(22_050)])
        wav += 0.001 * rng.standard_normal(len(wav))
        path = root / rendering.KIND_FOLDERS[kind] / f"{key}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wav.astype(np.float32), 44_100)
    return root


def test_recordings_get_a_manifest_with_detected_onsets(tmp_path) -> None:
    items = build.read_items()[:2]
    rec = _recordings(tmp_path / "me", items)
    assert zbb_main(["build", "--from-recordings", str(rec), "--speaker", "tester", "--limit", "2"]) == 0
    manifest = json.loads((rec / "manifest.json").read_text())
    assert manifest["tts"] == "recording" and manifest["voice"] == "tester"
    assert {e["kind"] for e in manifest["entries"]} == {"query", "context"}  # buffered ones are optional
    for e in manifest["entries"]:
        assert e["first_word_onset_s"] == pytest.approx(0.7, abs=0.006) and e["onset_check"] == "unchecked"
    query = build.load_query_audio(rec, items[0]["id"])  # cut to the speech: the onset is the first sample
    assert np.flatnonzero(np.abs(query) > 0.05)[0] <= TEN_MS
    assert len(query) / SAMPLE_RATE == pytest.approx(0.05 * len(items[0]["text"]) + 0.022, abs=0.01)
    rendering.validate_rendering(rec, items, ["query", "context"])
    with pytest.raises(FixtureError, match="no buffered"):
        rendering.validate_rendering(rec, items, ["query", "context", "buffered"])


def test_missing_recordings_are_one_error_listing_them(tmp_path, capsys) -> None:
    items = build.read_items()[:2]
    rec = _recordings(tmp_path / "me", items, skip=items[1]["id"])
    assert zbb_main(["build", "--from-recordings", str(rec), "--limit", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"queries/{items[1]['id']}.wav" in err and "recording(s) missing" in err


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-manifest", "manifest not found"),
        ("bad-version", "not a ZBB rendering manifest"),
        ("missing-file", r"missing file queries/.*\.ogg"),
        ("changed-file", r"queries/.*\.ogg changed since the manifest"),
        ("wrong-text", "the item says"),
        ("no-folder", "rendering folder not found"),
    ],
)
def test_a_malformed_rendering_is_one_clear_error_before_the_model_loads(built, tmp_path, capsys, damage,
                                                                          message) -> None:
    src, _ = built
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    manifest_path = bad / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    query = bad / manifest["entries"][0]["file"]
    if damage == "no-manifest":
        manifest_path.unlink()
    elif damage == "bad-version":
        manifest_path.write_text(json.dumps({**manifest, "version": "something-else"}))
    elif damage == "missing-file":
        query.unlink()
    elif damage == "changed-file":
        query.write_bytes(query.read_bytes()[:-50])
    elif damage == "wrong-text":
        manifest["entries"][0]["text"] = "Something else, right?"
        manifest_path.write_text(json.dumps(manifest))
    else:
        shutil.rmtree(bad)
    with pytest.raises(FixtureError, match=message):
        RunConfig(conditions=["interrupt"], limit=2, audio=str(bad)).validate()
    # the CLI: one line, exit 2, and no model is loaded (the model name does not even exist)
    assert zbb_main(["run", "--model", "no/such-model", "--audio", str(bad), "--limit", "2", "--conditions",
                     "interrupt", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("zbb: error:") and re.search(message, err)


def test_runs_needing_buffered_audio_name_it(built) -> None:
    out, _ = built
    assert RunConfig(conditions=["buffered"], limit=2, audio=str(out)).validate() is None
    with pytest.raises(FixtureError, match="no query"):  # item 3 was not rendered
        RunConfig(conditions=["interrupt"], limit=3, audio=str(out)).validate()


def test_build_refuses_to_overwrite_the_default_rendering(capsys) -> None:
    assert zbb_main(["build", "--tts", "flite", "--out", str(build.AUDIO_DIR)]) == 2
    assert "default rendering" in capsys.readouterr().err


def test_zbb_run_plays_a_rendering_on_the_tiny_model(built, tmp_path) -> None:
    out, _ = built
    run_dir = tmp_path / "run"
    code = zbb_main(["run", "--model", "tiny", "--audio", str(out), "--limit", "1", "--conditions", "interrupt",
                     "buffered", "--greedy", "--max-wait", "6", "--reply-frames", "4", "--interrupt-after", "2",
                     "--out", str(run_dir)])
    assert code == 0
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["condition"] for r in records) == ["buffered", "interrupt"]
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["audio"] == str(out)
    by_condition = {r["condition"]: r for r in records}
    # the query lasts as long as the buzz rendering's speech: its frames decide where the reply window starts
    item = build.read_items()[0]
    speech_frames = -(-len(build.load_query_audio(out, item["id"])) // 1920)
    interrupt = by_condition["interrupt"]
    assert interrupt["query_end_frame"] - interrupt["onset_frame"] == speech_frames


@pytest.mark.parametrize(("name", "engine"), [("festival-slt-hts", "festival"), ("flite-slt", "flite"),
                                              ("espeak-ng-en-us", "espeak-ng")])
def test_committed_renderings_are_complete_small_and_unflagged(name: str, engine: str) -> None:
    folder = rendering.RENDERINGS_DIR / name
    manifest = rendering.validate_rendering(folder, build.read_items(), ["query", "context", "buffered"])
    assert manifest["flagged"] == [] and len(manifest["entries"]) == 225  # 100 queries, 25 contexts, 100 buffered
    end_check = "unchecked" if engine == "espeak-ng" else "ok"  # espeak-ng's library times words' starts only
    assert all(e["onset_check"] == "ok" and e["end_check"] == end_check for e in manifest["entries"])
    assert manifest["tts"] == engine and manifest["tts_settings"]["voice"] == manifest["voice"]
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 4_500_000


def _bank(path: Path) -> Path:
    """A two-subject bank in ZBB's format whose subjects are not ZBB's (development items)."""
    lines = []
    for subject, topic in (("tigers", "music"), ("grapes", "rivers")):
        for truth, description in ((True, "they hunt other animals"), (False, "they live in the desert")):
            lines.append({"version": "zbb-1", "id": f"{subject}-{'true' if truth else 'false'}", "subject": subject,
                          "truth": truth, "description": description,
                          "text": f"{subject.capitalize()}, {description}, right?", "aliases": [subject],
                          "topic": topic, "context": f"Tell me about {topic}."})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_another_item_bank_is_rendered_played_and_labelled_not_zbb(tmp_path) -> None:
    bank = _bank(tmp_path / "dev.jsonl")
    out = tmp_path / "dev-buzz"
    manifest = rendering.build_rendering(_BuzzTTS(), out, bank)
    assert sorted(e["id"] for e in manifest["entries"] if e["kind"] == "query") == [
        "grapes-false", "grapes-true", "tigers-false", "tigers-true"]
    # ZBB's items are not in it, and the bank's items are not in a ZBB rendering: both refused before a model loads
    with pytest.raises(FixtureError, match="no query"):
        RunConfig(conditions=["interrupt"], limit=1, audio=str(out)).validate()
    with pytest.raises(FixtureError, match="no query"):
        RunConfig(conditions=["interrupt"], item_bank=str(bank), audio=str(rendering.RENDERINGS_DIR / "flite-slt")).validate()
    run_dir = tmp_path / "run"
    code = zbb_main(["run", "--model", "tiny", "--item-bank", str(bank), "--audio", str(out), "--conditions",
                     "interrupt", "--greedy", "--max-wait", "6", "--reply-frames", "4", "--interrupt-after", "2",
                     "--out", str(run_dir)])
    assert code == 0
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["grapes-false", "grapes-true", "tigers-false", "tigers-true"]
    assert json.loads((run_dir / "config.json").read_text())["config"]["item_bank"] == str(bank)
    report = (run_dir / "report.md").read_text()
    assert f"- **Items:** `{bank}`" in report and "not ZBB's item bank" in report


def test_bad_item_banks_are_one_error_before_any_model_loads(tmp_path, capsys) -> None:
    bank = _bank(tmp_path / "dev.jsonl")
    run = ["run", "--model", "no/such-model", "--conditions", "interrupt", "--out", str(tmp_path / "run")]
    assert zbb_main([*run, "--item-bank", str(bank)]) == 2  # no audio for its items
    assert "render them with `zbb build --tts ENGINE --item-bank" in capsys.readouterr().err
    assert zbb_main([*run, "--item-bank", str(tmp_path / "missing.jsonl"), "--audio", "x"]) == 2
    assert "file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.jsonl"
    broken.write_text(bank.read_text().replace('"tigers-false"', '"tigers-wrong"'))
    assert zbb_main([*run, "--item-bank", str(broken), "--audio", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.jsonl:2" in err and "should be 'tigers-false'" in err
    assert zbb_main(["build", "--tts", "flite", "--item-bank", str(bank)]) == 2  # no --out: not into ZBB's folder
    assert "give --out DIR" in capsys.readouterr().err
