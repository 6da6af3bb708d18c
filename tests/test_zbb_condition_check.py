"""Did the condition happen: shares per condition, unmet items listed and left out by default, --keep-unmet."""

from __future__ import annotations

import csv
import json

import pytest

from zbb.condition_check import check_conditions, condition_met, expected_speaking, scored_records
from zbb.report import summarize_scored, write_report


def _rec(item, condition, correct, speaking, rep=0):
    return {"id": item, "condition": condition, "repetition": rep, "correct": correct, "iwor": correct,
            "model_speaking_at_onset": speaking, "onset_frame": 40}


# interrupt: 3 of 4 landed while the model spoke (c landed in a pause); no_interrupt: 1 of 2 silent
RECORDS = [
    _rec("a", "interrupt", 0, True), _rec("b", "interrupt", 0, True), _rec("c", "interrupt", 1, False),
    _rec("d", "interrupt", 1, True),
    _rec("a", "interrupt+steer", 1, True), _rec("c", "interrupt+steer", 1, False),
    _rec("a", "no_interrupt", 1, False), _rec("b", "no_interrupt", 0, True),
    {"id": "x", "condition": "interrupt", "correct": 1, "iwor": 1},  # a scored reply without the field
]


def test_expectations_per_condition():
    assert [expected_speaking(c) for c in ("interrupt", "interrupt+mistimed@a=1", "buffered+steer", "no_interrupt",
                                           "no_interrupt+steer", "other")] == [True, True, True, False, False, None]
    assert condition_met(RECORDS[0]) is True and condition_met(RECORDS[2]) is False
    assert condition_met(RECORDS[7]) is False and condition_met(RECORDS[-1]) is None
    assert condition_met({**RECORDS[0], "model_speaking_at_onset": None}) is None


def test_shares_and_the_unmet_items():
    check = check_conditions(RECORDS)
    interrupt, normal = check["conditions"]["interrupt"], check["conditions"]["no_interrupt"]
    assert (interrupt["n_met"], interrupt["n_checked"], interrupt["share_met"]) == (3, 4, 0.75)
    assert interrupt["expected"] == "speaking" and interrupt["unmet"] == [{"id": "c", "repetition": 0, "onset_frame": 40}]
    assert (normal["n_met"], normal["n_checked"], normal["expected"]) == (1, 2, "silent")
    assert check["n_excluded"] == 3 and check_conditions(RECORDS, keep_unmet=True)["n_excluded"] == 0
    assert [r["id"] for r in scored_records(RECORDS) if r["condition"] == "interrupt"] == ["a", "b", "d", "x"]
    assert scored_records(RECORDS, keep_unmet=True) == RECORDS


def test_unmet_items_are_left_out_of_the_score_unless_kept():
    left_out = summarize_scored(RECORDS, n_boot=20)["conditions"]
    kept = summarize_scored(RECORDS, keep_unmet=True, n_boot=20)["conditions"]
    assert left_out["interrupt"]["n_items"] == 4 and left_out["interrupt"]["metrics"]["correct"]["mean"] == 0.5
    assert kept["interrupt"]["n_items"] == 5 and kept["interrupt"]["metrics"]["correct"]["mean"] == 0.6
    assert left_out["no_interrupt"]["metrics"]["correct"]["mean"] == 1.0 and kept["no_interrupt"]["n_items"] == 2
    # a condition that never happened stays in the table, with no items
    never = summarize_scored([_rec("a", "no_interrupt", 1, True), _rec("a", "interrupt", 0, True)], n_boot=20)
    assert never["conditions"]["no_interrupt"] == {"n_items": 0, "n_records": 0, "metrics": {}}
    assert list(never["conditions"]) == ["no_interrupt", "interrupt"] and never["recovery"] == {}
    only_unmet = summarize_scored([_rec("a", "interrupt", 0, False)], n_boot=20)
    assert only_unmet["conditions"]["interrupt"]["n_items"] == 0


@pytest.mark.parametrize("keep", [False, True])
def test_every_report_shows_the_shares_and_the_exclusions(tmp_path, keep):
    report = write_report(RECORDS, tmp_path, n_boot=20, keep_unmet=keep)
    md = (tmp_path / "report.md").read_text()
    assert "| interrupt | speaking | 3 of 4 | 0.75 |" in md and "| no_interrupt | silent | 1 of 2 | 0.50 |" in md
    assert "- interrupt, not speaking at the onset: c (rep 0)" in md
    assert ("KEPT in the scores" in md) is keep and ("3 record(s) where the condition did not happen are left out" in md) is not keep
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["condition_check"] == report["condition_check"] and on_disk["condition_check"]["keep_unmet"] is keep
    rows = {(r["id"], r["condition"]): r for r in csv.DictReader((tmp_path / "items.csv").open())}
    assert rows[("c", "interrupt")]["condition_met"] == "0" and rows[("c", "interrupt")]["scored"] == str(int(keep))
    assert rows[("x", "interrupt")]["condition_met"] == "" and rows[("x", "interrupt")]["scored"] == "1"


def test_records_without_the_field_get_no_section(tmp_path):
    write_report([{"id": "a", "condition": "interrupt", "correct": 1, "iwor": 1}], tmp_path, n_boot=20)
    assert "Did the condition happen" not in (tmp_path / "report.md").read_text()
