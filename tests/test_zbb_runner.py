"""ZBB runner: causal query placement, conditions, resume without loss, config clash, shards, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from duplex_steer.steering import PerceptionVector
from tests.conftest import REPO
from zbb import load_items
from zbb.build import load_query_audio
from zbb.run_folder import merge_and_report
from zbb.runner import RunConfig, RunError, Runner, read_results, run
from zbb.scenario import DONE, QUERY, Scenario, ScenarioRules

RULES = ScenarioRules(interrupt_after_frames=3, quiet_frames=2, max_wait_frames=6, reply_frames=4)


def _scenario(condition: str) -> Scenario:
    item = load_items()[0]
    return Scenario(item, condition, 0, np.zeros(1920 * 2, np.float32), np.ones(1920 * 3, np.float32), RULES)


@pytest.mark.parametrize(
    ("condition", "texts", "expected_onset", "speaking"),
    [
        ("interrupt", [3, 3, 9, 9, 9, 9], 5, True),  # context ends at frame 1; 3 speaking frames -> frame 5
        ("no_interrupt", [9, 9, 3, 3, 3, 3, 3, 3, 3], 7, False),  # quiet 2 frames once the hold window clears
        ("interrupt", [3] * 12, 7, False),  # never speaks: the 6-frame wait cap places it anyway
    ],
)
def test_query_placement_is_decided_from_the_models_output(condition, texts, expected_onset, speaking):
    s = _scenario(condition)
    hist = []
    onset = None
    for t, tok in enumerate(texts):
        hist.append(tok)
        if s.observe(t, np.array(hist[-4:])):
            s.place_query(t + 1)
            onset = t + 1
            break
    assert onset == expected_onset
    assert s.phase == QUERY and s.model_speaking_at_onset is speaking
    assert s.query_end_frame == onset + 3 and s.end_frame == onset + 3 + 4
    wave = s.planned_waveform()
    assert wave[onset * 1920] == 1.0 and wave[onset * 1920 - 1] == 0.0  # query exactly at the onset frame
    for t in range(onset, s.end_frame):
        s.advance(t)
    assert s.phase == DONE


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory, tiny):
    v = PerceptionVector({2: torch.randn(64, generator=torch.Generator().manual_seed(0))},
                         {"model": tiny.fingerprint(), "method": "test"})
    return str(v.save(tmp_path_factory.mktemp("vec") / "v.safetensors"))


def _config(vector_file, **kw):
    base = dict(model="tiny", vector=vector_file, limit=2, batch_size=8, greedy=True,
                rules=ScenarioRules(interrupt_after_frames=3, quiet_frames=3, max_wait_frames=8, reply_frames=6),
                conditions=["no_interrupt", "interrupt", "interrupt+steer", "interrupt+random", "interrupt+mistimed"])
    base.update(kw)
    return RunConfig(**base)


def test_run_records_every_condition_and_resumes_without_redoing(tiny, vector_file, tmp_path):
    cfg = _config(vector_file)
    results = run(cfg, tmp_path, model=tiny, progress=False)
    records = read_results(results)
    assert len(records) == 2 * 5
    by = {(r["id"], r["condition"]): r for r in records}
    item = load_items()[0]["id"]
    steer, mistimed = by[(item, "interrupt+steer")], by[(item, "interrupt+mistimed")]
    assert steer["steer_onsets"] == [steer["onset_frame"]]  # oracle onset = the query's first frame
    assert steer["steered_frames"] == [steer["onset_frame"] + k for k in range(3)]
    assert mistimed["steer_onsets"] == [mistimed["query_end_frame"]]
    assert by[(item, "interrupt")]["steered_frames"] == []
    assert all(r["talked"] == int(bool(r["said_during_query"].strip())) for r in records)
    # a crash mid-write leaves a torn last line: it is ignored, and a rerun redoes only what is missing
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:7]) + "\n" + lines[7][:10])
    run(cfg, tmp_path, model=tiny, progress=False)
    again = read_results(results)
    assert sorted((r["id"], r["condition"]) for r in again) == sorted(by)
    report = merge_and_report(tmp_path)
    assert set(report["conditions"]) == {c for c in cfg.conditions}
    assert "pipeline check" in (tmp_path / "report.md").read_text()
    # the oracle is the query's first speech: espeak-ng renderings start 2 ms in, so its placement frame
    assert steer["speech_onset_frame"] == steer["onset_frame"] and steer["onset_latency_frames"] == 0
    assert mistimed["onset_latency_frames"] is None and by[(item, "interrupt")]["onset_latency_frames"] is None
    assert report["onset_source"].startswith("oracle") and report["onsets"]["interrupt+steer"]["n"] == 2
    assert "Onset source: oracle" in (tmp_path / "report.md").read_text()


def test_oracle_steers_from_the_first_speech_of_a_query_that_opens_on_silence(tiny, vector_file, tmp_path,
                                                                               monkeypatch):
    silent_start = staticmethod(lambda item_id, cond: np.concatenate(
        [np.zeros(12_000, np.float32), load_query_audio(None, item_id)]))  # 0.5 s of silence first
    monkeypatch.setattr(Runner, "_query", silent_start)
    cfg = _config(vector_file, conditions=["interrupt+steer"], limit=1)
    steer = read_results(run(cfg, tmp_path, model=tiny, progress=False))[0]
    assert steer["query_speech_s"] == pytest.approx(0.5, abs=0.011)
    assert steer["speech_onset_frame"] == steer["onset_frame"] + 6  # 0.50 s is in the 7th frame (0.48-0.56 s)
    assert steer["steer_onsets"] == [steer["speech_onset_frame"]] and steer["onset_latency_frames"] == 0


def test_an_onset_delay_shifts_the_steered_frames_by_exactly_that_many_frames(tiny, vector_file, tmp_path):
    """Greedy: same stream until the onset, so the delayed run steers the same absolute frames shifted by N."""
    records = {}
    for delay in (0, 3):
        cfg = _config(vector_file, conditions=["interrupt+steer"], limit=1, onset_delay_frames=delay)
        records[delay] = read_results(run(cfg, tmp_path / str(delay), model=tiny, progress=False))[0]
    on_time, late = records[0], records[3]
    assert late["onset_frame"] == on_time["onset_frame"] and late["speech_onset_frame"] == on_time["speech_onset_frame"]
    assert late["steer_onsets"] == [on_time["steer_onsets"][0] + 3] == [late["speech_onset_frame"] + 3]
    assert late["steered_frames"] == [f + 3 for f in on_time["steered_frames"]] and len(late["steered_frames"]) == 3
    assert (on_time["onset_latency_frames"], late["onset_latency_frames"]) == (0, 3)
    report = merge_and_report(tmp_path / "3")  # the header and the onset section say steering was late on purpose
    assert report["settings"]["steering"]["onset_delay_frames"] == 3
    assert "onset oracle + 3 frames delay (240 ms)" in (tmp_path / "3" / "report.md").read_text()
    assert report["onset_source"].endswith("delayed on purpose by 3 frames (240 ms)")
    assert report["onsets"]["interrupt+steer"]["median_frames"] == 3
    with pytest.raises(RunError, match=r"onset_delay_frames: 3 -> 4"):  # part of the run's identity
        run(_config(vector_file, conditions=["interrupt+steer"], limit=1, onset_delay_frames=4), tmp_path / "3",
            model=tiny, progress=False)
    for bad in (dict(onset_delay_frames=-1), dict(onset_delay_frames=2, onset="energy")):
        with pytest.raises(RunError, match="--onset-delay"):
            _config(vector_file, **bad).validate()


def test_detectors_fire_only_while_the_model_speaks_unless_told_otherwise(tiny, vector_file, tmp_path):
    assert RunConfig().onset_only_while_model_speaks is True
    for gate in (True, False):
        cfg = _config(vector_file, conditions=["interrupt+steer"], limit=1, onset="energy",
                      onset_only_while_model_speaks=gate)
        steer = read_results(run(cfg, tmp_path / str(gate), model=tiny, progress=False))[0]
        onsets = steer["steer_onsets"]
        assert steer["onset_latency_frames"] == (onsets[0] - steer["speech_onset_frame"] if onsets else None)
        report = merge_and_report(tmp_path / str(gate))
        expected = "fires only while the model speaks" if gate else "fires whenever the user sounds"
        assert expected in report["onset_source"] and expected in (tmp_path / str(gate) / "report.md").read_text()


def test_greedy_conditions_share_everything_until_the_onset(tiny, vector_file, tmp_path):
    cfg = _config(vector_file, conditions=["interrupt", "interrupt+steer"], limit=1)
    recs = {r["condition"]: r for r in read_results(run(cfg, tmp_path, model=tiny, progress=False))}
    assert recs["interrupt"]["onset_frame"] == recs["interrupt+steer"]["onset_frame"]


def test_buffered_and_side_effect_conditions(tiny, vector_file, tmp_path):
    """buffered: the query holds "Um, excuse me," first (longer); +steer conditions steer from the query's onset."""
    conds = ["interrupt", "buffered", "buffered+steer", "no_interrupt", "no_interrupt+steer"]
    recs = {r["condition"]: r for r in read_results(run(_config(vector_file, conditions=conds, limit=1), tmp_path,
                                                         model=tiny, progress=False))}
    plain = recs["interrupt"]["query_end_frame"] - recs["interrupt"]["onset_frame"]
    buffered = recs["buffered"]["query_end_frame"] - recs["buffered"]["onset_frame"]
    assert buffered >= plain + 10  # about 1.0 s of buffer and pause
    for cond in ("buffered+steer", "no_interrupt+steer"):
        assert recs[cond]["steer_onsets"] == [recs[cond]["onset_frame"]]
    assert recs["buffered"]["steered_frames"] == [] and recs["no_interrupt"]["steered_frames"] == []


