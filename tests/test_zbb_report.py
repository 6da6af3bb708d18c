"""Report statistics against hand computation, bootstrap reproducibility, recovery, and the written files."""

import csv
import json
import math

import pytest

from zbb.report import (
    bootstrap_interval,
    check_condition,
    condition_order,
    mean_se,
    recovery,
    render_markdown,
    summarize,
    write_report,
)


def _records(condition, correct, iwor, **extra):
    return [
        {"id": f"item{k}", "condition": condition, "correct": c, "iwor": w, **extra}
        for k, (c, w) in enumerate(zip(correct, iwor, strict=True))
    ]


# 4 items per condition; hand-computable means.
NO_INT = _records("no_interrupt", [1, 1, 1, 0], [1, 1, 1, 1])  # correct 0.75, iwor 1.0
INT = _records("interrupt", [1, 0, 0, 0], [0, 0, 1, 0])  # correct 0.25, iwor 0.25
STEER = _records("interrupt+steer", [1, 1, 0, 0], [1, 1, 1, 0])  # correct 0.5, iwor 0.75
RECORDS = NO_INT + INT + STEER


def test_mean_se_by_hand():
    mean, se = mean_se([1, 0, 0, 0])
    # sample variance (ddof=1): ((0.75^2) + 3 * 0.25^2) / 3 = 0.25; SE = sqrt(0.25 / 4) = 0.25
    assert mean == 0.25
    assert se == pytest.approx(0.25, abs=1e-12)
    mean, se = mean_se([2.0, 4.0, 9.0])
    assert mean == 5.0
    assert se == pytest.approx(math.sqrt(13.0 / 3.0), abs=1e-12)  # var = (9 + 1 + 16) / 2 = 13
    assert mean_se([0.4]) == (0.4, None)
    with pytest.raises(ValueError):
        mean_se([])


def test_bootstrap_is_seeded_and_contains_the_mean():
    values = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1]
    first = bootstrap_interval(values, n_boot=2000, seed=7)
    assert first == bootstrap_interval(values, n_boot=2000, seed=7)
    mean = sum(values) / len(values)
    assert first[0] < mean < first[1]
    assert 0.0 <= first[0] and first[1] <= 1.0
    # Continuous values: another seed gives another interval (the seed is really used).
    spread = [0.1, 0.7, 0.25, 0.9, 0.4, 0.05, 0.65, 0.3]
    assert bootstrap_interval(spread, seed=1) != bootstrap_interval(spread, seed=2)
    low, high = bootstrap_interval(spread, seed=1)
    assert low < sum(spread) / len(spread) < high
    assert bootstrap_interval([1, 1, 1], n_boot=100) == (1.0, 1.0)


def test_summary_statistics_by_hand():
    summary = summarize(RECORDS, n_boot=500, seed=3)
    assert list(summary["conditions"]) == ["no_interrupt", "interrupt", "interrupt+steer"]
    steer = summary["conditions"]["interrupt+steer"]
    assert steer["n_items"] == 4 and steer["n_records"] == 4
    correct = steer["metrics"]["correct"]
    assert correct["n"] == 4
    assert correct["mean"] == 0.5
    assert correct["se"] == pytest.approx(math.sqrt((4 * 0.25) / 3 / 4), abs=1e-12)
    assert correct["ci_low"] <= 0.5 <= correct["ci_high"]
    iwor = summary["conditions"]["no_interrupt"]["metrics"]["iwor"]
    # Wilson at 4 of 4: the lower bound is n / (n + z^2), not a collapsed 1.0
    assert (iwor["mean"], iwor["se"], iwor["ci_high"], iwor["ci_method"]) == (1.0, 0.0, 1.0, "wilson")
    assert iwor["ci_low"] == pytest.approx(4 / (4 + 1.959963984540054**2), abs=1e-12)
    assert "tor" not in steer["metrics"]


def test_recovery_arithmetic():
    summary = summarize(RECORDS, n_boot=50)
    # correctness: (0.5 - 0.25) / (0.75 - 0.25) = 0.5; IWOR: (0.75 - 0.25) / (1.0 - 0.25) = 2/3
    assert summary["recovery"]["interrupt+steer"]["correct"] == pytest.approx(0.5, abs=1e-12)
    assert summary["recovery"]["interrupt+steer"]["iwor"] == pytest.approx(2 / 3, abs=1e-12)
    assert summary["recovery_gap"] == {"correct": 0.5, "iwor": 0.75}


