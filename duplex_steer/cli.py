"""`duplex-steer` command line: converse, convert, analyze, fit-vector, steer, demo.

Every subcommand prints one clear line on a user error (exit 2), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import DuplexSteerError
from .model_args import DTYPES, add_model_args, load_from_args
from .prompt_args import add_prompt_args, load_with_prompt
from .recording_limits import (
    add_length_args,
    check_recording,
    context_warning,
    max_seconds_from_args,
    recording_frames,
)
from .steering.defaults import FRAME_SPLITS
from .steering_args import add_steering_args
from .threads import add_threads_to_subcommands, configure_from_args, passive_wait


def cmd_converse(args: argparse.Namespace) -> int:
    """A full-duplex conversation on a recording: writes the model's audio and text."""
    from .audio import save_audio
    from .engine.conversation import PERSONAPLEX_DEFAULT_ROLE, converse

    if args.personaplex_prompt and args.text_prompt is None:
        args.text_prompt = PERSONAPLEX_DEFAULT_ROLE
    wav = check_recording(args.audio, max_seconds_from_args(args))  # before the model loads
    model, prompt = load_with_prompt(args)
    warn_past_context(model, wav, args.audio)
    result = converse(model, wav, greedy=args.greedy, seed=args.seed, prompt=prompt, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_audio(out / "model.wav", result.model_audio[0])
    record = {
        "model": model.label, "input": str(args.audio), "frames": int(result.text_tokens.shape[1]),
        "frame_offset": result.frame_offset, "text": result.texts[0], "pieces": result.pieces[0],
        "text_tokens": result.text_tokens[0].tolist(), "model_codes": result.model_codes[0].tolist(),
        "greedy": args.greedy, "seed": args.seed, "prompt": result.prompt,
    }
    if model.caveat:
        record["note"] = model.caveat
    (out / "conversation.json").write_text(json.dumps(record, indent=1))
    print(f"model text: {result.texts[0]!r}")
    print(f"wrote {out / 'model.wav'} and {out / 'conversation.json'}")
    if model.caveat:
        print(f"note: {model.caveat}")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Write a kyutai-native checkpoint as a HuggingFace-format folder."""
    from .engine.export import export_hf

    model = load_from_args(args)
    path = export_hf(model, args.dst)
    print(f"wrote HuggingFace-format checkpoint to {path}")
    return 0


def warn_past_context(model, wav, name) -> None:
    """Print one warning line when the recording outlasts the model's context (a prompt only adds to it)."""
    warning = context_warning(recording_frames(wav), model, str(name))
    if warning:
        print(warning, file=sys.stderr)


def cmd_fit_vector(args: argparse.Namespace) -> int:
    """Fit a perception vector on the committed turn-by-turn dialogue set; write it; print the report."""
    from tqdm.auto import tqdm

    from .organism.fixtures import default_dialogues
    from .steering.defaults import default_steering
    from .steering.fit import fit_perception_vector, make_labeler

    model, prompt = load_with_prompt(args)
    dialogues = default_dialogues(model)[: args.dialogues] if args.dialogues else default_dialogues(model)
    layers = args.layers or [default_steering(model)["layer"]]
    labeler = make_labeler(args.split, args.margin)
    bar = tqdm(total=len(dialogues), desc="fitting on dialogues", unit="dialogue")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    vector, report = fit_perception_vector(model, dialogues, layers, labeler, batch_size=args.batch_size,
                                           seed=args.seed, progress=progress, prompt=prompt)
    bar.close()
    path = vector.save(args.out)
    print(report.to_text())
    if model.caveat:
        print(f"note: {model.caveat}")
    print(f"wrote {path}")
    return 0


def cmd_steer(args: argparse.Namespace) -> int:
    """Steered vs unsteered conversation on one recording: two wavs and result.json."""
    from .audio import SAMPLE_RATE, save_audio
    from .steering import Steering, make_detector
    from .steering.compare import oracle, steer_recording
    from .steering.defaults import check_steering_args, resolve_steering
    from .steering.snap import SnappedOnset, recording_annotation, snap_onset

    # everything is checked before the model loads: the recording, the vector, the layer, alpha, the onset
    wav = check_recording(args.audio, max_seconds_from_args(args))
    vector = check_steering_args(args.vector, args.layer, args.alpha, args.allow_negative_alpha)
    annotation = None
    if args.onset == "oracle":  # the onset is resolved (and snapped to speech) before the model loads
        span = (args.onset_s, args.onset_end_s) if args.onset_s is not None else recording_annotation(args.audio)
        if span is None:
            raise CliError("--onset oracle needs --onset-s SECONDS (when the interruption starts) or a "
                           "recording with a JSON beside it that gives interruption_onset_s")
        check_onset_inside(span[0], len(wav) / SAMPLE_RATE, args.audio)
        annotation = (snap_onset(wav, SAMPLE_RATE, *span) if args.snap else SnappedOnset.as_annotated(*span))
        detector = oracle(annotation.onset_s)
    else:
        gate = {} if args.only_while_speaking is None else {"only_while_model_speaks": args.only_while_speaking}
        detector = make_detector(args.onset, **gate)
    model, prompt = load_with_prompt(args)
    vector.check_compatible(model)
    settings = resolve_steering(model, vector, args.layer, args.alpha, args.span)
    print(settings.line(), file=sys.stderr)
    warn_past_context(model, wav, args.audio)
    steering = Steering(vector, [settings.layer], alpha=settings.alpha, span=settings.span, schedule=args.schedule)
    cmp = steer_recording(model, wav, steering, detector, greedy=args.greedy, seed=args.seed, progress=True,
                          prompt=prompt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_audio(out / "unsteered.wav", cmp.result.model_audio[0])
    save_audio(out / "steered.wav", cmp.result.model_audio[1])
    record = cmp.to_json(model.label)
    record["steering"].update(settings.to_json())  # with where each value came from (an option or a default)
    record.update(input=str(args.audio), vector=str(args.vector), onset_source=args.onset)
    if model.caveat:
        record["note"] = model.caveat
    if annotation is not None:
        record["oracle_onset"] = annotation.to_json()  # the annotation beside the onset that was used
    else:
        record["only_while_model_speaks"] = detector.only_while_model_speaks
    (out / "result.json").write_text(json.dumps(record, indent=1))
    if annotation is not None and annotation.snapped:
        print(f"oracle onset: annotated {annotation.annotated_s:.2f} s, first speech {annotation.onset_s:.2f} s"
              + ("" if annotation.found else " (no speech found in the span: annotation kept)"))
    print(f"onset frames: {cmp.onset_frames}; steered frames: {cmp.steered_frames}")
    print(f"unsteered: {cmp.result.texts[0]!r}")
    print(f"steered:   {cmp.result.texts[1]!r}")
    print(f"wrote {out}/unsteered.wav, steered.wav, result.json")
    if model.caveat:
        print(f"note: {model.caveat}")
    return 0


def check_onset_inside(onset_s: float, duration_s: float, audio) -> None:
    """An oracle onset must fall inside the recording (else nothing would ever be steered)."""
    if not 0 <= onset_s < duration_s:
        raise CliError(f"the oracle onset {onset_s:.2f} s is outside {audio}, which lasts {duration_s:.2f} s; "
                       "give an --onset-s inside the recording")


class CliError(DuplexSteerError):
    """Arguments that do not fit together."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duplex-steer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from .speech.dialogues import INTERRUPTION_EXAMPLE  # the committed recording, wherever installed

    p = sub.add_parser("converse", help="run a full-duplex conversation on a recording")
    add_model_args(p)
    add_length_args(p)
    p.add_argument("--audio", default=str(INTERRUPTION_EXAMPLE), help="user recording (any format/rate)")
    p.add_argument("--out", default="runs/converse", help="output folder")
    p.add_argument("--greedy", action="store_true", help="greedy decoding instead of sampling")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--personaplex-prompt", action="store_true",
                   help="PersonaPlex's default role (and voice) on any model, not only PersonaPlex-shaped ones")
    add_prompt_args(p)
    p.set_defaults(func=cmd_converse)

    p = sub.add_parser("convert", help="convert a checkpoint (e.g. kyutai-native) to a HuggingFace-format folder")
    p.add_argument("src", help="source checkpoint (folder, repo id or preset)")
    p.add_argument("dst", help="destination folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default=None, choices=DTYPES)
    p.set_defaults(func=cmd_convert, model=None)

    p = sub.add_parser("fit-vector", help="fit a perception vector on the turn-by-turn dialogue set "
                                          "(the organism's own set for the organism)")
    add_model_args(p)
    p.add_argument("--out", required=True, help="vector file to write (.safetensors)")
    p.add_argument("--layers", type=int, nargs="+", default=None, help="layers (default: the model's steering layer, "
                   "duplex_steer.steering.defaults)")
    p.add_argument("--split", choices=FRAME_SPLITS, default="activity",
                   help="activity: user speaks & model silent vs the reverse; user-activity: user speaks vs not; "
                        "affinity: z-scored band S_perc vs S_gen (the paper's way)")
    p.add_argument("--margin", type=float, default=0.5, help="z-score margin for --split affinity")
    p.add_argument("--dialogues", type=int, default=None, help="use only the first N dialogues")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    add_prompt_args(p)
    p.set_defaults(func=cmd_fit_vector)

    p = sub.add_parser("steer", help="steered vs unsteered conversation on a recording")
    add_model_args(p)
    add_length_args(p)
    p.add_argument("--vector", required=True, help="vector file from fit-vector")
    p.add_argument("--audio", default=str(INTERRUPTION_EXAMPLE))
    p.add_argument("--out", default="runs/steer")
    add_steering_args(p)
    p.add_argument("--schedule", choices=["linear", "constant", "exponential"], default="linear")
    p.add_argument("--onset", choices=["oracle", "energy", "vad"], default="oracle")
    p.add_argument("--onset-s", type=float, default=None,
                   help="annotated interruption start in seconds (oracle; default: the recording's JSON)")
    p.add_argument("--onset-end-s", type=float, default=None,
                   help="annotated interruption end (oracle; the span searched for speech, default start + 2 s)")
    p.add_argument("--snap", action=argparse.BooleanOptionalAction, default=True,
                   help="oracle: move the annotated start to the first speech in its span (default: on)")
    p.add_argument("--only-while-speaking", action=argparse.BooleanOptionalAction, default=None,
                   help="energy / VAD fire only while the model speaks (default: on, as in ZBB and the demo)")
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    add_prompt_args(p)
    p.set_defaults(func=cmd_steer)

    from .analyze_command import register as register_analyze
    from .demo import register as register_demo
    from .organism import register as register_organism

    register_analyze(sub)
    register_demo(sub)
    register_organism(sub)
    add_threads_to_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    passive_wait()  # before anything imports torch (duplex_steer.threads)
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "model", None) is None and hasattr(args, "src"):
        args.model = args.src
    configure_from_args(args)
    try:
        return int(args.func(args) or 0)
    except DuplexSteerError as exc:
        print(f"duplex-steer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