def test_configuration_clash_on_resume_names_the_options(tiny, vector_file, tmp_path):
    run(_config(vector_file, limit=1, conditions=["interrupt"]), tmp_path, model=tiny, progress=False)
    with pytest.raises(RunError, match=r"another configuration \(alpha: None -> 1.0; rules.reply_frames: 6 -> 7\)"):
        run(_config(vector_file, limit=1, conditions=["interrupt"], alpha=1.0,
                    rules=ScenarioRules(interrupt_after_frames=3, quiet_frames=3, max_wait_frames=8, reply_frames=7)),
            tmp_path, model=tiny, progress=False)
    # the batch size changes speed, never results: resuming with another one is allowed
    run(_config(vector_file, limit=1, conditions=["interrupt"], batch_size=3), tmp_path, model=tiny, progress=False)


ALL = ["no_interrupt", "interrupt", "interrupt+steer", "interrupt+random", "interrupt+mistimed", "buffered",
       "buffered+steer", "no_interrupt+steer"]


def _records(folder) -> dict[tuple[str, str, int], dict]:
    recs = {}
    for f in sorted(folder.glob("results*.jsonl")):
        for r in read_results(f):
            recs[(r["id"], r["condition"], r["repetition"])] = r
    return recs


def test_sampled_results_do_not_depend_on_batches_shards_or_resume(tiny, vector_file, tmp_path):
    """One batch, batches of 4 (an item's 8 conditions stay whole), two shards, a killed and resumed run."""
    cfg = _config(vector_file, greedy=False, limit=3, repetitions=2, conditions=ALL, batch_size=100)
    whole = _records(run(cfg, tmp_path / "one", model=tiny, progress=False).parent)
    assert len(whole) == 3 * 2 * 8
    in_fours = _records(run(dataclasses.replace(cfg, batch_size=4), tmp_path / "fours", model=tiny,
                            progress=False).parent)
    for rank in range(2):
        run(dataclasses.replace(cfg, batch_size=12), tmp_path / "shards", model=tiny, progress=False,
            shard=(rank, 2))
    sharded = _records(tmp_path / "shards")
    resumed_dir = tmp_path / "resumed"
    results = run(dataclasses.replace(cfg, batch_size=16), resumed_dir, model=tiny, progress=False)
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:13]) + "\n" + lines[13][:25])  # killed mid-write, mid-item
    run(dataclasses.replace(cfg, batch_size=5), resumed_dir, model=tiny, progress=False)
    resumed = _records(resumed_dir)
    for other in (in_fours, sharded, resumed):
        assert other == whole
    shards = sorted(p.name for p in (tmp_path / "shards").glob("results.rank*.jsonl"))
    assert shards == ["results.rank0.jsonl", "results.rank1.jsonl"]
    # an item's conditions share their noise: identical streams until the onset, so the same placement
    for (item, cond, rep), r in whole.items():
        if cond.startswith("interrupt+"):
            assert r["onset_frame"] == whole[(item, "interrupt", rep)]["onset_frame"]
    # and the repetitions draw fresh noise: sampled replies differ somewhere
    assert any(whole[(i, c, 0)]["reply"] != whole[(i, c, 1)]["reply"] for i, c, _ in whole)
    # ZBB's turn measure replaces FDB's take-over; the report pairs conditions and names its settings
    assert all(r["stopped"] in (0, 1) and "tor" not in r for r in whole.values())
    assert all((r["stop_frames"] is None) == (r["stopped"] == 0) for r in whole.values())
    report = merge_and_report(tmp_path / "one")
    assert report["settings"]["vector_sha256"] == hashlib.sha256(open(vector_file, "rb").read()).hexdigest()
    assert report["settings"]["steering"]["layer"] == 2 and report["paired"]["buffered+steer"]["reference"] == "buffered"
    assert "## Paired differences" in (tmp_path / "one" / "report.md").read_text()