def test_recovery_zero_gap_and_missing_reference():
    flat = _records("no_interrupt", [1, 0], [1, 0]) + _records("interrupt", [1, 0], [0, 0])
    flat += _records("interrupt+steer", [1, 1], [1, 0])
    rec = summarize(flat, n_boot=50)["recovery"]["interrupt+steer"]
    assert rec["correct"] is None
    assert "no gap" in rec["correct_reason"]
    assert rec["iwor"] == pytest.approx(1.0, abs=1e-12)
    assert summarize(INT + STEER, n_boot=50)["recovery"] == {}
    assert recovery({}) == {}


def test_repetitions_are_averaged_per_item_first():
    reps = [
        {"id": "a", "condition": "interrupt", "correct": 1, "iwor": 1, "seed": 0},
        {"id": "a", "condition": "interrupt", "correct": 0, "iwor": 1, "seed": 1},
        {"id": "b", "condition": "interrupt", "correct": 0, "iwor": 0, "seed": 0},
        {"id": "b", "condition": "interrupt", "correct": 0, "iwor": 0, "seed": 1},
        {"id": "c", "condition": "interrupt", "correct": 1, "iwor": 0, "seed": 0},
    ]
    stats = summarize(reps, n_boot=50)["conditions"]["interrupt"]
    assert stats["n_items"] == 3 and stats["n_records"] == 5
    # item means: a 0.5, b 0.0, c 1.0 -> mean 0.5, SE = sqrt(0.25 / 3)
    assert stats["metrics"]["correct"]["n"] == 3
    assert stats["metrics"]["correct"]["mean"] == 0.5
    assert stats["metrics"]["correct"]["se"] == pytest.approx(math.sqrt(0.25 / 3), abs=1e-12)


def test_latency_skips_items_without_take_over():
    rows = [
        {"id": "a", "condition": "interrupt", "correct": 1, "iwor": 1, "tor": 1, "latency": 0.5},
        {"id": "b", "condition": "interrupt", "correct": 0, "iwor": 0, "tor": 0, "latency": None},
        {"id": "c", "condition": "interrupt", "correct": 0, "iwor": 1, "tor": 1, "latency": 1.5},
    ]
    metrics = summarize(rows, n_boot=50)["conditions"]["interrupt"]["metrics"]
    assert metrics["tor"]["mean"] == pytest.approx(2 / 3, abs=1e-12)
    assert (metrics["latency"]["n"], metrics["latency"]["mean"]) == (2, 1.0)


def test_condition_names():
    assert check_condition("interrupt+steer") == "interrupt+steer"
    assert check_condition("interrupt+steer@alpha=3") == "interrupt+steer@alpha=3"
    for bad in ("interupt", "steer", "interrupt+steer@", "interrupt@a b"):
        with pytest.raises(ValueError, match="unknown condition"):
            check_condition(bad)
    assert condition_order(["interrupt+steer@b", "interrupt+steer", "no_interrupt", "zzz", "interrupt"]) == [
        "no_interrupt",
        "interrupt",
        "interrupt+steer",
        "interrupt+steer@b",
        "zzz",
    ]


