"""Replies produced anywhere (JSONL: id, condition, reply, extra fields), read and scored: `zbb score`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from duplex_steer.errors import DuplexSteerError

from . import ITEM_BANK_VERSION, ZBBItem


class RepliesError(DuplexSteerError, ValueError):
    """A replies file that cannot be scored; the message names the file and line."""


def read_replies(path: Path, items: dict[str, ZBBItem]) -> list[dict[str, Any]]:
    """Read a replies JSONL file ({"id", "condition", "reply", ...extra}); raise RepliesError naming the bad line."""
    from .report import check_condition

    if not path.is_file():
        raise RepliesError(f"replies file not found: {path}")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise RepliesError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise RepliesError(f"{where}: expected a JSON object")
            for field in ("id", "condition", "reply"):
                if field not in row:
                    raise RepliesError(f"{where}: missing field {field!r}")
            if not isinstance(row["reply"], str):
                raise RepliesError(f"{where}: 'reply' must be a string")
            if row["id"] not in items:
                raise RepliesError(
                    f"{where}: unknown item id {row['id']!r} (not in item bank {ITEM_BANK_VERSION})"
                )
            try:
                check_condition(str(row["condition"]))
            except ValueError as err:
                raise RepliesError(f"{where}: {err}") from None
            rows.append(row)
    if not rows:
        raise RepliesError(f"{path}: no replies")
    return rows


def score_rows(
    rows: Sequence[dict[str, Any]], items: dict[str, ZBBItem], judge: Any = None
) -> list[dict[str, Any]]:
    """Score each reply row into a record (rules always; the judge, when given, decides correct/iwor).

    Rows carrying "chunks" and "interrupt_end_s" also get Full-Duplex-Bench TOR and latency.
    """
    from .scoring import is_correct, iwor, latency, stance, take_over

    records = []
    for row in rows:
        item = items[row["id"]]
        reply = row["reply"]
        rule_correct, rule_iwor = int(is_correct(item, reply)), int(iwor(item, reply))
        record: dict[str, Any] = {
            "id": row["id"],
            "condition": row["condition"],
            "correct": rule_correct,
            "iwor": rule_iwor,
        }
        extra = {k: v for k, v in row.items() if k not in ("id", "condition", "reply")}
        chunks, end_s = extra.pop("chunks", None), extra.pop("interrupt_end_s", None)
        if chunks is not None and end_s is not None:
            record["tor"] = take_over(chunks, float(end_s))
            record["latency"] = latency(chunks, float(end_s))
        record.update({"truth": item["truth"], "stance": stance(reply) or ""})
        if judge is not None:
            verdict = judge(item, reply)
            record.update(
                {
                    "correct": int(verdict.correct),
                    "iwor": int(verdict.heard_subject),
                    "correct_rule": rule_correct,
                    "iwor_rule": rule_iwor,
                }
            )
        record.update({k: v for k, v in extra.items() if k not in record})
        record["reply"] = reply
        records.append(record)
    return records


__all__ = ["RepliesError", "read_replies", "score_rows"]
