"""``zbb`` command line: item bank, scoring and building here; the subcommands that run a model (main,
run, report, sweep, import-fdb) in `zbb.run_commands`.

Each subcommand is an ``add_<name>(subparsers)`` function that adds its parser and sets
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

from duplex_steer.errors import DuplexSteerError
from duplex_steer.threads import add_threads_to_subcommands, configure_from_args, passive_wait
from zbb import ITEM_BANK_VERSION, ITEMS_PATH, ZBBItem, load_bank, load_items
from zbb.replies import read_replies, score_rows
from zbb.run_commands import (
    ALL_CONDITIONS,
    add_import_fdb,
    add_keep_unmet,
    add_main,
    add_report,
    add_run,
    add_sweep,
)

EXIT_USAGE = 2


class CliError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


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


def _cmd_build(args: argparse.Namespace) -> int:
    from duplex_steer.speech import get_tts
    from zbb.build import AUDIO_DIR, build_audio
    from zbb.rendering import RENDERINGS_DIR, build_rendering, manifest_from_recordings, rendering_name

    bank = ITEMS_PATH
    if args.item_bank:  # checked (and a custom bank's subjects counted) before anything is rendered
        load_bank(args.item_bank)
        bank = Path(args.item_bank)
        if not (args.out or args.from_recordings):
            raise CliError("--item-bank renders another bank's items: give --out DIR (zbb/renderings holds ZBB's)")
    if args.mute_subject:
        from zbb.muting import mute_subjects

        if args.tts or args.voice or args.from_recordings or args.items or args.limit or args.item_bank or not args.out:
            raise CliError("--mute-subject SOURCE copies a whole rendering: give it --out DIR and no other option")
        out = Path(args.out)
        manifest = mute_subjects(args.mute_subject, out)
    elif args.from_recordings:
        if args.tts or args.voice:
            raise CliError("--from-recordings reads recordings; it takes no --tts or --voice")
        manifest = manifest_from_recordings(args.from_recordings, bank, speaker=args.speaker or "",
                                            item_ids=args.items, limit=args.limit)
        out = Path(args.from_recordings)
    elif args.tts:
        tts = get_tts(args.tts, **({"voice": args.voice} if args.voice else {}))
        out = Path(args.out) if args.out else RENDERINGS_DIR / rendering_name(tts)
        if out.resolve() == AUDIO_DIR.resolve():
            raise CliError(f"{AUDIO_DIR} holds the default rendering (espeak-ng word by word); write other engines' "
                           "renderings elsewhere with --out")
        manifest = build_rendering(tts, out, bank, item_ids=args.items, limit=args.limit)
    else:
        if args.voice or args.items or args.limit or args.item_bank:
            raise CliError("--voice, --items, --limit and --item-bank go with --tts ENGINE (or --from-recordings)")
        out = Path(args.out) if args.out else AUDIO_DIR
        manifest = build_audio(ITEMS_PATH, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(manifest['entries'])} audio entries ({manifest['tts']}) and manifest.json to {out} "
          f"({size / 1e6:.1f} MB)")
    for name in manifest.get("flagged", []):
        print(f"warning: {name}: its detected onset or end lies outside the engine's own timing; listen to it")
    return 0


def _add_build(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build", help="render the benchmark's speech with a TTS engine, or index recordings of people",
        description="Without options: rebuild the committed default (espeak-ng word by word) in zbb/audio. "
        "--tts ENGINE [--voice V]: speak every query, buffered query and context sentence by sentence into "
        "--out (default zbb/renderings/ENGINE-VOICE) with manifest.json (onsets detected and checked against "
        "the engine's timings). --from-recordings DIR: write DIR/manifest.json for recordings of a person. "
        "--mute-subject SOURCE --out DIR: copy a TTS-built rendering with every question's subject silenced "
        "(the IWOR guess-floor control).")
    parser.add_argument("--tts", default=None, help="engine: espeak-ng, flite or festival (any registered TTS)")
    parser.add_argument("--voice", default=None,
                        help="engine voice: espeak-ng en-us...; flite slt, awb, rms, kal; festival slt-hts, kal")
    parser.add_argument("--out", default=None, help="rendering folder (default: zbb/renderings/ENGINE-VOICE)")
    parser.add_argument("--from-recordings", default=None, metavar="DIR",
                        help="folder of recordings: queries/<id>.wav, contexts/<slug>.wav, optionally buffered/<id>.wav")
    parser.add_argument("--speaker", default=None, help="who was recorded (stored in the manifest)")
    parser.add_argument("--mute-subject", default=None, metavar="SOURCE",
                        help="copy the TTS-built rendering SOURCE to --out with each question's subject silenced: "
                        "ZBB's IWOR on it is how often a model names a subject it never heard")
    parser.add_argument("--items", nargs="+", default=None, help="item ids (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.add_argument("--item-bank", default=None, metavar="FILE",
                        help="with --tts or --from-recordings: the items of FILE (ZBB's format) instead of ZBB's, "
                             "e.g. development items (`duplex-steer organism-dev-items`); play them with "
                             "`zbb run/sweep --item-bank FILE --audio DIR`")
    parser.set_defaults(func=_cmd_build)


def _print_and_write(text: str, out: str | None) -> None:
    """Print a markdown table and, with --out, write the same text to that file."""
    print(text, end="")
    if out:
        Path(out).write_text(text, encoding="utf-8")


def _cmd_compare(args: argparse.Namespace) -> int:
    from zbb.compare import compare_runs, render_compare_markdown

    comparison = compare_runs(args.run, args.against, keep_unmet=args.keep_unmet)
    _print_and_write(render_compare_markdown(comparison, str(args.run), str(args.against)), args.out)
    return 0


def _add_compare(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "compare", help="two runs on the same items, condition by condition (paired differences)",
        description="RUN minus --against REFERENCE per condition, paired by item: correctness and IWOR with 95% "
        "BCa intervals and exact McNemar p. With REFERENCE a run on the subject-muted copy of RUN's rendering "
        "(`zbb build --mute-subject`), the difference is what hearing the subject adds.")
    parser.add_argument("run", help="a run folder (`zbb run/main --out`)")
    parser.add_argument("--against", required=True, metavar="REFERENCE", help="the run folder to subtract")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    add_keep_unmet(parser)
    parser.set_defaults(func=_cmd_compare)


def _cmd_talk_split(args: argparse.Namespace) -> int:
    from zbb.compare import read_run
    from zbb.talk_split import render_talk_split

    parts = []
    for run in args.runs:
        tables = render_talk_split(f"### {run}", read_run(run, args.keep_unmet))
        parts.append(tables or f"### {run}\n\nno record says what the model said during the question (replies "
                               "scored from a file carry no `said_during_query`)\n")
    _print_and_write("\n".join(parts), args.out)
    return 0


def _add_talk_split(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "talk-split", help="IWOR split by whether the model talked over the question: stopped, or heard through?",
        description="Per condition, the share of items where the model began words while the question was said "
        "and the IWOR of each part; per steered or control condition, paired with the unsteered one by item: how "
        "often it was made to stop and how often it then named the first word (zbb.talk_split). Tells a vector "
        "that repairs by stopping the model from one that repairs its hearing while it talks.")
    parser.add_argument("runs", nargs="+", help="run folders (`zbb run/main --out`)")
    parser.add_argument("--out", default=None, help="also write the tables to this markdown file")
    add_keep_unmet(parser)
    parser.set_defaults(func=_cmd_talk_split)


def _cmd_choose(args: argparse.Namespace) -> int:
    from zbb.sweep_choice import choose_settings, load_summaries, render_choice

    for option, bound in (("--tolerance", args.tolerance), ("--control-bound", args.control_bound)):
        if bound < 0:
            raise CliError(f"{option} {bound:g}: --tolerance and --control-bound are bounds: 0 or more")
    choice = choose_settings(load_summaries(args.sweeps), tolerance=args.tolerance, control_bound=args.control_bound)
    text = render_choice(choice, args.sweeps)
    print(text, end="")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text, encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(choice, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0 if choice["chosen"] else 1


def _add_choose(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "choose", help="choose steering settings from sweeps on development items by a rule fixed in advance",
        description="Apply one rule to the sweeps (e.g. one per training seed, all on development items: `zbb sweep "
        "--item-bank FILE`, with no_interrupt+steer, buffered+steer and interrupt+random among --conditions): cells in "
        "every sweep "
        "whose side effects stay within --tolerance and whose random control recovers less than --control-bound "
        "everywhere; the highest mean IWOR recovery; ties to the smaller alpha, earlier layer, shorter span "
        "(zbb.sweep_choice).")
    parser.add_argument("sweeps", nargs="+", help="sweep folders (`zbb sweep --out`)")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="largest side effect allowed (no_interrupt+steer - no_interrupt, buffered+steer - buffered), "
                             "default 0.05")
    parser.add_argument("--control-bound", type=float, default=0.25,
                        help="the random control's IWOR recovery must stay below this, default 0.25")
    parser.add_argument("--out", default=None, help="also write the choice to OUT.json and OUT.md")
    parser.set_defaults(func=_cmd_choose)


SUBCOMMANDS: list[Callable[[Any], None]] = [add_main, _add_items, _add_score, add_run, add_report, _add_build,
                                            _add_compare, _add_talk_split, add_sweep, _add_choose,
                                            add_import_fdb]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="zbb", description="Zero-Buffer Benchmark tools.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    add_threads_to_subcommands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zbb`` console script; returns the exit code."""
    passive_wait()  # before anything imports torch (duplex_steer.threads)
    args = build_parser().parse_args(argv)
    configure_from_args(args)
    try:
        return int(args.func(args))
    except (CliError, ValueError, OSError, DuplexSteerError) as err:
        print(f"zbb: error: {err}", file=sys.stderr)
        return EXIT_USAGE


__all__ = ["ALL_CONDITIONS", "CliError", "SUBCOMMANDS", "ZBBItem", "build_parser", "main", "read_replies",
           "score_rows"]

if __name__ == "__main__":
    sys.exit(main())
