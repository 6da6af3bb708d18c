"""scripts/no_interrupt_misses.py: no_interrupt's scored records split by talking over the question and by IWOR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "no_interrupt_misses.py"


@pytest.fixture(scope="module")
def misses():
    return load_file_module(SCRIPT, "no_interrupt_misses")


def _record(i: int, iwor: int, said: str, waited: int, speaking: bool = False, condition: str = "no_interrupt"):
    return {"id": f"item{i}", "condition": condition, "repetition": 0, "correct": iwor, "iwor": iwor,
            "said_during_query": said, "waited_frames": waited, "model_speaking_at_onset": speaking}


def test_misses_are_split_by_talking_and_the_unscored_are_left_out(misses, tmp_path):
    records = [_record(0, 1, "", 30), _record(1, 0, "", 40),  # heard; missed while silent
               _record(2, 0, "people study music", 45),  # at the wait limit (45 frames in this run), missed
               _record(3, 1, "every day", 20),  # talked over it, heard all the same
               _record(4, 0, "i think", 30),  # resumed talking as the question began, missed
               _record(5, 0, "", 30, speaking=True),  # speaking at the onset: not scored (condition unmet)
               _record(6, 0, "so much", 30, condition="interrupt")]  # another condition
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "config.json").write_text(json.dumps({"config": {"rules": {"max_wait_frames": 45}}}))
    counts = misses.split_misses(tmp_path)
    assert {k: v for k, v in counts.items() if k != "run"} == {
        "n": 5, "iwor": 0.4, "talked": 3, "talked_iwor": 1, "at_wait_limit": 1, "missed_talking": 2,
        "missed_silent": 1, "silent_iwor": 0.5}
    row = misses.render(counts)
    assert row.endswith("| 5 | 0.40 | 3 | 1 of 3 | 1 | 2 / 1 | 0.50 |")
    assert row.count("|") == misses.HEADER.count("|")


def test_a_folder_without_no_interrupt_records_is_one_clear_error(misses, tmp_path):
    (tmp_path / "results.jsonl").write_text(json.dumps(_record(0, 1, "", 3, condition="interrupt")) + "\n")
    (tmp_path / "config.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(SystemExit, match="no scored no_interrupt records"):
        misses.split_misses(tmp_path)
