"""``zbb`` command line: item bank and scoring (more subcommands register the same way).

Each subcommand is a ``_add_<name>(subparsers)`` function that adds its parser and sets
``func``; ``main`` dispatches and turns ``CliError`` (and ValueError/OSError from the library)
into one line on stderr with exit code 2, never a traceback.

    zbb items                                     # path of the item bank
    zbb score --replies replies.jsonl --out DIR   # items.csv, report.json, report.md, report.png
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from zbb import ITEM_BANK_VERSION, ITEMS_PATH, ZBBItem, load_items

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def read_replies(path: Path, items: dict[str, ZBBItem]) -> list[dict[str, Any]]:
    """Read a replies JSONL file ({"id", "condition", "reply", ...extra}); raise CliError naming the bad line."""
    from zbb.report import check_condition

    if not path.is_file():
        raise CliError(f"replies file not found: {path}")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise CliError(f"{where}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise CliError(f"{where}: expected a JSON object")
            for field in ("id", "condition", "reply"):
                if field not in row:
                    raise CliError(f"{where}: missing field {field!r}")
            if not isinstance(row["reply"], str):
                raise CliError(f"{where}: 'reply' must be a string")
            if row["id"] not in items:
                raise CliError(
                    f"{where}: unknown item id {row['id']!r} (not in item bank {ITEM_BANK_VERSION})"
                )
            try:
                check_condition(str(row["condition"]))
            except ValueError as err:
                raise CliError(f"{where}: {err}") from None
            rows.append(row)
    if not rows:
        raise CliError(f"{path}: no replies")
    return rows


def score_rows(
    rows: Sequence[dict[str, Any]], items: dict[str, ZBBItem], judge: Any = None
) -> list[dict[str, Any]]:
    """Score each reply row into a record (rules always; the judge, when given, decides correct/iwor).

    Rows carrying "chunks" and "interrupt_end_s" also get Full-Duplex-Bench TOR and latency.
    """
    from zbb.scoring import is_correct, iwor, latency, stance, take_over

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


def _cmd_items(args: argparse.Namespace) -> int:
    print(ITEMS_PATH)
    return 0


def _cmd_score(args: argparse.Namespace) -> int:
    from zbb.report import write_report

    items = {item["id"]: item for item in load_items()}
    rows = read_replies(Path(args.replies), items)
    judge = None
    extra: dict[str, Any] = {"item_bank": ITEM_BANK_VERSION, "scorer": "rules"}
    if args.judge_url or args.judge_model:
        if not (args.judge_url and args.judge_model):
            raise CliError("--judge-url and --judge-model go together")
        from zbb.judge import JudgeConfig, JudgeError, judge_reply

        config = JudgeConfig(url=args.judge_url, model=args.judge_model, timeout_s=args.judge_timeout)
        extra["scorer"] = f"llm-judge:{args.judge_model}"

        def judge(item: ZBBItem, reply: str) -> Any:
            try:
                return judge_reply(item, reply, config)
            except JudgeError as err:
                raise CliError(str(err)) from None

    records = score_rows(rows, items, judge)
    if judge is not None:
        agree = sum(r["correct"] == r["correct_rule"] for r in records) / len(records)
        extra["judge_rule_agreement_correct"] = agree
    write_report(records, args.out, caveat=args.caveat, n_boot=args.n_boot, seed=args.seed, extra=extra)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    print(f"wrote items.csv, report.json, report.md, report.png to {args.out}")
    return 0


def _add_items(subparsers: Any) -> None:
    parser = subparsers.add_parser("items", help="print the path of the item bank")
    parser.set_defaults(func=_cmd_items)


def _add_score(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score replies and write a report",
        description="Score replies (JSONL: id, condition, reply, optional extra fields) with the rule-based "
        "scorer or an LLM judge; write items.csv, report.json, report.md and report.png.",
    )
    parser.add_argument("--replies", required=True, help="JSONL file, one reply per line")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument(
        "--caveat", default=None, help="one line printed on the report, e.g. what model this was"
    )
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument(
        "--judge-url",
        default=None,
        help="OpenAI-compatible chat-completions URL; API key from $ZBB_JUDGE_API_KEY",
    )
    parser.add_argument("--judge-model", default=None, help="model name for the judge")
    parser.add_argument("--judge-timeout", type=float, default=60.0, help="seconds per judge request")
    parser.set_defaults(func=_cmd_score)


SUBCOMMANDS: list[Callable[[Any], None]] = [_add_items, _add_score]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="zbb", description="Zero-Buffer Benchmark tools.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zbb`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CliError, ValueError, OSError) as err:
        print(f"zbb: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
