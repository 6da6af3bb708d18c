"""A ZBB run in several local processes: the CPU's cores each play a share of the items.

A small model such as the organism runs one thread per process (`duplex_steer.threads`: a second thread
does not pay for its synchronisation at its size), so one process leaves the other cores idle. Here the
remaining work is split into whole units (`zbb.work.shard_units`: an item's conditions never span
processes, and its sampling noise is keyed to it), each worker process loads the model and appends its
records to `results.rank{N}.jsonl`, and the parent shows one progress bar. Results equal a run in one
process, record for record (tests/test_zbb_workers.py); a failed or interrupted run keeps every finished
record and resumes with the same command, with any number of workers.

The workers are spawned (fresh interpreters), so a script that calls `run_in_workers` must do so under
`if __name__ == "__main__":`, as with any spawned process; the `zbb` commands do.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from duplex_steer.errors import DuplexSteerError
from duplex_steer.threads import available_cores, configure_threads, default_threads, is_small_model

from .results import record_key, repair_torn_tail
from .work import item_batches, launcher_shard, shard_units, units


class WorkerError(DuplexSteerError, RuntimeError):
    """A worker process of a parallel run failed (its finished records are kept)."""


def refuse_workers_with_shards(workers: int | None) -> None:
    """Local worker processes and shards (`--shard`, torchrun's ranks) are two ways to split one run: one at a time."""
    if workers not in (None, 1):
        raise WorkerError("--workers runs local processes; it cannot be combined with --shard or torchrun's ranks")


MAX_DEFAULT_WORKERS = 8  # each process imports torch and loads the model: beyond this the loads outweigh the gain


def default_workers(config: Any, work: list) -> int:
    """Processes for a run: the cores this process may use, for a small model on the CPU, capped by the
    number of batches (a process per batch at most) and `MAX_DEFAULT_WORKERS`; one for anything else (a
    GPU, a large model)."""
    if config.device not in (None, "cpu") or not is_small_model(config.model):
        return 1
    if config.device is None:
        import torch

        if torch.cuda.is_available():
            return 1
    batches = len(list(item_batches(work, config.batch_size)))
    return max(1, min(available_cores(), batches, MAX_DEFAULT_WORKERS))


def run_in_workers(config: Any, out_dir: str | Path, workers: int | None = None, progress: bool = True,
                   threads: int | None = None, model: Any = None) -> Path:
    """Run (or resume) `config` into `out_dir` with `workers` processes (None: `default_workers`).

    `threads` per worker (None: the policy for the model, shared by the workers); `model` (already loaded)
    is used when the run takes one process. Under a launcher (torchrun's RANK / WORLD_SIZE) each rank runs
    its shard in its own process (`zbb.runner.run`) and `workers` must be 1 or None. Returns the run folder."""
    from .runner import RESULTS, play, prepare_run, remaining_work, run

    if launcher_shard()[1] > 1:
        refuse_workers_with_shards(workers)
        return run(config, out_dir, model=model, progress=progress).parent
    out = prepare_run(config, out_dir)
    for f in out.glob("results*.jsonl"):  # no other process writes here yet: every torn last line can go
        repair_torn_tail(f)
    work = remaining_work(config, out)
    if not work:
        return out
    workers = default_workers(config, work) if workers is None else workers
    if workers < 1:
        raise WorkerError(f"--workers must be at least 1, got {workers}")
    parts = [part for part in (shard_units(work, rank, workers) for rank in range(workers)) if part]
    if len(parts) == 1:
        play(config, out, work, out / RESULTS, model=model, progress=progress)
        return out
    per_worker = threads or (1 if is_small_model(config.model) else
                             max(1, default_threads(config.model) // len(parts)))
    _supervise(config, out, parts, per_worker, progress)
    return out


def _supervise(config: Any, out: Path, parts: list[list], threads: int, progress: bool) -> None:
    """Start one spawned process per part, follow their results files, stop them all on a failure."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or OpenMP state
    errors = context.SimpleQueue()
    procs = []
    for rank, part in enumerate(parts):
        keys = [record_key({"id": w[0]["id"], "condition": w[1], "repetition": w[2]}) for w in part]
        procs.append(context.Process(target=_worker, name=f"zbb-worker-{rank}", daemon=True,
                                     args=(config.to_json(), str(out), rank, keys, threads, errors)))
    total = sum(len(p) for p in parts)
    start = _finished(out)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="item", desc=f"zbb {config.model} ({len(parts)} processes, "
                   f"{sum(len(units(p)) for p in parts)} items)")
    try:
        for proc in procs:
            proc.start()
        while any(proc.is_alive() for proc in procs):
            time.sleep(0.5)
            done = min(total, _finished(out) - start) if bar is not None else 0
            if bar is not None and done > bar.n:
                bar.update(done - bar.n)
            if not errors.empty():
                break
        failures = [errors.get() for _ in range(len(procs)) if not errors.empty()]
        failures += [(i, f"exited with code {p.exitcode}") for i, p in enumerate(procs)
                     if p.exitcode not in (0, None) and all(i != f[0] for f in failures)]
        if failures:
            rank, message = failures[0]
            raise WorkerError(f"worker {rank} of {len(procs)} failed: {message}. The records finished so far "
                              f"are kept in {out}; rerun the same command to resume")
        if bar is not None:
            bar.update(min(total, _finished(out) - start) - bar.n)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join()
        if bar is not None:
            bar.close()


def _finished(out: Path) -> int:
    """Records in the run folder's results files (complete lines)."""
    total = 0
    for f in out.glob("results*.jsonl"):
        with f.open("rb") as fh:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 16), b""))
    return total


def _worker(config_json: dict[str, Any], out: str, rank: int, keys: list[tuple[str, str, int]], threads: int,
            errors: Any) -> None:
    """One worker process: play its part of the work into results.rank{rank}.jsonl."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    configure_threads(threads)
    try:
        from .run_config import RunConfig, run_work
        from .runner import play

        config = RunConfig.from_json(config_json)
        wanted = {tuple(k) for k in keys}
        work = [w for w in run_work(config) if (w[0]["id"], w[1], w[2]) in wanted]
        play(config, Path(out), work, Path(out) / f"results.rank{rank}.jsonl", progress=False,
             record_settings=rank == 0)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which names it and stops the others
        errors.put((rank, f"{type(exc).__name__}: {exc}"))
        raise SystemExit(1) from None


__all__ = ["MAX_DEFAULT_WORKERS", "WorkerError", "refuse_workers_with_shards", "default_workers", "run_in_workers"]