def test_bad_inputs(tiny, vector_file, tmp_path):
    with pytest.raises(RunError, match="unknown condition"):
        run(_config(vector_file, conditions=["interupt"]), tmp_path / "a", model=tiny)
    with pytest.raises(RunError, match="--vector"):
        run(_config(None), tmp_path / "b", model=tiny)
    with pytest.raises(RunError, match="unknown item ids"):
        run(_config(vector_file, items=["unicorns-true"]), tmp_path / "c", model=tiny)
    other = PerceptionVector({2: torch.ones(32)}, {"method": "test"}).save(tmp_path / "other.safetensors")
    with pytest.raises(Exception, match="hidden size 32"):
        run(_config(str(other)), tmp_path / "d", model=tiny)


def test_two_torchrun_processes_shard_one_run(vector_file, tmp_path):
    """Scale-out through torchrun: 2 CPU processes, one shard each, one merged report."""
    import socket

    out = tmp_path / "sharded"
    with socket.socket() as sock:  # a free port: a fixed one collides with any other run on the machine
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", port,
           "-m", "zbb.cli", "run", "--model", "tiny", "--out", str(out), "--vector", vector_file, "--limit", "2",
           "--conditions", "interrupt", "interrupt+steer", "--greedy", "--max-wait", "8", "--reply-frames", "6",
           "--interrupt-after", "3", "--no-report"]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, timeout=600)
    shards = sorted(p.name for p in out.glob("results.rank*.jsonl"))
    assert shards == ["results.rank0.jsonl", "results.rank1.jsonl"]
    report = merge_and_report(out)
    assert report["conditions"]["interrupt"]["n_items"] == 2
    assert json.loads((out / "report.json").read_text())["conditions"]["interrupt+steer"]["n_items"] == 2


