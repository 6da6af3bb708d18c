"""ZBB runs in several local processes: the same records as one process, resumable, failures named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from duplex_steer.steering import PerceptionVector
from tests.conftest import REPO
from zbb.runner import RunConfig, read_results, run
from zbb.scenario import ScenarioRules
from zbb.workers import WorkerError, default_workers, run_in_workers

CONDITIONS = ["no_interrupt", "interrupt", "interrupt+steer", "buffered"]


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory, tiny):
    v = PerceptionVector({2: torch.randn(64, generator=torch.Generator().manual_seed(0))},
                         {"model": tiny.fingerprint(), "method": "test"})
    return str(v.save(tmp_path_factory.mktemp("vec") / "v.safetensors"))


def _config(vector_file: str, **kw) -> RunConfig:
    base = dict(model="tiny", vector=vector_file, limit=4, batch_size=8, greedy=False, seed=3, device="cpu",
                rules=ScenarioRules(interrupt_after_frames=3, quiet_frames=3, max_wait_frames=8, reply_frames=6),
                conditions=CONDITIONS)
    base.update(kw)
    return RunConfig(**base)


def _records(folder) -> dict:
    return {(r["id"], r["condition"], r["repetition"]): r
            for f in sorted(folder.glob("results*.jsonl")) for r in read_results(f)}


def test_two_processes_give_the_records_of_one(tiny, vector_file, tmp_path):
    cfg = _config(vector_file)
    one = _records(run(cfg, tmp_path / "one", model=tiny, progress=False).parent)
    run_in_workers(cfg, tmp_path / "two", workers=2, progress=False)
    assert sorted(p.name for p in (tmp_path / "two").glob("results*.jsonl")) == ["results.rank0.jsonl",
                                                                              "results.rank1.jsonl"]
    two = _records(tmp_path / "two")
    assert len(one) == 4 * len(CONDITIONS) and two == one
    # each item's conditions stayed in one process (their noise is keyed to the item)
    for rank in (0, 1):
        ids = {r["id"] for r in read_results(tmp_path / "two" / f"results.rank{rank}.jsonl")}
        assert len(ids) == 2
    saved = json.loads((tmp_path / "two" / "config.json").read_text())
    assert saved["steering"]["layer"] == 2  # the resolved settings were recorded once, by worker 0
    # nothing left: a rerun starts no process and changes nothing
    run_in_workers(cfg, tmp_path / "two", workers=2, progress=False)
    assert _records(tmp_path / "two") == one


def test_an_interrupted_parallel_run_resumes_to_the_same_records(tiny, vector_file, tmp_path):
    cfg = _config(vector_file, limit=6)
    whole = _records(run(cfg, tmp_path / "whole", model=tiny, progress=False).parent)
    out = tmp_path / "cut"
    code = ("import sys, json; from zbb.runner import RunConfig; from zbb.workers import run_in_workers; "
            f"run_in_workers(RunConfig.from_json(json.loads(sys.argv[1])), {str(out)!r}, workers=2, progress=False)")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.Popen([sys.executable, "-c", code, json.dumps(cfg.to_json())], cwd=REPO, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and len(_records(out) if out.is_dir() else {}) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the parent and both workers, mid-run
    proc.wait()
    partial = _records(out)
    assert 3 <= len(partial) < len(whole)
    run_in_workers(cfg, out, workers=1, progress=False)  # resumed with another number of processes
    assert _records(out) == whole


def test_a_failing_worker_is_named_and_the_others_stop(vector_file, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    cfg = _config(vector_file, model=str(broken))
    with pytest.raises(WorkerError, match=r"worker \d of 2 failed: .*rerun the same command to resume"):
        run_in_workers(cfg, tmp_path / "out", workers=2, progress=False)


def test_default_workers_one_per_core_for_small_cpu_models_only(vector_file, monkeypatch):
    import zbb.workers as workers

    monkeypatch.setattr(workers, "available_cores", lambda: 2)
    cfg = _config(vector_file, limit=8)
    work = [(item, c, 0) for item in [{"id": f"i{k}"} for k in range(8)] for c in CONDITIONS]
    assert default_workers(cfg, work) == 2
    assert default_workers(cfg, work[: len(CONDITIONS)]) == 1  # one batch: one process
    monkeypatch.setattr(workers, "available_cores", lambda: 64)
    many = [({"id": f"i{k}"}, c, 0) for k in range(40) for c in CONDITIONS]  # 40 batches of one item
    assert default_workers(_config(vector_file, batch_size=4), many) == workers.MAX_DEFAULT_WORKERS
    assert default_workers(_config(vector_file, model="kyutai/moshiko-pytorch-bf16"), work) == 1
    assert default_workers(_config(vector_file, device="cuda"), work) == 1


def test_cli_refuses_workers_with_shards(vector_file, tmp_path, capsys):
    from zbb.cli import main

    code = main(["run", "--model", "tiny", "--vector", vector_file, "--out", str(tmp_path / "x"), "--limit", "1",
                 "--workers", "2", "--shard", "0/2"])
    assert code != 0 and "--workers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--model", "tiny", "--out", str(tmp_path / "y"), "--workers", "0"])
