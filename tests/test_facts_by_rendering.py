"""scripts/facts_by_rendering.py: ZBB's questions as rendering folders of other audio, and the paired summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.speech.zbb_audio import load_query_audio
from tests.conftest import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "facts_by_rendering.py"
FLITE = Path(__file__).resolve().parents[1] / "zbb" / "renderings" / "flite-slt"


@pytest.fixture(scope="module")
def script():
    return load_file_module(SCRIPT, "facts_by_rendering")


def test_written_folders_are_renderings_a_run_reads_lossless_or_as_zbb_stores_speech(script, tmp_path) -> None:
    ids = ["penguins-true", "penguins-false"]
    queries = {i: load_query_audio(FLITE, i) for i in ids}
    flac = script.write_recordings(tmp_path / "flac", FLITE, queries)
    ogg = script.write_recordings(tmp_path / "ogg", FLITE, queries, ogg_rate=16000)
    for folder, rate in ((flac, SAMPLE_RATE), (ogg, 16000)):
        manifest = json.loads((folder / "manifest.json").read_text())
        entries = {e["id"]: e for e in manifest["entries"] if e["kind"] == "query"}
        assert sorted(entries) == sorted(ids) and {e["sample_rate"] for e in entries.values()} == {rate}
        assert any(e["kind"] == "context" for e in manifest["entries"])
    stored, rate = sf.read(str(flac / "queries" / "penguins-true.flac"), dtype="float32")
    assert rate == SAMPLE_RATE and np.abs(stored - queries["penguins-true"]).max() < 1e-4  # 16-bit FLAC
    assert load_query_audio(ogg, "penguins-true").shape[0] == pytest.approx(len(queries["penguins-true"]), rel=0.05)


def test_summary_counts_each_rendering_and_pairs_it_with_zbbs(script) -> None:
    def recs(correct):
        return [{"id": f"i{k}", "condition": "no_interrupt", "correct": c, "iwor": 1} for k, c in enumerate(correct)]

    rows = {r["rendering"]: r for r in script.summarize({"zbb": recs([1, 0, 0, 1]), "training": recs([1, 1, 1, 0])})}
    assert rows["zbb"]["correct"][0] == 2 and rows["training"]["correct"][0] == 3 and rows["zbb"]["n"] == 4
    diff, gained, lost, p = rows["training"]["correct_vs_zbb"]
    assert (diff, gained, lost) == (0.25, 2, 1) and p == pytest.approx(1.0)
    assert "correct_vs_zbb" not in rows["zbb"]
    table = script.render_table(list(rows.values()))
    assert "| training | 4 | 0.75" in table and "+0.25 (2 / 1, p 1)" in table
