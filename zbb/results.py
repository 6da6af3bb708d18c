"""A run's results file (results.jsonl): one JSON record per finished scenario, appended and synced the
moment it exists, so that a crash loses at most the line being written and a rerun resumes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RESULTS = "results.jsonl"


def read_results(path: Path) -> list[dict[str, Any]]:
    """Finished records; a torn last line (a crash mid-write) is ignored, never fatal."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def read_run_records(out_dir: str | Path) -> list[dict[str, Any]]:
    """Every finished record of a run folder, merged over its results files (`results.jsonl`,
    `results.rank<R>.jsonl`), one per (item, condition, repetition)."""
    records = {}
    for f in sorted(Path(out_dir).glob("results*.jsonl")):
        for r in read_results(f):
            records[record_key(r)] = r
    return list(records.values())


def repair_torn_tail(path: Path) -> None:
    """Cut a partial last line (a crash mid-write) so that appends start on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def record_key(rec: dict[str, Any]) -> tuple[str, str, int]:
    """(item id, condition, repetition): what a record is the result of (resumes skip the keys they hold)."""
    return rec["id"], rec["condition"], int(rec["repetition"])


def append_records(path: Path, records: Iterator[dict[str, Any]], total: int, progress: str | None) -> None:
    """Append each record as one JSON line the moment it exists (flushed and synced), with a progress bar."""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=progress, unit="item")
    try:
        with path.open("a") as fh:
            for record in records:
                fh.write(json.dumps(record) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
                if bar:
                    bar.update(1)
    finally:
        if bar:
            bar.close()


__all__ = ["RESULTS", "append_records", "read_results", "record_key", "repair_torn_tail"]
