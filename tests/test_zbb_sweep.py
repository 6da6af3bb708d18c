"""zbb sweep: baselines once, one resumable run per cell, paired sampling noise, summary and heatmaps, errors."""

from __future__ import annotations

import json

import pytest
import torch

import duplex_steer
from duplex_steer.steering import PerceptionVector
from zbb.cli import main
from zbb.runner import RunConfig, RunError, Runner, read_results
from zbb.scenario import ScenarioRules
from zbb.sweep import BASELINES, CELLS, DEFAULT_LIMIT, cell_name, plan, plot_sweep, render_sweep, sweep

ITEM = "hammers-false"  # the shortest context + query audio: the fewest frames
RULES = ScenarioRules(interrupt_after_frames=2, quiet_frames=2, max_wait_frames=4, reply_frames=3)
GRID = {"layers": [2], "alphas": [0.0, 4.0], "spans": [2]}


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory, tiny):
    g = torch.Generator().manual_seed(0)
    v = PerceptionVector({1: torch.randn(64, generator=g), 2: torch.randn(64, generator=g)},
                         {"model": tiny.fingerprint(), "method": "test"})
    return str(v.save(tmp_path_factory.mktemp("vec") / "v.safetensors"))


def _base(vector_file: str, **kw) -> RunConfig:
    # sampled, not greedy: the pairing of cells with the baselines must hold for the sampling noise too
    return RunConfig(**{"model": "tiny", "vector": vector_file, "items": [ITEM], "rules": RULES, "limit": DEFAULT_LIMIT,
                        "conditions": ["no_interrupt", "interrupt", "interrupt+steer"], **kw})


@pytest.fixture(scope="module")
def swept(tmp_path_factory, tiny, vector_file):
    out = tmp_path_factory.mktemp("sweep")
    summary = sweep(_base(vector_file), out, model=tiny, progress=False, **GRID)
    return out, summary


def test_baselines_run_once_and_each_cell_is_a_run_folder(swept):
    out, summary = swept
    base = {r["condition"] for r in read_results(out / BASELINES / "results.jsonl")}
    assert base == {"no_interrupt", "interrupt"}
    names = sorted(p.name for p in (out / CELLS).iterdir())
    assert names == sorted(cell_name(2, a, 2) for a in (0.0, 4.0)) == ["layer2_alpha0_span2", "layer2_alpha4_span2"]
    for name in names:
        cfg = json.loads((out / CELLS / name / "config.json").read_text())["config"]
        assert cfg["conditions"] == ["interrupt+steer"] and f"layer{cfg['layer']}_alpha{cfg['alpha']:g}" in name
        recs = read_results(out / CELLS / name / "results.jsonl")
        assert [r["condition"] for r in recs] == ["interrupt+steer"]
        assert recs[0]["steered_frames"] == [recs[0]["onset_frame"], recs[0]["onset_frame"] + 1]  # span 2


def test_cells_share_the_baselines_sampling_noise(swept):
    """alpha 0 adds nothing: a paired cell must then reproduce the sampled interrupt baseline exactly."""
    out, _ = swept
    interrupt = next(r for r in read_results(out / BASELINES / "results.jsonl") if r["condition"] == "interrupt")
    cell = read_results(out / CELLS / cell_name(2, 0.0, 2) / "results.jsonl")[0]
    assert cell["reply"] == interrupt["reply"] and cell["onset_frame"] == interrupt["onset_frame"]


