"""`duplex-steer analyze`: affinities of a recording per layer and frame, figures, and state inertia.

The command's module sits above the probes and the steering it drives (with --steer-vector it steers the
paired scenarios), beside `duplex_steer.cli`; the measurements themselves live in `duplex_steer.probes`.

    duplex-steer analyze --model SOURCE --audio WAV --out DIR [--layers 12-24] [--dialogues]
                         [--pairs N [--steer-vector VEC [--layer L --alpha A --span S]]]

Writes DIR/affinity.json (see docs/probes.md for the keys), DIR/heatmaps.png, DIR/timeline.png and,
with --dialogues or --pairs, DIR/inertia.json and DIR/inertia.png. With --pairs also the paired
take-over lags (speaking - listening; with --steer-vector, steered - unsteered on the speaking
scenarios, the vector added from each utterance's onset frame) with paired bootstrap intervals, in
inertia.json under "paired" and one printed line each, DIR/inertia_timeline.png (band S_perc and S_gen
around the onset per condition) and DIR/heatmap_pairs.png (mean S_perc - S_gen per layer and frame).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import FRAME_RATE, FRAME_SAMPLES, SAMPLE_RATE, AudioError, load_audio
from .probes.options import GENERATION_LENSES, K_CONSECUTIVE, MAX_FRAMES, PERCEPTION_LENSES

if TYPE_CHECKING:
    from .probes.inertia import InertiaReport
    from .probes.inertia_pairs import PairedInertia
    from .steering.vector import PerceptionVector

MIN_FRAMES = 4  # 320 ms: the shortest recording worth analysing
SILENCE_PEAK = 1e-4


def parse_layers(text: str | None, num_layers: int) -> list[int] | None:
    """'all' / None -> None; '3 5 7', '3,5,7', '12-24' or mixes -> a list (range ends inclusive)."""
    from .probes.affinity import AffinityError

    if text is None or text.strip().lower() == "all":
        return None
    out: list[int] = []
    for part in text.replace(",", " ").split():
        try:
            if "-" in part[1:]:
                cut = part.index("-", 1)
                out += list(range(int(part[:cut]), int(part[cut + 1 :]) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise AffinityError(f"--layers {text!r}: give layer numbers or ranges such as '12-24' or 'all' "
                                f"(this model has layers 0..{num_layers - 1})") from None
    return out


def check_analyzable(path: str | Path) -> np.ndarray:
    """Load a recording and refuse ones that cannot give affinities (too short, silent; load_audio
    already refuses missing, empty and non-finite files)."""
    wav = load_audio(path)
    if len(wav) < MIN_FRAMES * FRAME_SAMPLES:
        raise AudioError(f"{path} is {len(wav) / SAMPLE_RATE:.3f} s long; analysis needs at least "
                         f"{MIN_FRAMES} frames of 80 ms ({MIN_FRAMES * 0.08:.2f} s)")
    peak = float(np.abs(wav).max())
    if peak < SILENCE_PEAK:
        raise AudioError(f"{path} is silent (peak amplitude {peak:.2g}); affinities need user speech")
    return wav


def known_turns(audio: Path, spec: str) -> list[dict[str, Any]] | None:
    """Turn timings for `audio`: 'none'; a JSON file with a 'turns' list; 'auto' = AUDIO.json if it has turns."""
    from .probes.affinity import AffinityError

    if spec == "none":
        return None
    path = audio.with_suffix(".json") if spec == "auto" else Path(spec)
    if not path.is_file():
        if spec == "auto":
            return None
        raise AffinityError(f"--turns file not found: {path}")
    try:
        turns = json.loads(path.read_text()).get("turns")
    except (json.JSONDecodeError, AttributeError):
        raise AffinityError(f"{path} is not a JSON object with a 'turns' list") from None
    if not turns and spec != "auto":
        raise AffinityError(f"{path} has no 'turns' list of {{start_s, end_s}}")
    return turns or None


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `analyze` subcommand to the duplex-steer parser."""
    from .model_args import add_model_args
    from .prompt_args import add_prompt_args
    from .recording_limits import add_length_args
    from .speech.dialogues import INTERRUPTION_EXAMPLE
    from .steering_args import add_steering_args

    p = subparsers.add_parser("analyze", help="per-layer generation / perception affinities, figures, inertia",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(p)
    add_length_args(p)
    p.add_argument("--audio", default=str(INTERRUPTION_EXAMPLE), help="user recording")
    p.add_argument("--out", default="runs/analyze", help="output folder")
    p.add_argument("--layers", default="all", help="layers to read: 'all', '12-24', '3 7 23' (0-based)")
    p.add_argument("--band", type=int, nargs=2, metavar=("LO", "HI"), default=None,
                   help="band of layers averaged for the timeline and inertia (default: 3/8..3/4 of depth)")
    p.add_argument("--gen-lens", action="append", choices=list(GENERATION_LENSES),
                   help="generation lens (repeat; default: text and depformer-model)")
    p.add_argument("--perc-lens", choices=list(PERCEPTION_LENSES),
                   help="perception lens (default: depformer-user with user heads, else embedding-user)")
    p.add_argument("--turns", default="auto", help="user turn timings: auto (AUDIO.json), none, or a JSON file")
    p.add_argument("--dialogues", action="store_true", help="also run the dialogue set and measure inertia")
    p.add_argument("--max-dialogues", type=int, default=4, help="dialogues to run with --dialogues")
    p.add_argument("--pairs", type=int, default=0, help="also run N ZBB paired scenarios (listening/speaking)")
    p.add_argument("--pairs-audio", default=None, metavar="DIR",
                   help="ZBB rendering the paired scenarios are made of (a folder with manifest.json, e.g. "
                        "zbb/renderings/festival-slt-hts); default: the committed zbb/audio")
    p.add_argument("--gaps", type=float, nargs=2, default=(0.4, 4.0), metavar=("SHORT", "LONG"),
                   help="silences (s) between the context turn and the utterance in paired scenarios")
    p.add_argument("--k", type=int, default=K_CONSECUTIVE, help="consecutive perceptive frames for a take-over")
    p.add_argument("--max-frames", type=int, default=MAX_FRAMES, help="give up on a take-over after this many")
    p.add_argument("--batch-size", type=int, default=8, help="recordings per batch for dialogues and pairs")
    p.add_argument("--steer-vector", default=None, metavar="FILE",
                   help="with --pairs: rerun the speaking scenarios steered with this perception vector "
                        "(duplex-steer fit-vector) from each utterance onset, and compare the lags")
    add_steering_args(p)
    p.add_argument("--greedy", action="store_true")
    p.add_argument("--seed", type=int, default=0,
                   help="sampling seed (paired scenarios: noise keyed to seed and query) and bootstrap seed")
    add_prompt_args(p)
    p.set_defaults(func=cmd_analyze)
    return p


def cmd_analyze(args: argparse.Namespace) -> int:
    """Run the analysis; write the JSON and figures to args.out."""
    from .probes import plots
    from .probes.affinity import compute_affinities, default_band
    from .probes.inertia import measure_inertia
    from .prompt_args import load_with_prompt
    from .recording_limits import check_length, context_warning, max_seconds_from_args, recording_frames

    audio = Path(args.audio)
    wav = check_analyzable(audio)
    check_length(len(wav) / SAMPLE_RATE, max_seconds_from_args(args), str(audio))
    vector = check_steer_options(args)
    if args.pairs_audio is not None and not (Path(args.pairs_audio) / "manifest.json").is_file():
        from .probes.affinity import AffinityError

        raise AffinityError(f"--pairs-audio {args.pairs_audio}: no manifest.json there; give a ZBB rendering "
                            "folder (zbb/renderings/*, or one made by `zbb build --tts ...`)")
    model, prompt = load_with_prompt(args)
    warning = context_warning(recording_frames(wav), model, str(audio))
    if warning:
        print(warning, file=sys.stderr)
    layers = parse_layers(args.layers, model.num_layers)
    band = tuple(args.band) if args.band else default_band(model.num_layers)
    lens_kw = {"layers": layers, "band": band, "gen_lenses": args.gen_lens, "perc_lens": args.perc_lens,
               "greedy": args.greedy, "seed": args.seed, "prompt": prompt}
    turns = known_turns(audio, args.turns)
    result, conv = compute_affinities(model, wav, turns=[turns], decode_audio=False, progress=True, **lens_kw)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    own = measure_inertia(result, args.k, args.max_frames, labels=[audio.name])
    extra: dict[str, Any] = {"input": str(audio), "model_text": conv.texts[0], "prompt": conv.prompt,
                             **({"note": model.caveat} if model.caveat else {}),
                             "inertia": {"k_consecutive": args.k, "onsets": [vars(x) for x in own]}}
    result.save_json(out / "affinity.json", **extra)
    written = [out / "affinity.json", plots.plot_heatmaps(result, out / "heatmaps.png"),
               plots.plot_timeline(result, out / "timeline.png")]

    report, paired, steering = inertia_runs(model, args, lens_kw, vector)
    lines = paired.lines() if paired is not None else []
    if report is not None:
        note = {"note": model.caveat} if model.caveat else {}
        extra_pairs = {"paired": {**paired.to_json(), "steering": steering}} if paired is not None else {}
        (out / "inertia.json").write_text(json.dumps({"model": model.label, "is_random": model.is_random, **note,
                                                      "prompt": conv.prompt, **report.to_json(), **extra_pairs},
                                                     indent=1, allow_nan=False))
        written += [out / "inertia.json",
                    plots.plot_inertia(report.inertias, out / "inertia.png", model.label, model.is_random, args.k)]
    if paired is not None:
        groups = paired.groups()
        span = steering["span"] if steering else None
        written += [plots.plot_inertia_timeline(groups, out / "inertia_timeline.png", model.label, model.is_random,
                                                FRAME_RATE, args.k, span),
                    plots.plot_heatmap_pairs({name: w for name, (w, _) in groups.items()}, out / "heatmap_pairs.png",
                                             model.label, model.is_random, FRAME_RATE)]
    for path in written:
        print(f"wrote {path}")
    for line in lines:
        print(line)
    if model.caveat:
        print(f"note: {model.caveat}", file=sys.stderr)
    return 0


def check_steer_options(args: argparse.Namespace) -> PerceptionVector | None:
    """The steering options, checked before the model loads: --steer-vector needs --pairs; --layer / --alpha /
    --span need --steer-vector; the vector file must load and fit the layer. Returns the vector."""
    from .probes.affinity import AffinityError
    from .steering.defaults import check_steering_args

    given = [f"--{name}" for name in ("layer", "alpha", "span") if getattr(args, name) is not None]
    if args.steer_vector is None:
        if given:
            raise AffinityError(f"{' / '.join(given)} set how --steer-vector steers; give --steer-vector FILE too")
        return None
    if args.pairs <= 0:
        raise AffinityError("--steer-vector reruns the paired scenarios steered; give --pairs N (e.g. --pairs 8)")
    return check_steering_args(args.steer_vector, args.layer, args.alpha, args.allow_negative_alpha)


def inertia_runs(model, args: argparse.Namespace, lens_kw: dict[str, Any], vector: PerceptionVector | None = None,
                 ) -> tuple[InertiaReport | None, PairedInertia | None, dict[str, Any] | None]:
    """Inertia over the dialogue set (--dialogues) and/or ZBB paired scenarios (--pairs N, compared pairwise;
    steered from each speaking onset with `vector`). Returns (all onsets' report, the pairs, steering used)."""
    from .probes.affinity import compute_affinities
    from .probes.inertia import InertiaReport, measure_inertia, summarize, zbb_pairs
    from .probes.inertia_pairs import run_pairs

    if not args.dialogues and args.pairs <= 0:
        return None, None, None
    inertias, results = [], []
    kw = dict(lens_kw)
    if args.dialogues:
        from .speech.dialogues import load_dialogues

        ds = load_dialogues()[: args.max_dialogues]
        for i in range(0, len(ds), args.batch_size):
            chunk = ds[i : i + args.batch_size]
            res, _ = compute_affinities(model, [d.audio() for d in chunk], turns=[d.turns for d in chunk],
                                        decode_audio=False, **kw)
            for x in measure_inertia(res, args.k, args.max_frames, labels=[d.id for d in chunk]):
                x.item += i
                inertias.append(x)
            results.append(res)
    paired = steering_record = None
    if args.pairs > 0:
        intervention = None
        if vector is not None:
            from functools import partial

            from .steering.defaults import resolve_steering
            from .steering.steer import Steering, steer_at_onsets

            settings = resolve_steering(model, vector, args.layer, args.alpha, args.span)
            print(settings.line(), file=sys.stderr)
            steering = Steering(vector, [settings.layer], alpha=settings.alpha, span=settings.span)
            intervention = partial(steer_at_onsets, model, steering)
            steering_record = {**settings.to_json(), "vector": str(args.steer_vector), "schedule": steering.schedule,
                               "onset": "each speaking scenario's utterance onset frame (absolute session frame)"}
        # a tail of max_frames after the utterance: every onset is watched for the full max_frames
        scenarios = zbb_pairs(args.pairs, tuple(args.gaps), audio_dir=args.pairs_audio,
                              tail_s=max(2.0, args.max_frames / FRAME_RATE))
        paired = run_pairs(model, scenarios, args.batch_size, args.k, args.max_frames, intervention,
                           stats_seed=args.seed, decode_audio=False, **kw)
        inertias += paired.report.inertias
        results += paired.report.results
    return (InertiaReport(inertias, summarize(inertias), results, args.k, args.max_frames), paired,
            steering_record)
