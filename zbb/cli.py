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

from duplex_steer.errors import DuplexSteerError
from duplex_steer.model_args import add_model_args, torch_dtype
from duplex_steer.prompt_args import add_prompt_args
from duplex_steer.recording_limits import add_length_args, max_seconds_from_args
from duplex_steer.steering.defaults import check_alpha
from duplex_steer.steering_args import add_steering_args
from duplex_steer.threads import add_threads_to_subcommands, configure_from_args, passive_wait
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


def _run_config(args: argparse.Namespace):
    from zbb.runner import RunConfig
    from zbb.scenario import ScenarioRules

    rules = ScenarioRules(interrupt_after_frames=args.interrupt_after, quiet_frames=args.quiet_frames,
                          max_wait_frames=args.max_wait, reply_frames=args.reply_frames)
    gate = {} if args.only_while_speaking is None else {"onset_only_while_model_speaks": args.only_while_speaking}
    check_alpha(args.alpha, args.allow_negative_alpha)
    return RunConfig(**gate, model=args.model, conditions=args.conditions, vector=args.vector, layer=args.layer,
                     alpha=args.alpha, span=args.span, schedule=args.schedule, onset=args.onset, rules=rules,
                     greedy=args.greedy, seed=args.seed, repetitions=args.repetitions,
                     batch_size=args.batch_size, items=args.items, limit=args.limit,
                     asr_model=args.asr_model, audio=args.audio, voice=args.voice, text_prompt=args.text_prompt,
                     dtype=args.dtype, device=args.device)