def test_summary_table_and_heatmaps(swept):
    out, summary = swept
    saved = json.loads((out / "sweep.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert saved["is_random"] and saved["caveat"] == duplex_steer.PIPELINE_CHECK_NOTE
    assert set(saved["baselines"]) == {"no_interrupt", "interrupt"} and saved["n_items"] == 1
    assert len(saved["cells"]) == 2 and saved["best"]["span"] == 2
    stats = saved["cells"][0]["conditions"]["interrupt+steer"]
    assert set(stats) == {"n_items", "correct", "iwor", "recovery", "recovery_paired"} and 0 <= stats["correct"]["mean"] <= 1
    assert set(stats["recovery_paired"]) == {"correct", "iwor"} and saved["cells"][0]["onset_delay_frames"] == 0
    md = (out / "sweep.md").read_text()
    assert "pipeline check" in md and "| 2 | 4 | 2 | 0 | interrupt+steer | 1 |" in md and "sweep.png" in md
    assert "What lateness costs" not in md and not (out / "sweep_delay.png").exists()  # one delay: no delay plot
    png = (out / "sweep.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    assert (out / CELLS / cell_name(2, 4.0, 2) / "report.md").is_file()  # each folder has its own report
    assert saved["base"]["item_bank"] is None and "not ZBB's item bank" not in md
    on_dev = {**saved, "base": {**saved["base"], "item_bank": "runs/dev/items.jsonl"}}  # a sweep on development items
    assert "Items from `runs/dev/items.jsonl`, not ZBB's item bank." in render_sweep(on_dev)


def test_resume_redoes_only_what_is_missing_and_loads_no_model_when_done(swept, vector_file, monkeypatch, tiny):
    out, summary = swept
    torn = out / CELLS / cell_name(2, 4.0, 2) / "results.jsonl"
    line = torn.read_text()
    torn.write_text(line[:20])  # a crash mid-write: the only record of that cell is torn
    played = []
    original = Runner.run_batch

    def spy(self, work):
        played.append([(w[0]["id"], w[1]) for w in work])
        yield from original(self, work)

    monkeypatch.setattr(Runner, "run_batch", spy)
    sweep(_base(vector_file), out, model=tiny, progress=False, **GRID)
    assert played == [[(ITEM, "interrupt+steer")]]
    assert len(read_results(torn)) == 1

    def no_load(*args, **kwargs):
        raise AssertionError("a finished sweep must not load the model")

    monkeypatch.setattr(duplex_steer, "load", no_load)
    again = sweep(_base(vector_file), out, progress=False, **GRID)
    assert played == [[(ITEM, "interrupt+steer")]]
    assert again["model"] == summary["model"] and again["is_random"]


def test_cli_summarizes_a_finished_sweep_and_reports_errors(swept, vector_file, capsys, monkeypatch):
    out, _ = swept
    monkeypatch.setattr(duplex_steer, "load", lambda *a, **k: pytest.fail("nothing to run"))
    args = ["sweep", "--model", "tiny", "--out", str(out), "--vector", vector_file, "--items", ITEM, "--interrupt-after", "2",
            "--quiet-frames", "2", "--max-wait", "4", "--reply-frames", "3", "--layers", "2", "--alphas", "0", "4", "--spans", "2"]
    assert main(args) == 0
    assert "ZBB steering sweep" in capsys.readouterr().out
    assert main([*args[:-7], "--layers", "3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layers [1, 2], not [3]" in err


def test_bad_sweeps(vector_file, tmp_path):
    with pytest.raises(RunError, match="--vector"):
        sweep(_base(None), tmp_path, progress=False)
    with pytest.raises(RunError, match="steered condition"):
        sweep(_base(vector_file, conditions=["no_interrupt", "interrupt"]), tmp_path, progress=False)
    with pytest.raises(RunError, match="at least one alpha"):
        sweep(_base(vector_file), tmp_path, alphas=[], progress=False)
    with pytest.raises(RunError, match="--onset-delay -1"):
        sweep(_base(vector_file), tmp_path, delays=[0, -1], progress=False)
    with pytest.raises(RunError, match="oracle onset only"):
        sweep(_base(vector_file, onset="energy"), tmp_path, delays=[0, 2], progress=False)
    assert not list(tmp_path.iterdir())  # refused before anything ran


def test_plan_batches_cells_like_the_baselines(vector_file):
    baseline, cells = plan(_base(vector_file, batch_size=10), [1], [1.0, 2.0], [3])
    assert baseline.batch_size == 10 and baseline.conditions == ["no_interrupt", "interrupt"]
    assert baseline.layer is None and baseline.alpha == RunConfig().alpha
    assert {c.batch_size for c in cells.values()} == {5}  # 5 items per batch in both
    assert sorted(cells) == ["layer1_alpha1_span3", "layer1_alpha2_span3"]


def test_plan_sweeps_the_onset_delay_axis_with_baselines_run_once(vector_file):
    baseline, cells = plan(_base(vector_file, onset_delay_frames=5), [2], [1.0], [1, 3], delays=[0, 2, 8])
    assert baseline.onset_delay_frames == 0 and baseline.conditions == ["no_interrupt", "interrupt"]
    assert {name: (c.span, c.onset_delay_frames) for name, c in cells.items()} == {
        "layer2_alpha1_span1": (1, 0), "layer2_alpha1_span1_delay2": (1, 2), "layer2_alpha1_span1_delay8": (1, 8),
        "layer2_alpha1_span3": (3, 0), "layer2_alpha1_span3_delay2": (3, 2), "layer2_alpha1_span3_delay8": (3, 8)}
    _, default = plan(_base(vector_file, onset_delay_frames=5), [2], [1.0], [3])  # no axis: the base's delay
    assert {n: c.onset_delay_frames for n, c in default.items()} == {"layer2_alpha1_span3_delay5": 5}


def test_a_delay_sweep_runs_each_delay_as_a_cell_and_plots_the_cost(tiny, vector_file, tmp_path):
    summary = sweep(_base(vector_file, greedy=True), tmp_path, model=tiny, progress=False, layers=[2], alphas=[4.0],
                    spans=[2], delays=[0, 3])
    by_delay = {c["onset_delay_frames"]: c for c in summary["cells"]}
    assert sorted(by_delay) == [0, 3] and by_delay[3]["folder"] == f"{CELLS}/{cell_name(2, 4.0, 2, 3)}"
    on_time, late = (read_results(tmp_path / by_delay[d]["folder"] / "results.jsonl")[0] for d in (0, 3))
    assert late["steered_frames"] == [f + 3 for f in on_time["steered_frames"]]
    md = (tmp_path / "sweep.md").read_text()
    assert "## What lateness costs" in md and "| 2 | 4 | 2 | 3 | 240 | 1 |" in md and "sweep_delay.png" in md
    assert (tmp_path / "sweep_delay.png").read_bytes().startswith(b"\x89PNG")


def test_heatmaps_of_a_ragged_grid(swept, tmp_path):
    """More layers, alphas and spans than the run above, one cell missing: drawn as '-' without error."""
    _, summary = swept
    stats = summary["cells"][0]["conditions"]["interrupt+steer"]
    cells = [{"layer": la, "alpha": a, "span": s, "folder": "x",
              "conditions": {"interrupt+steer": {**stats, "correct": {**stats["correct"], "mean": (la + a) / 20}}}}
             for la in (12, 23) for a in (1.0, 5.5, 8.0) for s in (1, 3) if (la, a, s) != (23, 8.0, 3)]
    plot_sweep({**summary, "cells": cells}, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 30_000


def test_a_sweep_in_two_processes_gives_the_records_of_one(tiny, vector_file, tmp_path):
    base = _base(vector_file, items=None, limit=2)
    grid = {"layers": [2], "alphas": [4.0], "spans": [2]}
    sweep(base, tmp_path / "one", model=tiny, progress=False, workers=1, **grid)
    sweep(base, tmp_path / "two", model=tiny, progress=False, workers=2, **grid)
    for folder in (BASELINES, f"{CELLS}/{cell_name(2, 4.0, 2)}"):
        one, two = ({(r["id"], r["condition"]): r for f in sorted((tmp_path / run / folder).glob("results*.jsonl"))
                     for r in read_results(f)} for run in ("one", "two"))
        assert len(one) == 2 * (2 if folder == BASELINES else 1) and two == one
        assert len(list((tmp_path / "two" / folder).glob("results.rank*.jsonl"))) == 2
