"""`zbb compare`: two runs paired by item, condition by condition, over the records each run scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from duplex_steer.errors import DuplexSteerError
from zbb.cli import main as zbb_main
from zbb.compare import compare_runs, render_compare_markdown


def _write_run(folder: Path, rows: list[tuple[str, str, int, int, int]], shards: int = 1) -> Path:
    """rows: (item, condition, correct, iwor, model speaking at onset), spread over `shards` results files."""
    folder.mkdir()
    for shard in range(shards):
        name = "results.jsonl" if shards == 1 else f"results.rank{shard}.jsonl"
        lines = [json.dumps({"id": i, "condition": c, "repetition": 0, "correct": ok, "iwor": named,
                             "model_speaking_at_onset": speaking})
                 for n, (i, c, ok, named, speaking) in enumerate(rows) if n % shards == shard]
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder


def test_differences_are_paired_by_item_over_scored_records(tmp_path) -> None:
    # interrupt: heard 1,1,1,0 vs muted 0,0,1,0 on items a-d (+0.5, gained 2, lost 0); item e only in one run
    heard = [(i, "interrupt", 1, v, 1) for i, v in zip("abcd", (1, 1, 1, 0), strict=True)] + [("e", "interrupt", 1, 1, 1)]
    muted = [(i, "interrupt", 0, v, 1) for i, v in zip("abcd", (0, 0, 1, 0), strict=True)]
    # no_interrupt: item d's heard record landed while the model spoke (unmet): left out of the pair
    heard += [(i, "no_interrupt", 1, 1, int(i == "d")) for i in "abcd"]
    muted += [(i, "no_interrupt", 0, 0, 0) for i in "abcd"]
    run = _write_run(tmp_path / "heard", heard, shards=2)
    reference = _write_run(tmp_path / "muted", muted)
    out = compare_runs(run, reference)
    iwor = out["interrupt"]["iwor"]
    assert iwor["n"] == 4 and iwor["difference"] == pytest.approx(0.5)
    assert (iwor["mcnemar"]["gained"], iwor["mcnemar"]["lost"]) == (2, 0)
    assert out["interrupt"]["correct"]["difference"] == pytest.approx(1.0)
    assert out["no_interrupt"]["iwor"]["n"] == 3 and out["no_interrupt"]["iwor"]["difference"] == pytest.approx(1.0)
    assert compare_runs(run, reference, keep_unmet=True)["no_interrupt"]["iwor"]["n"] == 4
    table = render_compare_markdown(out, "heard", "muted")
    assert "| interrupt | IWOR | 4 | +0.50 |" in table and "| 2 / 0 |" in table


def test_cli_prints_and_writes_the_table_and_refuses_empty_folders(tmp_path, capsys) -> None:
    rows = [(i, "interrupt", 1, 1, 1) for i in "ab"]
    run, reference = _write_run(tmp_path / "a", rows), _write_run(tmp_path / "b", rows)
    assert zbb_main(["compare", str(run), "--against", str(reference), "--out", str(tmp_path / "t.md")]) == 0
    printed = capsys.readouterr().out
    assert "| interrupt | IWOR | 2 | +0.00 |" in printed and (tmp_path / "t.md").read_text() == printed
    (tmp_path / "empty").mkdir()
    assert zbb_main(["compare", str(run), "--against", str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith(f"zbb: error: no results in {tmp_path / 'empty'}")
    with pytest.raises(DuplexSteerError, match="share no item"):
        compare_runs(run, _write_run(tmp_path / "c", [("z", "interrupt", 1, 1, 1)]))