def test_write_report_files(tmp_path):
    caveat = "tiny random-weight model: these numbers mean nothing"
    records = [{**r, "seed": 0, "reply": "yes"} for r in RECORDS]
    report = write_report(records, tmp_path / "out", caveat=caveat, n_boot=200, extra={"scorer": "rules"})
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {"items.csv", "report.json", "report.md", "report.png"}
    with (out / "items.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 12
    assert list(rows[0])[:4] == ["id", "condition", "correct", "iwor"]
    assert rows[0]["seed"] == "0" and rows[4]["condition"] == "interrupt"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert on_disk["caveat"] == caveat and on_disk["scorer"] == "rules"
    assert on_disk["conditions"]["interrupt"]["metrics"]["correct"]["mean"] == 0.25
    md = (out / "report.md").read_text()
    assert caveat in md
    assert "| interrupt+steer | 4 | 0.50 +- 0.29 [" in md
    # recovery: gap, value, interval; with 4 items the correctness gap vanishes in 6% of resamples: no interval
    assert "| interrupt+steer | correctness | 4 | 0.50 | 0.50 | n/a |" in md
    assert "correctness: the gap is <= 0 in 6% of resamples: recovery is not identified" in md
    assert "| interrupt+steer | IWOR | 4 | 0.75 | 0.67 | [" in md
    assert "| interrupt+steer | interrupt | correctness | 4 | +0.25 | [" in md  # paired difference
    assert "| no_interrupt | interrupt | IWOR | 4 | +0.75 | [" in md  # the gap itself, paired
    assert "Wilson" in md and "BCa" in md and "McNemar" in md and "Not shown" in md
    assert on_disk["settings"] == {}  # no header given
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_marks_missing_values():
    summary = summarize(
        _records("no_interrupt", [1, 1], [1, 1]) + _records("interrupt", [1, 1], [0, 1]), n_boot=20
    )
    only_correct = {"n": 1, "mean": 1.0, "se": None, "ci_low": 1.0, "ci_high": 1.0}
    summary["conditions"]["interrupt+steer"] = {
        "n_items": 1,
        "n_records": 1,
        "metrics": {"correct": only_correct},
    }
    summary["recovery"] = recovery(summary["conditions"])
    md = render_markdown(summary)
    assert "| interrupt+steer | 1 | 1.00 +- n/a [1.00, 1.00] | n/a |" in md
    flat = summarize(_records("no_interrupt", [1, 1], [1, 0]) + _records("interrupt", [1, 1], [0, 0])
                     + _records("interrupt+steer", [1, 0], [1, 0]), n_boot=50)
    md = render_markdown(flat)
    assert "| interrupt+steer | correctness | 2 | 0.00 | n/a | n/a |" in md
    assert "recovery of interrupt+steer, correctness: no_interrupt is not above interrupt: no gap to recover" in md
    assert "no_interrupt vs interrupt, correctness: every paired difference equals 0" in md


def test_header_lists_the_model_and_steering_settings(tmp_path):
    import hashlib

    import numpy as np
    from safetensors.numpy import save_file

    from zbb.header import run_header

    vector = tmp_path / "vec.safetensors"
    save_file({"layer.2": np.ones(4, np.float32), "layer.5": np.ones(4, np.float32)}, str(vector))
    run = {"model": "organism", "vector": str(vector), "layer": None, "alpha": 1.0, "span": 3, "schedule": "linear",
           "onset": "energy", "onset_only_while_model_speaks": True, "greedy": False, "seed": 4, "repetitions": 2}
    header = run_header(run, model="organism (embedded)")
    sha = hashlib.sha256(vector.read_bytes()).hexdigest()
    assert header["steering"] == {"layer": 2, "layer_from": "the vector's first layer", "alpha": 1.0, "span": 3,
                                  "schedule": "linear", "onset": "energy (fires only while the model speaks)",
                                  "onset_delay_frames": 0}
    assert header["vector_sha256"] == sha and header["model"] == "organism (embedded)"
    report = write_report(RECORDS, tmp_path / "out", n_boot=50, header=header)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "- **Model:** organism (embedded)" in md
    assert ("- **Steering:** layer 2 (the vector's first layer), alpha 1.0, span 3 frames, linear schedule, onset "
            "energy (fires only while the model speaks)") in md
    assert f"- **Vector:** `{vector}` (sha256 {sha})" in md and "sampled, seed 4; repetitions 2" in md
    assert json.loads((tmp_path / "out" / "report.json").read_text())["settings"] == report["settings"] == header
    vector.unlink()
    assert "sha256 unknown: file not found" in render_markdown(summarize(RECORDS, n_boot=20),
                                                               header=run_header(dict(run, layer=3)))
    assert "- **Steering:** none (no vector)" in render_markdown(summarize(RECORDS, n_boot=20),
                                                                header=run_header({"model": "tiny"}))


def test_talked_during_the_query_is_a_rate_with_a_paired_difference():
    """`talked` (the model began words between the query's onset and the reply window): a Wilson-interval rate
    per condition and a paired difference against the reference, so a report shows how many questions asked in a
    pause the model talked over, and whether steering changed that."""
    from zbb.stats import wilson_interval

    quiet = _records("no_interrupt", [1, 1, 0, 0, 1], [1, 1, 0, 0, 1], said_during_query="")
    for record, talked in zip(quiet, [0, 0, 1, 1, 0], strict=True):
        record["talked"] = talked
    steered = [dict(r, condition="no_interrupt+steer", talked=0, iwor=1) for r in quiet]
    summary = summarize(quiet + steered, n_boot=200, seed=1)
    talked = summary["conditions"]["no_interrupt"]["metrics"]["talked"]
    assert (talked["mean"], talked["ci_method"]) == (0.4, "wilson")
    assert (talked["ci_low"], talked["ci_high"]) == pytest.approx(wilson_interval(2, 5))
    paired = summary["paired"]["no_interrupt+steer"]
    assert paired["reference"] == "no_interrupt"
    assert paired["metrics"]["talked"]["difference"] == pytest.approx(-0.4)
    md = render_markdown(summary)
    assert "talked during the query" in md.splitlines()[[i for i, line in enumerate(md.splitlines())
                                                         if line.startswith("| condition | n items")][0]]
    assert "| no_interrupt+steer | no_interrupt | talked during the query | 5 |" in md