def test_a_prompt_starts_every_scenario_and_is_recorded(tiny, vector_file, tmp_path):
    cfg = _config(vector_file, limit=1, conditions=["interrupt", "interrupt+steer"], text_prompt="w5 w6")
    records = {r["condition"]: r for r in read_results(run(cfg, tmp_path, model=tiny, progress=False))}
    offset = 6 + len(tiny.tokenizer.encode("<system> w5 w6 <system>")) + 6
    from zbb.build import load_context_audio

    context_frames = -(-len(load_context_audio(None, load_items()[0]["context"])) // 1920)
    steer = records["interrupt+steer"]
    assert steer["onset_frame"] >= offset + context_frames  # the context is played after the prompt
    assert steer["steer_onsets"] == [steer["onset_frame"]]  # steering stays on absolute frames
    assert steer["steered_frames"] == [steer["onset_frame"] + k for k in range(3)]
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["config"]["text_prompt"] == "w5 w6" and saved["prompt"]["text_prompt"] == "w5 w6"
    report = merge_and_report(tmp_path)
    assert report["settings"]["prompt"]["text_prompt"] == "w5 w6"
    assert "- **Conversation start:** voice none; role 'w5 w6'" in (tmp_path / "report.md").read_text()


def test_the_random_control_draws_a_direction_per_item_and_repetition(tiny, vector_file, tmp_path):
    runner = Runner(tiny, _config(vector_file, seed=3))
    items = [it["id"] for it in load_items()[:2]]
    rows = [("interrupt+random", items[0], 0), ("interrupt+random", items[1], 0), ("interrupt+random", items[0], 1),
            ("interrupt+steer", items[0], 0), ("interrupt+steer", items[1], 0), ("interrupt", items[0], 0),
            ("interrupt+random", items[0], 0)]
    st = runner.row_steerings(rows)
    vec = PerceptionVector.load(vector_file)[2]
    dirs = [s.vector[2] for s in st[:3]]
    assert all(d.norm().item() == pytest.approx(vec.norm().item(), rel=1e-5) for d in dirs)
    assert not torch.allclose(dirs[0], dirs[1]) and not torch.allclose(dirs[0], dirs[2])
    assert torch.equal(st[6].vector[2], dirs[0])  # the same (item, repetition): the same direction, in any batch
    assert st[3] is st[4] and torch.equal(st[3].vector[2], vec) and st[5] is None
    other_seed = Runner(tiny, _config(vector_file, seed=4)).row_steerings(rows[:1])[0]
    assert not torch.allclose(other_seed.vector[2], dirs[0])


def test_a_run_from_before_the_per_item_random_control_is_not_resumed(tiny, vector_file, tmp_path):
    cfg = _config(vector_file, limit=1, conditions=["interrupt", "interrupt+random"])
    run(cfg, tmp_path, model=tiny, progress=False)
    merge_and_report(tmp_path)  # the report says how the control was drawn
    assert "- **Random control:** a random direction of the vector's norm per (item, repetition)" in \
        (tmp_path / "report.md").read_text()
    saved = json.loads((tmp_path / "config.json").read_text())
    del saved["random_control"]  # as an older toolkit wrote it
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(RunError, match="one random direction for the whole run"):
        run(cfg, tmp_path, model=tiny, progress=False)
    merge_and_report(tmp_path)  # its report (rewritten from what is there) says the control was one draw
    assert "one random direction for the whole run (made before per-item draws)" in (tmp_path / "report.md").read_text()
    # an old run without the random control resumes as before
    plain = dataclasses.replace(cfg, conditions=["interrupt"])
    run(plain, tmp_path / "plain", model=tiny, progress=False)
    saved = json.loads((tmp_path / "plain" / "config.json").read_text())
    del saved["random_control"]
    (tmp_path / "plain" / "config.json").write_text(json.dumps(saved))
    run(plain, tmp_path / "plain", model=tiny, progress=False)
