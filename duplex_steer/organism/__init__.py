"""The CPU model organism: a small Moshi-architecture model trained here on synthesized duplex speech.

- `world`: topics, subjects and facts (from the ZBB item bank plus training-only subjects);
- `hearing`: the tag codec (codebook 0 a word tagger) fitted on many voices, festival held out;
- `speech`: sentence speech of the training voices for the user, flite word by word for the model, encoded once;
- `episodes`: the conversation generator (monologues, stray words, silent / buffered / zero-buffer
  questions);
- `train`: the seeded CPU training command; `checkpoint`: save / load (`duplex_steer.load("organism")`).

A trained organism is a real model of a toy world: it shows mechanisms (listening while talking,
state inertia, steering) at small scale, never numbers about Moshi or PersonaPlex.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from ..errors import DuplexSteerError
from ..threads import add_threads_arg
from .settings import ORGANISM_NOTE, STEERING_DEFAULTS  # noqa: F401 - the organism's public facts

# train-organism's --codec-* options: (argument, HearingConfig field it sets, least value)
CODEC_OPTIONS = (("codec_augmentations", "augmentations", 0), ("codec_renderings", "max_renderings", 1),
                 ("codec_epochs", "epochs", 1), ("codec_band_masks", "band_masks", 0),
                 ("codec_time_masks", "time_masks", 0), ("codec_pause_share", "pause_share", 0))


def cmd_train(args: argparse.Namespace) -> int:
    from ..engine.mel_codec import MelSettings
    from .episodes import EpisodeConfig
    from .hearing import TRAINING_VOICES
    from .train import TrainConfig, train

    if args.false_descriptions is not None and args.false_descriptions < 1:
        raise DuplexSteerError(f"--false-descriptions must be at least 1 (interruptions need a false description "
                               f"of their own), got {args.false_descriptions}")
    for option, value in (("--steps", args.steps), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise DuplexSteerError(f"{option} must be at least 1, got {value}")
    if args.answer_weight is not None and args.answer_weight <= 0:
        raise DuplexSteerError(f"--answer-weight must be positive (the text loss's weight on 'yes' / 'no'), "
                               f"got {args.answer_weight}")
    if args.zbb_subject_rate is not None and not 0.0 <= args.zbb_subject_rate <= 1.0:
        raise DuplexSteerError(f"--zbb-subject-rate must be between 0 and 1 (a fraction of the questions), "
                               f"got {args.zbb_subject_rate}")
    if args.interruption_zbb_subject_rate is not None and not 0.0 <= args.interruption_zbb_subject_rate <= 1.0:
        raise DuplexSteerError(f"--interruption-zbb-subject-rate must be between 0 and 1 (a fraction of the "
                               f"interruptions), got {args.interruption_zbb_subject_rate}")
    if args.tag_noise is not None and not 0.0 <= args.tag_noise < 1.0:
        raise DuplexSteerError(f"--tag-noise must be at least 0 and below 1 (a fraction of the user's speech "
                               f"frames), got {args.tag_noise}")
    if args.tag_noise_while_talking is not None and not 0.0 <= args.tag_noise_while_talking < 1.0:
        raise DuplexSteerError(f"--tag-noise-while-talking must be at least 0 and below 1 (a fraction of the user's "
                               f"speech frames while the model talks), got {args.tag_noise_while_talking}")
    if args.user_variants is not None and args.user_variants < len(TRAINING_VOICES):
        raise DuplexSteerError(f"--user-variants must be at least {len(TRAINING_VOICES)} (variants 0-"
                               f"{len(TRAINING_VOICES) - 1} are the training voices clean; the rest augmented "
                               f"copies), got {args.user_variants}")
    for option, share in (("--pause-variants", args.pause_variants), ("--lossy-variants", args.lossy_variants)):
        if share is not None and not 0.0 <= share <= 1.0:
            raise DuplexSteerError(f"{option} must be between 0 and 1 (a share of the augmented variants), got {share}")
    if args.monologue_frames is not None:
        low, high = args.monologue_frames
        if not 1 <= low <= high <= EpisodeConfig.frames // 2:
            raise DuplexSteerError(f"--monologue-frames takes MIN MAX with 1 <= MIN <= MAX <= "
                                   f"{EpisodeConfig.frames // 2} (frames of 80 ms; half an episode, so a question "
                                   f"and its answer fit after it), got {low} {high}")
    n_mels = MelSettings.n_mels
    if args.band_mels is not None and not 0 <= args.band_mels <= n_mels:
        raise DuplexSteerError(f"--band-mels must lie in 0..{n_mels} (the tagger's lowest mel bands; 0: all "
                               f"{n_mels}), got {args.band_mels}")
    codec_settings = {field: getattr(args, dest) for dest, field, _ in CODEC_OPTIONS if getattr(args, dest) is not None}
    for dest, _, least in CODEC_OPTIONS:
        value = getattr(args, dest)
        if value is not None and value < least:
            bound = "0 or more" if least == 0 else f"at least {least}"
            raise DuplexSteerError(f"--{dest.replace('_', '-')} must be {bound}, got {value}")
    if args.codec_pause_share is not None and args.codec_pause_share > 1:
        raise DuplexSteerError(f"--codec-pause-share is a share of the augmented copies: 0..1, got {args.codec_pause_share}")
    if args.codec_from is not None and (args.band_mels is not None or codec_settings):
        raise DuplexSteerError("--band-mels and the --codec-* options set how the tag codec is fitted; with "
                               "--codec-from it is loaded instead: drop one or the other")
    if args.codec_from is not None:  # a wrong folder fails now, not after the speech is rendered
        from ..engine.tag_codec import TagCodec

        TagCodec.load(args.codec_from)
    episodes = EpisodeConfig()
    if args.zero_buffer_rate is not None:
        room = episodes.zero_buffer_rate + episodes.kind_probabilities()["silent"]  # what the other kinds leave
        if not 0.0 <= args.zero_buffer_rate <= room:
            raise DuplexSteerError(f"--zero-buffer-rate must lie in 0..{room:.2f} (a fraction of the episodes; the "
                                   f"other kinds take the rest), got {args.zero_buffer_rate}")
        episodes.zero_buffer_rate = args.zero_buffer_rate
    if args.false_descriptions is not None:
        episodes.false_descriptions = args.false_descriptions
    if args.zbb_subject_rate is not None:
        episodes.zbb_subject_rate = args.zbb_subject_rate
    if args.interruption_zbb_subject_rate is not None:
        episodes.interruption_zbb_subject_rate = args.interruption_zbb_subject_rate
    if args.tag_noise is not None:
        episodes.tag_noise = args.tag_noise
    if args.tag_noise_while_talking is not None:
        episodes.tag_noise_while_talking = args.tag_noise_while_talking
    if args.user_variants is not None:
        episodes.variants = args.user_variants
    if args.lossy_variants is not None:
        episodes.lossy_variants = args.lossy_variants
    if args.pause_variants is not None:
        episodes.pause_variants = args.pause_variants
    if args.monologue_frames is not None:
        episodes.monologue_frames = tuple(args.monologue_frames)
    config = TrainConfig(seed=args.seed, threads=args.threads or TrainConfig.threads, episodes=episodes)
    if args.answer_weight is not None:
        config.answer_weight = args.answer_weight
    config.speech_cache = args.speech_cache
    if args.steps is not None:
        config.steps = args.steps
    if args.batch_size is not None:
        config.batch_size = args.batch_size
    if args.band_mels is not None:
        config.hearing.shape = replace(config.hearing.shape, band_mels=args.band_mels)
    config.hearing = replace(config.hearing, **codec_settings)
    if args.quick:
        config.steps, config.batch_size, config.hearing.epochs = 20, 4, 1
    record = train(config, args.out, codec_from=args.codec_from)
    last = record["history"][-1]
    print(f"trained in {record['wall_s']:.0f} s (set-up {record['setup_s']:.0f} s); final text loss "
          f"{last['text']:.3f}, audio loss {last['audio']:.3f}, user loss {last['user']:.3f}")
    if record["answer_checks"]:
        check = record["answer_checks"][-1]
        print(f"answers right, teacher-forced on {check['asked']} check questions: {check['answers_right']:.2f} "
              f"(ZBB items {check['zbb_items_right']:.2f} of {check['zbb_items_asked']})")
    print(f"wrote {args.out} (load it with duplex_steer.load({args.out!r})); loss curve {args.out}/loss.png")
    return 0


def cmd_dev_items(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .world import World

    items = World.load().development_items()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
    print(f"wrote {len(items)} development items ({len(items) // 2} training-only subjects, none of ZBB's) to {out}; "
          f"render them with `zbb build --tts flite --voice awb --item-bank {out} --out DIR`")
    return 0


def register(sub) -> None:
    p = sub.add_parser("organism-dev-items",
                       help="write the organism's development items (ZBB's format, training-only subjects)",
                       description="Items about the organism's training-only subjects, for choosing steering "
                       "settings with `zbb sweep --item-bank FILE` before any ZBB run (scripts/tune_organism_steering.sh).")
    p.add_argument("--out", default="runs/organism-dev-items.jsonl", help="items file to write")
    p.set_defaults(func=cmd_dev_items)
    p = sub.add_parser("train-organism",
                       help="train the CPU model organism (21 minutes on 2 cores with its speech cached, 27 from a fresh clone)")
    p.add_argument("--out", default="runs/organism", help="checkpoint folder to write")
    p.add_argument("--codec-from", default=None, metavar="FOLDER",
                   help="reuse the tag codec of this organism folder instead of fitting one (seeds share it)")
    p.add_argument("--quick", action="store_true",
                   help="a tiny run (20 steps, 1 codec epoch) that checks the pipeline, not a usable model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="training steps (default: TrainConfig.steps)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--zero-buffer-rate", type=float, default=None,
                   help="fraction of episodes with a zero-buffer interruption (default: EpisodeConfig's, 0)")
    p.add_argument("--false-descriptions", type=int, default=None, metavar="N",
                   help="false descriptions per subject beside its ZBB one: the world's fact table (default: "
                        "EpisodeConfig's, 1; 5 before the ablation of 2026-12-03: see the model card)")
    p.add_argument("--speech-cache", default=None, metavar="FOLDER",
                   help="keep the rendered speech in FOLDER and reuse what an earlier run kept there (rendering "
                        "takes about 6 of a retraining's minutes; the result is the same either way)")
    p.add_argument("--answer-weight", type=float, default=None, metavar="W",
                   help="the text loss's weight on the answer tokens 'yes' / 'no', where the facts are, against 1 "
                        "for other words (default: TrainConfig's, 12; 6 before recipe zq, 3 before 2026-12-03)")
    p.add_argument("--zbb-subject-rate", type=float, default=None, metavar="R",
                   help="fraction of questions about a ZBB subject, the rest about training-only subjects "
                        "(default: EpisodeConfig's, 0.8)")
    p.add_argument("--interruption-zbb-subject-rate", type=float, default=None, metavar="R",
                   help="the same fraction for interruptions only (default: --zbb-subject-rate's); ZBB subjects "
                        "in interruptions teach hearing their names while talking, which weakens the inertia")
    p.add_argument("--tag-noise", type=float, default=None, metavar="P",
                   help="share of the user's speech frames whose codebook-0 tag is replaced by a random class, so "
                        "the model learns to hear through the codec's mistakes on unheard voices (default: "
                        "EpisodeConfig's, 0)")
    p.add_argument("--tag-noise-while-talking", type=float, default=None, metavar="P",
                   help="the same share, only for the user's speech frames while the model is talking: the model "
                        "learns to hear worse while it talks, an inertia made by the data (default: "
                        "EpisodeConfig's, 0; the model card's 'Noise while talking')")
    p.add_argument("--user-variants", type=int, default=None, metavar="N",
                   help="acoustic variants of every user sentence: the 8 training voices clean, the rest seeded "
                        "augmented copies (default: EpisodeConfig's, 18); more variants leave fewer fixed "
                        "acoustics to memorize the facts by (the model card's 'Facts in ZBB's audio')")
    p.add_argument("--pause-variants", type=float, default=None, metavar="P",
                   help="share of the augmented variants whose pauses between words are cut to 5-40 ms first, as "
                        "festival runs words together (default: EpisodeConfig's, 0.5; the model card's 'A buffered "
                        "row in the protocol')")
    p.add_argument("--lossy-variants", type=float, default=None, metavar="P",
                   help="share of the augmented variants also stored as ogg Vorbis (16 or 24 kHz), as ZBB's "
                        "renderings and recordings people share are (default: EpisodeConfig's, 0.5; the model "
                        "card's 'Facts in ZBB's audio')")
    p.add_argument("--monologue-frames", type=int, nargs=2, default=None, metavar=("MIN", "MAX"),
                   help="the model's monologue before a question lasts MIN to MAX frames of 80 ms, drawn uniformly "
                        "(default: EpisodeConfig's, 30 80); a free-running model that talks past ZBB's wait "
                        "(125 frames) is asked while it talks, a question asked in silence that becomes an interruption")
    p.add_argument("--band-mels", type=int, default=None, metavar="N",
                   help="the tag codec's tagger reads only the lowest N of its 48 mel bands (0: all; default: "
                        "HearingConfig's, 32: up to 3.4 kHz, which every voice fills; the model card's "
                        "'Hearing the held-out engine')")
    p.add_argument("--codec-augmentations", type=int, default=None, metavar="N",
                   help="augmented copies of each rendering the tag codec trains on (default: HearingConfig's, 3)")
    p.add_argument("--codec-renderings", type=int, default=None, metavar="N",
                   help="renderings the tag codec's tagger trains on, a seeded sample of all (default: "
                        "HearingConfig's, 7200: all 7,184 of today's table)")
    p.add_argument("--codec-epochs", type=int, default=None, metavar="N",
                   help="epochs of the tag codec's tagger (default: HearingConfig's, 6, which names festival's "
                        "subjects better than 3: the model card's 'Masking the spectrum does not')")
    p.add_argument("--codec-band-masks", type=int, default=None, metavar="N",
                   help="SpecAugment-style masks of adjacent mel bands per example while the tagger trains "
                        "(default: HearingConfig's, 0)")
    p.add_argument("--codec-time-masks", type=int, default=None, metavar="N",
                   help="the same for runs of 10 ms columns (default: HearingConfig's, 0)")
    p.add_argument("--codec-pause-share", type=float, default=None, metavar="P",
                   help="share (0..1) of the tag codec's augmented copies whose pauses between words are cut to "
                        "5-40 ms first, as festival runs words together (default: HearingConfig's, 1.0)")
    add_threads_arg(p, help="training threads (default: TrainConfig.threads, 2, as the committed organism was trained; "
                    "the weights may depend on it: sums run in another order, not checked; 1 when another heavy job "
                    "shares a 2-core machine)")
    p.set_defaults(func=cmd_train)
