"""`zbb talk-split`: IWOR split by whether the model talked over the question, and paired transitions."""

from __future__ import annotations

import json
from pathlib import Path

from zbb.cli import main as zbb_main
from zbb.report import write_report
from zbb.talk_split import render_talk_split, split_by_talking, talked_over, transitions, unsteered_condition


def _record(item: str, condition: str, iwor: int, said: str, speaking: bool = True) -> dict:
    return {"id": item, "condition": condition, "repetition": 0, "correct": iwor, "iwor": iwor,
            "said_during_query": said, "model_speaking_at_onset": speaking}


# four interrupted items: unsteered the model talks over a, b, c (naming only c's subject) and is silent for d;
# steered it stops for a and b (naming a's subject), talks on over c and starts talking over d
RECORDS = [_record("a", "interrupt", 0, "so much"), _record("b", "interrupt", 0, "people"),
           _record("c", "interrupt", 1, "every day"), _record("d", "interrupt", 1, ""),
           _record("a", "interrupt+steer", 1, ""), _record("b", "interrupt+steer", 0, ""),
           _record("c", "interrupt+steer", 1, "every"), _record("d", "interrupt+steer", 0, "i think")]


def test_records_are_split_by_talking_with_exact_counts() -> None:
    split = split_by_talking(RECORDS, "interrupt")
    assert (split.n, split.n_talked, split.iwor_talked, split.n_silent, split.iwor_silent) == (4, 3, 1, 1, 1)
    assert split.iwor == 0.5
    steered = split_by_talking(RECORDS, "interrupt+steer")
    assert (steered.n_talked, steered.iwor_talked, steered.iwor_silent) == (2, 1, 1)
    assert split_by_talking(RECORDS, "buffered") is None


def test_steered_units_are_paired_with_the_unsteered_ones() -> None:
    t = transitions(RECORDS, "interrupt+steer")
    assert (t.against, t.n_pairs, t.talked_before, t.made_to_stop, t.stopped_named) == ("interrupt", 4, 3, 2, 1)
    assert (t.silent_before, t.made_to_talk) == (1, 1)
    assert transitions(RECORDS, "interrupt") is None  # an unsteered condition has nothing to pair with
    assert unsteered_condition("no_interrupt+steer") == "no_interrupt"


def test_the_talked_field_wins_over_the_words_said() -> None:
    assert talked_over({"talked": 0, "said_during_query": "words"}) is False
    assert talked_over({"said_during_query": "  "}) is False and talked_over({"said_during_query": "yes"}) is True


def test_cli_prints_both_tables_leaves_out_unmet_records_and_refuses_empty_folders(tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    unmet = _record("e", "interrupt", 1, "", speaking=False)  # the query landed in a pause: not scored
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [*RECORDS, unmet]))
    assert zbb_main(["talk-split", str(run), "--out", str(tmp_path / "split.md")]) == 0
    printed = capsys.readouterr().out
    assert "| interrupt | 4 | 0.50 | 0.75 (3 of 4) | 0.33 (1 of 3) | 1.00 (1 of 1) |" in printed
    assert "| interrupt+steer vs interrupt | 4 | 3 | 0.67 (2 of 3) | 0.50 (1 of 2) | 1 | 1.00 (1 of 1) |" in printed
    assert (tmp_path / "split.md").read_text() == printed
    assert zbb_main(["talk-split", str(run), "--keep-unmet"]) == 0
    assert "| interrupt | 5 |" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert zbb_main(["talk-split", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith(f"zbb: error: no results in {tmp_path / 'empty'}")


def test_records_that_do_not_say_what_was_said_are_left_out_and_named(tmp_path: Path, capsys) -> None:
    bare = [{k: v for k, v in r.items() if k != "said_during_query"} for r in RECORDS]  # replies scored from a file
    assert split_by_talking(bare, "interrupt") is None and transitions(bare, "interrupt+steer") is None
    assert render_talk_split("## split", bare) == ""
    mixed = [*RECORDS, {**bare[0], "id": "z"}]  # one record more, without the words: not counted
    assert split_by_talking(mixed, "interrupt").n == 4
    run = tmp_path / "scored"
    run.mkdir()
    (run / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in bare))
    assert zbb_main(["talk-split", str(run)]) == 0
    assert "no record says what the model said during the question" in capsys.readouterr().out


def test_the_report_carries_the_split_when_the_records_say_what_was_said(tmp_path: Path) -> None:
    write_report(RECORDS, tmp_path / "run", n_boot=50)
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "## Stopped, or heard through?" in markdown
    assert "| interrupt+steer vs interrupt | 4 | 3 | 0.67 (2 of 3) | 0.50 (1 of 2) | 1 | 1.00 (1 of 1) |" in markdown
    write_report([{k: v for k, v in r.items() if k != "said_during_query"} for r in RECORDS], tmp_path / "bare",
                 n_boot=50)
    assert "Stopped, or heard through?" not in (tmp_path / "bare" / "report.md").read_text()
