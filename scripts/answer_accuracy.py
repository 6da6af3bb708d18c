"""Does an organism answer its own training questions? Teacher-forced answer accuracy on fresh recipe episodes.

A diagnosis for the organism's correctness (about chance on ZBB; `duplex_steer.organism.answers`): it draws episodes exactly as
`duplex-steer train-organism` does (the same mix, fact table and speech, the training's own augmented
variants unless `--new-augmentations`; an episode seed the training never used, so new combinations of
the same facts and acoustic variants), runs the checkpoint teacher-forced (the true
conversation as input, as in training), and at every answer frame asks whether the "yes" logit beats the
"no" logit as the fact says. Split by how the question came (silent, follow-up, interruption) and by
whether its subject is a ZBB subject. `--voices` swaps the user's voices, e.g. `festival:slt-hts` for the
held-out engine (rendered on demand). High accuracy here and chance on ZBB: learned but not heard in ZBB's
conditions; chance here too: not learned.

    .venv/bin/python scripts/answer_accuracy.py --episodes 200 --out runs/answers-committed.json
    .venv/bin/python scripts/answer_accuracy.py --voices festival:slt-hts --out runs/answers-committed-festival.json

Seeded; one thread; a few minutes for 200 episodes (speech is rendered as it is needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from duplex_steer.organism.answers import answer_tally  # noqa: E402
from duplex_steer.organism.checkpoint import WEIGHTS_DIR, load_organism  # noqa: E402
from duplex_steer.organism.episodes import EpisodeConfig, EpisodeGenerator  # noqa: E402
from duplex_steer.organism.hearing import TRAINING_VOICES  # noqa: E402
from duplex_steer.organism.speech import SpeechBank  # noqa: E402
from duplex_steer.organism.world import World  # noqa: E402
from zbb.stats import wilson_interval  # noqa: E402

FALLBACK_VOICE = "flite:slt"


def recipe(folder: Path) -> tuple[EpisodeConfig, int]:
    """The episode settings and the seed the checkpoint was trained with (its training.json), else the
    defaults and seed 0."""
    record = folder / "training.json"
    if not record.exists():
        return EpisodeConfig(), 0
    saved = json.loads(record.read_text())["config"]
    fields = EpisodeConfig.__dataclass_fields__
    episodes = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["episodes"].items() if k in fields}
    return EpisodeConfig(**episodes), int(saved["seed"])


def answer_accuracy(folder: Path, voices: tuple[str, ...], n_episodes: int, seed: int,
                    new_augmentations: bool = False) -> dict:
    world = World.load()
    model = load_organism(folder)
    model.eval()
    config, training_seed = recipe(folder)
    bank_voices = voices
    if tuple(voices) != TRAINING_VOICES:
        config.variants = len(voices)  # clean renderings in the given voices only
        bank_voices = voices + (FALLBACK_VOICE,)  # for the odd text an engine's timings cannot align ("Hmm.")
    # the bank's seed draws the augmented variants: the training's own, unless asked for new ones
    bank = SpeechBank(codec=model.codec, voices=bank_voices, seed=seed if new_augmentations else training_seed,
                      lossy_share=config.lossy_variants, pause_share=config.pause_variants)
    gen = EpisodeGenerator(world, bank, config, seed=seed)
    tally = answer_tally(model, [gen.episode() for _ in tqdm(range(n_episodes), desc="episodes")], world)
    out = {}
    for key, (right, n) in tally.items():
        low, high = wilson_interval(right, n)
        out[key] = {"right": right, "n": n, "accuracy": round(right / n, 3), "wilson95": [round(low, 3), round(high, 3)]}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(WEIGHTS_DIR), help="organism folder (default: the committed one)")
    parser.add_argument("--voices", default=",".join(TRAINING_VOICES), help="comma-separated user voices")
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1000, help="episode seed (training used the model's seed)")
    parser.add_argument("--new-augmentations", action="store_true",
                        help="augment the training voices' speech anew (drawn with --seed) instead of with the "
                             "training's own augmentations: acoustic variation the model never heard")
    parser.add_argument("--out", required=True, help="JSON file for the tallies")
    args = parser.parse_args()
    torch.set_num_threads(1)
    voices = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    result = answer_accuracy(Path(args.model), voices, args.episodes, args.seed, args.new_augmentations)
    for key, row in sorted(result.items()):
        print(f"{key:>22}: {row['accuracy']:.2f} [{row['wilson95'][0]:.2f}, {row['wilson95'][1]:.2f}] (n={row['n']})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "answers": result}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
