"""zbb import-fdb: FDB folders in, time-aligned output.wav and words out, TOR/latency report, resume, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

import duplex_steer.engine.conversation as conversation
from duplex_steer.steering import PerceptionVector
from tests.conftest import fixture_dir
from zbb.cli import main
from zbb.fdb import FDBError, find_items, import_fdb, report_fdb
from zbb.runner import RunConfig, RunError, read_results
from zbb.scoring import latency, take_over


@pytest.fixture(scope="module")
def imported(tmp_path_factory, tiny):
    """The real FDB example item (28 s at 16 kHz), plain, steered and random-steered in one batch."""
    root = fixture_dir("fdb-user-interruption-example")
    vec = PerceptionVector({2: torch.randn(64, generator=torch.Generator().manual_seed(0))},
                           {"model": tiny.fingerprint(), "method": "test"})
    config = RunConfig(model="tiny", conditions=["interrupt", "interrupt+steer", "interrupt+random"], greedy=True,
                       vector=str(vec.save(tmp_path_factory.mktemp("vec") / "v.safetensors")))
    out = tmp_path_factory.mktemp("fdb")
    import_fdb(root, out, config, model=tiny, progress=False)
    return root, out, config, report_fdb(out)


def test_outputs_are_time_aligned_with_the_input(imported):
    root, out, _, _ = imported
    source = sf.info(str(root / "1" / "input.wav"))
    for cond in ("interrupt", "interrupt+steer"):
        folder = out / cond / "1"
        info = sf.info(str(folder / "output.wav"))
        assert (info.samplerate, info.frames, info.channels) == (16_000, source.frames, 1)
        assert json.loads((folder / "interrupt.json").read_text())[0]["timestamp"][1] == 13.144  # a complete FDB item
        assert (folder / "input.wav").read_bytes() == (root / "1" / "input.wav").read_bytes()
        words = json.loads((folder / "words.json").read_text())
        assert words["source"] == "text-stream" and words["chunks"]
        for chunk in words["chunks"]:  # word starts are frame indices x 80 ms
            assert chunk["timestamp"][0] / 0.08 == pytest.approx(round(chunk["timestamp"][0] / 0.08))
            assert 0 <= chunk["timestamp"][0] < source.duration
        assert np.abs(sf.read(str(folder / "output.wav"))[0]).max() > 0


def test_records_steering_and_fdb_metrics(imported):
    _, out, _, _ = imported
    recs = {r["condition"]: r for r in read_results(out / "results.jsonl")}
    assert set(recs) == {"interrupt", "interrupt+steer", "interrupt+random"}
    assert recs["interrupt+random"]["steered_frames"] == [138, 139, 140]  # its own direction, the same frames
    steer = recs["interrupt+steer"]
    # interrupt.json says 10.53 s (frame 131), the recording is silent until 11.10 s: the oracle is snapped
    assert steer["onset_frame"] == 138 and steer["snapped_onset_s"] == pytest.approx(11.10, abs=0.02)
    assert steer["interrupt_start_s"] == 10.530666666666667 and steer["oracle_onset"]["annotated_frame"] == 131
    assert steer["oracle_onset"]["found"] and steer["oracle_onset"]["frame"] == 138
    assert steer["steered_frames"] == [138, 139, 140] and recs["interrupt"]["steered_frames"] == []
    for r in recs.values():
        assert r["interrupt_end_s"] == 13.144 and r["correct"] is None and r["iwor"] is None
        assert r["tor"] == take_over(r["chunks"], 13.144) and r["latency"] == latency(r["chunks"], 13.144)
        assert r["reply"] == " ".join(c["text"] for c in r["chunks"] if c["timestamp"][1] > 13.144)


def test_report_has_tor_and_latency_and_marks_zbb_metrics_not_applicable(imported):
    _, out, _, report = imported
    assert json.loads((out / "report.json").read_text())["conditions"] == report["conditions"]
    for stats in report["conditions"].values():
        assert stats["metrics"]["correct"] is None and stats["metrics"]["iwor"] is None
        assert stats["metrics"]["tor"]["n"] == 1
    assert report["not_applicable"] == ["correct", "iwor"] and report["fdb"]["run"]["model"] == "tiny"
    md = (out / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| interrupt |"))
    assert row.split("|")[3:5] == [" n/a ", " n/a "] and "take-over rate" in md and "pipeline check" in md
    assert "- **Random control:** a random direction of the vector's norm per (item, repetition)" in md
    assert "Onset source: oracle, interrupt.json's start snapped" in md and "median shift +0.57 s over 1 items" in md
    assert (out / "items.csv").read_text().startswith("id,condition,correct,iwor")


def test_rerun_resumes_without_playing_anything(imported, monkeypatch, tiny):
    root, out, config, _ = imported
    monkeypatch.setattr(conversation, "converse", lambda *a, **k: pytest.fail("nothing left to play"))
    import_fdb(root, out, config, model=tiny, progress=False)
    with pytest.raises(RunError, match="another configuration"):
        import_fdb(root, out, RunConfig(model="tiny", conditions=["interrupt"]), model=tiny, progress=False)


def _item(folder, seconds: float, rate: int, start: float, end: float) -> None:
    folder.mkdir(parents=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(str(folder / "input.wav"), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    (folder / "interrupt.json").write_text(json.dumps([{"context": "c", "interrupt": "i", "timestamp": [start, end]}]))


def test_cli_any_rate_natural_order_and_torn_line(tmp_path, capsys):
    root = tmp_path / "fdb"
    _item(root / "10", 1.0, 44_100, 0.3, 0.6)
    _item(root / "2", 1.3, 8_000, 0.2, 0.5)
    assert [it.name for it in find_items(root)] == ["2", "10"]
    out = tmp_path / "out"
    assert main(["import-fdb", str(root), "--out", str(out), "--greedy", "--batch-size", "1"]) == 0
    assert "take-over rate" in capsys.readouterr().out
    for name, rate, seconds in (("2", 8_000, 1.3), ("10", 44_100, 1.0)):
        info = sf.info(str(out / "interrupt" / name / "output.wav"))
        assert (info.samplerate, info.frames) == (rate, int(seconds * rate))
    results = out / "results.jsonl"
    first, second = results.read_text().splitlines()
    results.write_text(first + "\n" + second[:15])  # a crash mid-write
    assert main(["import-fdb", str(root), "--out", str(out), "--greedy", "--batch-size", "1", "--no-report"]) == 0
    assert [r["id"] for r in read_results(results)] == ["2", "10"]
    assert results.read_text().splitlines()[1] == second  # greedy: the redone item is the same


def test_bad_folders_and_conditions(tmp_path, capsys):
    with pytest.raises(FDBError, match="not found"):
        find_items(tmp_path / "missing")
    with pytest.raises(FDBError, match="no item folders"):
        find_items(tmp_path)
    _item(tmp_path / "1", 0.5, 16_000, 0.1, 0.2)
    (tmp_path / "1" / "interrupt.json").write_text('{"timestamp": 3}')
    with pytest.raises(FDBError, match="interrupt.json: expected"):
        find_items(tmp_path)
    with pytest.raises(RunError, match="do not apply to FDB"):
        import_fdb(tmp_path, tmp_path / "o", RunConfig(conditions=["no_interrupt"]))
    with pytest.raises(RunError, match="--vector"):
        import_fdb(tmp_path, tmp_path / "o", RunConfig(conditions=["interrupt+steer"]))
    assert main(["import-fdb", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("zbb: error: Full-Duplex-Bench folder not found")


def test_sampled_imports_do_not_depend_on_batching_and_record_the_prompt(tmp_path, tiny):
    """Noise keyed to (seed, item): an item replies the same alone or batched with others; the role given
    with --text-prompt starts every conversation and is recorded."""
    root = tmp_path / "fdb"
    for name, start in (("1", 0.3), ("2", 0.4), ("3", 0.2)):
        _item(root / name, 1.2, 16_000, start, start + 0.3)
    replies = {}
    for batch in (1, 3):
        out = tmp_path / f"b{batch}"
        config = RunConfig(model="tiny", conditions=["interrupt"], batch_size=batch, seed=4, text_prompt="w5 w6")
        import_fdb(root, out, config, model=tiny, progress=False)
        replies[batch] = {r["id"]: r["reply"] for r in read_results(out / "results.jsonl")}
        saved = json.loads((out / "config.json").read_text())
        assert saved["prompt"]["text_prompt"] == "w5 w6" and saved["fdb"]["role"] == "w5 w6"
    assert replies[1] == replies[3] and len(replies[1]) == 3