def _cmd_run(args: argparse.Namespace) -> int:
    from zbb.runner import merge_and_report, run

    shard = tuple(int(x) for x in args.shard.split("/")) if args.shard else None
    run(_run_config(args), args.out, shard=shard)
    if args.no_report:
        return 0
    merge_and_report(args.out, keep_unmet=args.keep_unmet)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    print(f"results and report in {args.out}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from zbb.runner import merge_and_report

    merge_and_report(args.out, keep_unmet=args.keep_unmet)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    return 0


def _cmd_build(args: argparse.Namespace) -> int:
    from duplex_steer.speech import get_tts
    from zbb.build import AUDIO_DIR, build_audio
    from zbb.rendering import RENDERINGS_DIR, build_rendering, manifest_from_recordings, rendering_name

    if args.from_recordings:
        if args.tts or args.voice:
            raise CliError("--from-recordings reads recordings; it takes no --tts or --voice")
        manifest = manifest_from_recordings(args.from_recordings, speaker=args.speaker or "",
                                            item_ids=args.items, limit=args.limit)
        out = Path(args.from_recordings)
    elif args.tts:
        tts = get_tts(args.tts, **({"voice": args.voice} if args.voice else {}))
        out = Path(args.out) if args.out else RENDERINGS_DIR / rendering_name(tts)
        if out.resolve() == AUDIO_DIR.resolve():
            raise CliError(f"{AUDIO_DIR} holds the default rendering (espeak-ng word by word, what the organism was "
                           "trained on); write other engines elsewhere with --out")
        manifest = build_rendering(tts, out, item_ids=args.items, limit=args.limit)
    else:
        if args.voice or args.items or args.limit:
            raise CliError("--voice, --items and --limit go with --tts ENGINE (or --from-recordings)")
        out = Path(args.out) if args.out else AUDIO_DIR
        manifest = build_audio(ITEMS_PATH, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {len(manifest['entries'])} audio entries ({manifest['tts']}) and manifest.json to {out} "
          f"({size / 1e6:.1f} MB)")
    for name in manifest.get("flagged", []):
        print(f"warning: {name}: its detected onset or end lies outside the engine's own timing; listen to it")
    return 0


AUDIO_HELP = ("a rendering folder with manifest.json (`zbb build --tts ...`, zbb/renderings/*, or recordings: "
              "`zbb build --from-recordings DIR`); default: the committed zbb/audio")


def run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `zbb run` and `zbb sweep`."""
    add_model_args(parser)
    parser.add_argument("--out", required=True, help="run folder (results.jsonl, config.json, report)")
    parser.add_argument("--conditions", nargs="+", default=["no_interrupt", "interrupt", "interrupt+steer"])
    parser.add_argument("--vector", default=None, help="perception vector file (steered conditions)")
    add_steering_args(parser)
    parser.add_argument("--schedule", default="linear", choices=["linear", "constant", "exponential"])
    parser.add_argument("--onset", default="oracle", choices=["oracle", "energy", "vad"],
                        help="oracle: the query's first speech; energy / VAD: causal detectors on the user's audio")
    parser.add_argument("--only-while-speaking", action=argparse.BooleanOptionalAction, default=None,
                        help="energy / VAD fire only while the model speaks (default: on, as in duplex-steer steer "
                             "and the demo)")
    parser.add_argument("--interrupt-after", type=int, default=12, help="model speech frames before the query")
    parser.add_argument("--quiet-frames", type=int, default=10, help="no_interrupt: silent frames before the query")
    parser.add_argument("--max-wait", type=int, default=125, help="frames to wait at most before the query")
    parser.add_argument("--reply-frames", type=int, default=75, help="frames of reply after the query")
    parser.add_argument("--greedy", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="scenarios per batch; an item's conditions stay in one batch, which grows to fit them (speed only)")
    parser.add_argument("--items", nargs="+", default=None, help="item ids (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.add_argument("--audio", default=None, help=AUDIO_HELP)
    add_prompt_args(parser)
    parser.add_argument("--asr-model", default=None,
                        help="score an ASR transcript of the model's audio instead of its text stream: a local "
                             "transformers speech-recognition folder or a cached hub id (see docs/zbb.md)")


ALL_CONDITIONS = ["no_interrupt", "interrupt", "interrupt+steer", "interrupt+random", "interrupt+mistimed",
                  "buffered", "buffered+steer", "no_interrupt+steer"]


def _cmd_main(args: argparse.Namespace) -> int:
    """The README's main job: fit a vector on the dialogue set, run every condition, write the report."""
    import duplex_steer
    from duplex_steer.organism.fixtures import default_dialogues
    from duplex_steer.prompt_args import check_prompt_args, prompt_from_args, prompt_line
    from duplex_steer.steering.defaults import default_steering
    from duplex_steer.steering.fit import ActivityLabeler, fit_perception_vector
    from zbb.runner import RunConfig, check_audio, merge_and_report, run

    if args.audio:
        check_audio(args.audio, ALL_CONDITIONS, limit=args.limit)  # before the model loads
    check_prompt_args(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = duplex_steer.load(args.model, device=args.device, dtype=torch_dtype(args.dtype))
    print(f"model: {model.label}")
    prompt = prompt_from_args(model, args)
    print(prompt_line(prompt))
    steer = default_steering(model)
    vector_path = out / "perception_vector.safetensors"
    if not vector_path.is_file():
        print("fitting the perception vector on the turn-by-turn dialogue set (not the benchmark's items)")
        labeler = ActivityLabeler(require_model_silence=not model.is_random)
        vector, report = fit_perception_vector(model, default_dialogues(model), [steer["layer"]], labeler,
                                               batch_size=8, prompt=prompt)
        vector.save(vector_path)
        print(report.to_text())
    config = RunConfig(model=args.model, conditions=ALL_CONDITIONS, vector=str(vector_path), batch_size=args.batch_size,
                       limit=args.limit, seed=args.seed,  # layer, alpha, span: the model's (resolved, recorded)
                       repetitions=args.repetitions, audio=args.audio, voice=args.voice,
                       text_prompt=args.text_prompt, dtype=args.dtype, device=args.device)
    run(config, out, model=model)
    merge_and_report(out, keep_unmet=args.keep_unmet)
    print((out / "report.md").read_text(encoding="utf-8"), end="")
    if model.caveat:
        print(f"NOTE: {model.caveat}.")
    print(f"report: {out / 'report.md'} (+ report.png, items.csv, results.jsonl)")
    print("On a GPU with real weights: zbb run --model kyutai/moshiko-pytorch-bf16 --vector VEC --out runs/moshi")
    return 0


def _add_main(subparsers: Any) -> None:
    parser = subparsers.add_parser("main", help="end to end: fit a vector, run all conditions, write the report")
    add_model_args(parser)
    parser.add_argument("--out", default="runs/zbb-main")
    parser.add_argument("--batch-size", type=int, default=50,
                        help="scenarios per batch; an item's conditions stay in one batch, which grows to fit them (speed only)")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.add_argument("--repetitions", type=int, default=1, help="sampled runs per item and condition")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--audio", default=None, help=AUDIO_HELP)
    add_prompt_args(parser)
    add_keep_unmet(parser)
    parser.set_defaults(func=_cmd_main)


def _add_run(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the benchmark on a model (resumable)")
    run_arguments(parser)
    parser.add_argument("--shard", default=None, help="RANK/WORLD (default: from torchrun's RANK, WORLD_SIZE)")
    parser.add_argument("--no-report", action="store_true", help="skip the report (shards; use `zbb report`)")
    add_keep_unmet(parser)
    parser.set_defaults(func=_cmd_run)


def _add_report(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="merge a run's shards and write the report")
    parser.add_argument("--out", required=True, help="run folder")
    add_keep_unmet(parser)
    parser.set_defaults(func=_cmd_report)


def add_keep_unmet(parser: argparse.ArgumentParser) -> None:
    """--keep-unmet: score the items whose condition did not happen (listed in the report either way)."""
    parser.add_argument("--keep-unmet", action="store_true",
                        help="keep in the scores the items whose condition did not happen (an interruption that "
                             "landed while the model was silent, a normal turn while it spoke); by default they "
                             "are listed in the report and left out")


def _add_build(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build", help="render the benchmark's speech with a TTS engine, or index recordings of people",
        description="Without options: rebuild the committed default (espeak-ng word by word) in zbb/audio. "
        "--tts ENGINE [--voice V]: speak every query, buffered query and context sentence by sentence into "
        "--out (default zbb/renderings/ENGINE-VOICE) with manifest.json (onsets detected and checked against "
        "the engine's timings). --from-recordings DIR: write DIR/manifest.json for recordings of a person.")
    parser.add_argument("--tts", default=None, help="engine: espeak-ng, flite or festival (any registered TTS)")
    parser.add_argument("--voice", default=None,
                        help="engine voice: espeak-ng en-us...; flite slt, awb, rms, kal; festival slt-hts, kal")
    parser.add_argument("--out", default=None, help="rendering folder (default: zbb/renderings/ENGINE-VOICE)")
    parser.add_argument("--from-recordings", default=None, metavar="DIR",
                        help="folder of recordings: queries/<id>.wav, contexts/<slug>.wav, optionally buffered/<id>.wav")
    parser.add_argument("--speaker", default=None, help="who was recorded (stored in the manifest)")
    parser.add_argument("--items", nargs="+", default=None, help="item ids (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.set_defaults(func=_cmd_build)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from zbb.sweep import DEFAULT_ALPHAS, DEFAULT_LIMIT, DEFAULT_SPANS, sweep

    for alpha in args.alphas or []:
        check_alpha(alpha, args.allow_negative_alpha, option="--alphas")
    if args.limit is None:
        args.limit = DEFAULT_LIMIT
    summary = sweep(_run_config(args), args.out, layers=args.layers, alphas=args.alphas or DEFAULT_ALPHAS,
                    spans=args.spans or DEFAULT_SPANS)
    if summary is None:
        print(f"shard done; run the same command without torchrun to write {args.out}/sweep.md")
        return 0
    print((Path(args.out) / "sweep.md").read_text(encoding="utf-8"), end="")
    print(f"sweep summary and heatmaps in {args.out} (sweep.json, sweep.md, sweep.png)")
    return 0


def _add_sweep(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep", help="grid over steering layer x alpha x span on a subset of items (resumable, heatmaps)",
        description="Run the unsteered conditions once and every (layer, alpha, span) cell of the steered ones, "
        "each as a resumable run folder under --out; write sweep.json, sweep.md and heatmaps (sweep.png). "
        "The grid options define the cells (the singular --layer/--alpha/--span are ignored); --limit defaults "
        "to 20 items (--limit 0: all).")
    run_arguments(parser)
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="default: the vector's layers")
    parser.add_argument("--alphas", type=float, nargs="+", default=None, help="default: 1 3 5.5 8")
    parser.add_argument("--spans", type=int, nargs="+", default=None, help="default: 1 3 6 (frames)")
    parser.set_defaults(func=_cmd_sweep)


def _cmd_import_fdb(args: argparse.Namespace) -> int:
    from duplex_steer.engine.conversation import ConversationPrompt
    from zbb.fdb import import_fdb, report_fdb
    from zbb.runner import RunConfig

    check_alpha(args.alpha, args.allow_negative_alpha)
    config = RunConfig(model=args.model, conditions=args.conditions, vector=args.vector, layer=args.layer,
                       alpha=args.alpha, span=args.span, schedule=args.schedule, greedy=args.greedy, seed=args.seed,
                       batch_size=args.batch_size, items=args.items, limit=args.limit, asr_model=args.asr_model,
                       dtype=args.dtype, device=args.device)
    prompt = ConversationPrompt(voice=args.voice, role=args.role) if args.voice or args.role else None
    import_fdb(args.dir, args.out, config, prompt=prompt, max_seconds=max_seconds_from_args(args))
    if args.no_report:
        return 0
    report_fdb(args.out)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    print(f"outputs (<condition>/<item>/output.wav, words.json) and report in {args.out}")
    return 0


def _add_import_fdb(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "import-fdb", help="run a model on Full-Duplex-Bench user-interruption items; TOR and latency",
        description="Play each item's input.wav through the model full duplex; write <condition>/<item>/output.wav "
        "(time-aligned, the input's length and rate) and words.json; report take-over rate and latency. Resumable.")
    parser.add_argument("dir", help="FDB user-interruption folder (item subfolders with input.wav, interrupt.json)")
    parser.add_argument("--out", required=True, help="output folder")
    add_model_args(parser)
    parser.add_argument("--conditions", nargs="+", default=["interrupt"],
                        help="interrupt, interrupt+steer, interrupt+random, interrupt+mistimed (default: interrupt)")
    parser.add_argument("--vector", default=None, help="perception vector file (steered conditions)")
    add_steering_args(parser)
    parser.add_argument("--schedule", default="linear", choices=["linear", "constant", "exponential"])
    parser.add_argument("--greedy", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--items", nargs="+", default=None, help="item folder names (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="first N items only")
    parser.add_argument("--asr-model", default=None, help="time words with this ASR model instead of the text stream")
    parser.add_argument("--role", default=None, help="text role prompt (PersonaPlex-style start)")
    parser.add_argument("--voice", default=None, help="voice prompt recording (PersonaPlex-style start)")
    add_length_args(parser)
    parser.add_argument("--no-report", action="store_true", help="skip the report")
    parser.set_defaults(func=_cmd_import_fdb)


SUBCOMMANDS: list[Callable[[Any], None]] = [_add_main, _add_items, _add_score, _add_run, _add_report, _add_build,
                                            _add_sweep, _add_import_fdb]


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


if __name__ == "__main__":
    sys.exit(main())
