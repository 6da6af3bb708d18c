"""The ``zbb`` subcommands that run a model: main (the README's job), run, report, sweep and import-fdb.

Each ``add_<name>(subparsers)`` adds its parser and sets ``func``; `zbb.cli` registers them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from duplex_steer.model_args import add_model_args, torch_dtype
from duplex_steer.prompt_args import add_prompt_args
from duplex_steer.recording_limits import add_length_args, max_seconds_from_args
from duplex_steer.steering.defaults import check_alpha
from duplex_steer.steering_args import add_steering_args


def run_config_from_args(args: argparse.Namespace):
    """The RunConfig `zbb run` / `zbb sweep` options describe (alpha's sign checked here, before any loading)."""
    from zbb.run_config import RunConfig
    from zbb.scenario import ScenarioRules

    rules = ScenarioRules(interrupt_after_frames=args.interrupt_after, quiet_frames=args.quiet_frames,
                          max_wait_frames=args.max_wait, reply_frames=args.reply_frames)
    gate = {} if args.only_while_speaking is None else {"onset_only_while_model_speaks": args.only_while_speaking}
    check_alpha(args.alpha, args.allow_negative_alpha)
    return RunConfig(**gate, model=args.model, conditions=args.conditions, vector=args.vector, layer=args.layer,
                     alpha=args.alpha, span=args.span, schedule=args.schedule, onset=args.onset,
                     onset_delay_frames=args.onset_delay, rules=rules,
                     greedy=args.greedy, seed=args.seed, repetitions=args.repetitions,
                     batch_size=args.batch_size, items=args.items, limit=args.limit, item_bank=args.item_bank,
                     asr_model=args.asr_model, audio=args.audio, voice=args.voice, text_prompt=args.text_prompt,
                     dtype=args.dtype, device=args.device)


def cmd_run(args: argparse.Namespace) -> int:
    from zbb.run_folder import merge_and_report
    from zbb.runner import run
    from zbb.workers import refuse_workers_with_shards, run_in_workers

    config = run_config_from_args(args)
    if args.shard:
        refuse_workers_with_shards(args.workers)
        run(config, args.out, shard=tuple(int(x) for x in args.shard.split("/")))
    else:  # torchrun's ranks are handled there
        run_in_workers(config, args.out, workers=args.workers, threads=args.threads)
    if args.no_report:
        return 0
    merge_and_report(args.out, keep_unmet=args.keep_unmet)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    print(f"results and report in {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from zbb.run_folder import merge_and_report

    merge_and_report(args.out, keep_unmet=args.keep_unmet)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
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
    parser.add_argument("--onset-delay", type=int, default=0, metavar="N",
                        help="oracle only: start steering N frames (80 ms each) after the query's first speech, to "
                             "measure what a late detector costs (default 0)")
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
    parser.add_argument("--item-bank", default=None, metavar="FILE",
                        help="play the items of FILE (ZBB's format, any number of subjects) instead of ZBB's, with "
                             "--audio rendered from it (`zbb build --tts ENGINE --item-bank FILE`): development items "
                             "to choose steering settings on without touching ZBB (default: ZBB's 100 items)")
    add_prompt_args(parser)
    parser.add_argument("--asr-model", default=None,
                        help="score an ASR transcript of the model's audio instead of its text stream: a local "
                             "transformers speech-recognition folder or a cached hub id (see docs/zbb.md)")


ALL_CONDITIONS = ["no_interrupt", "interrupt", "interrupt+steer", "interrupt+random", "interrupt+mistimed",
                  "buffered", "buffered+steer", "no_interrupt+steer"]


def cmd_main(args: argparse.Namespace) -> int:
    """The README's main job: fit a vector on the dialogue set, run every condition, write the report."""
    import duplex_steer
    from duplex_steer.organism.fixtures import default_dialogues
    from duplex_steer.prompt_args import check_prompt_args, prompt_from_args, prompt_line
    from duplex_steer.steering.defaults import default_steering
    from duplex_steer.steering.fit import ActivityLabeler, fit_perception_vector
    from zbb.run_config import RunConfig, check_audio
    from zbb.run_folder import merge_and_report
    from zbb.workers import run_in_workers

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
    run_in_workers(config, out, workers=args.workers, threads=args.threads, model=model)
    merge_and_report(out, keep_unmet=args.keep_unmet)
    print((out / "report.md").read_text(encoding="utf-8"), end="")
    if model.caveat:
        print(f"NOTE: {model.caveat}.")
    print(f"report: {out / 'report.md'} (+ report.png, items.csv, results.jsonl)")
    print("On a GPU with real weights: zbb run --model kyutai/moshiko-pytorch-bf16 --vector VEC --out runs/moshi")
    return 0


def add_workers_arg(parser: argparse.ArgumentParser) -> None:
    """--workers N: local processes sharing the run (zbb.workers)."""
    from duplex_steer.threads import positive_int

    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="processes that share the run, each a share of the items (default: one per core for a "
                             "small model on the CPU, such as the organism, else 1); results do not depend on it")


def add_main(subparsers: Any) -> None:
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
    add_workers_arg(parser)
    add_keep_unmet(parser)
    parser.set_defaults(func=cmd_main)


def add_run(subparsers: Any) -> None:
    parser = subparsers.add_parser("run", help="run the benchmark on a model (resumable)")
    run_arguments(parser)
    parser.add_argument("--shard", default=None, help="RANK/WORLD (default: from torchrun's RANK, WORLD_SIZE)")
    parser.add_argument("--no-report", action="store_true", help="skip the report (shards; use `zbb report`)")
    add_workers_arg(parser)
    add_keep_unmet(parser)
    parser.set_defaults(func=cmd_run)


def add_report(subparsers: Any) -> None:
    parser = subparsers.add_parser("report", help="merge a run's shards and write the report")
    parser.add_argument("--out", required=True, help="run folder")
    add_keep_unmet(parser)
    parser.set_defaults(func=cmd_report)


def add_keep_unmet(parser: argparse.ArgumentParser) -> None:
    """--keep-unmet: score the items whose condition did not happen (listed in the report either way)."""
    parser.add_argument("--keep-unmet", action="store_true",
                        help="keep in the scores the items whose condition did not happen (an interruption that "
                             "landed while the model was silent, a normal turn while it spoke); by default they "
                             "are listed in the report and left out")


def cmd_sweep(args: argparse.Namespace) -> int:
    from zbb.sweep import DEFAULT_ALPHAS, DEFAULT_LIMIT, DEFAULT_SPANS, sweep

    for alpha in args.alphas or []:
        check_alpha(alpha, args.allow_negative_alpha, option="--alphas")
    if args.limit is None:
        args.limit = DEFAULT_LIMIT
    summary = sweep(run_config_from_args(args), args.out, layers=args.layers, alphas=args.alphas or DEFAULT_ALPHAS,
                    spans=args.spans or DEFAULT_SPANS, delays=args.onset_delays, workers=args.workers)
    if summary is None:
        print(f"shard done; run the same command without torchrun to write {args.out}/sweep.md")
        return 0
    print((Path(args.out) / "sweep.md").read_text(encoding="utf-8"), end="")
    print(f"sweep summary and heatmaps in {args.out} (sweep.json, sweep.md, sweep.png)")
    return 0


def add_sweep(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sweep", help="grid over steering layer x alpha x span x onset delay on a subset of items (resumable)",
        description="Run the unsteered conditions once and every (layer, alpha, span, onset delay) cell of the steered "
        "ones, each as a resumable run folder under --out; write sweep.json, sweep.md and heatmaps (sweep.png), and "
        "with several --onset-delays the lateness plot (sweep_delay.png). The grid options define the cells (the "
        "singular --layer/--alpha/--span are ignored; --onset-delay is the one delay when --onset-delays is not "
        "given); --limit defaults to 20 items (--limit 0: all).")
    run_arguments(parser)
    add_workers_arg(parser)
    parser.add_argument("--layers", type=int, nargs="+", default=None, help="default: the vector's layers")
    parser.add_argument("--alphas", type=float, nargs="+", default=None, help="default: 1 3 5.5 8")
    parser.add_argument("--spans", type=int, nargs="+", default=None, help="default: 1 3 6 (frames)")
    parser.add_argument("--onset-delays", type=int, nargs="+", default=None, metavar="N",
                        help="oracle onset delays in frames, e.g. 0 1 2 4 6 8 (default: --onset-delay, 0)")
    parser.set_defaults(func=cmd_sweep)


def cmd_import_fdb(args: argparse.Namespace) -> int:
    from duplex_steer.prompt_args import check_prompt_args
    from zbb.fdb import import_fdb, report_fdb
    from zbb.run_config import RunConfig

    check_alpha(args.alpha, args.allow_negative_alpha)
    config = RunConfig(model=args.model, conditions=args.conditions, vector=args.vector, layer=args.layer,
                       alpha=args.alpha, span=args.span, schedule=args.schedule, greedy=args.greedy, seed=args.seed,
                       batch_size=args.batch_size, items=args.items, limit=args.limit, asr_model=args.asr_model,
                       dtype=args.dtype, device=args.device, voice=args.voice, text_prompt=args.text_prompt)
    check_prompt_args(args)  # a bad --voice fails before the model loads
    import_fdb(args.dir, args.out, config, max_seconds=max_seconds_from_args(args))
    if args.no_report:
        return 0
    report_fdb(args.out)
    print((Path(args.out) / "report.md").read_text(encoding="utf-8"), end="")
    print(f"outputs (<condition>/<item>/output.wav, words.json) and report in {args.out}")
    return 0


def add_import_fdb(subparsers: Any) -> None:
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
    add_prompt_args(parser)
    add_length_args(parser)
    parser.add_argument("--no-report", action="store_true", help="skip the report")
    parser.set_defaults(func=cmd_import_fdb)


__all__ = ["ALL_CONDITIONS", "AUDIO_HELP", "add_import_fdb", "add_keep_unmet", "add_main", "add_report", "add_run",
           "add_sweep", "run_arguments", "run_config_from_args"]
