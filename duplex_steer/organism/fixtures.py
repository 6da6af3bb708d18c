"""The organism's turn-by-turn dialogue set (audio_fixtures/organism_dialogues), for fitting vectors.

Same format and loader as the general dialogue set (`duplex_steer.speech.dialogues`), with turns the
organism understands and long gaps in which it talks or answers. Rebuild with
`python -m duplex_steer.organism.fixtures` (deterministic: same espeak-ng and libvorbis, same bytes).
"""

from __future__ import annotations

from pathlib import Path

from ..speech.dialogues import FIXTURES_DIR, build_dialogues, build_interruption_example, load_dialogues
from .episodes import dialogue_turns
from .world import World

ORGANISM_DIALOGUES_DIR = FIXTURES_DIR / "organism_dialogues"
# An interruption the organism can miss: a ZBB context, then a ZBB query 1.5 s after it, while it talks.
ORGANISM_EXAMPLE = FIXTURES_DIR / "organism_interruption.ogg"
GAP_S = 9.0  # longer than the longest monologue (110 frames = 8.8 s), so turns rarely overlap it


def build(out_dir: str | Path = ORGANISM_DIALOGUES_DIR) -> dict:
    from ..audio import FRAME_SAMPLES, SAMPLE_RATE
    from ..speech.tts import default_tts

    context = "Tell me about music."
    n = len(default_tts().synthesize(context))
    talk = (-n % FRAME_SAMPLES + 18 * FRAME_SAMPLES) / SAMPLE_RATE  # the query starts on a frame boundary
    build_interruption_example(ORGANISM_EXAMPLE, question_text=context, item_id="penguins-false",
                               interruption_text="Penguins, they live in the desert, right?", talk_s=talk, lead_in_s=0.0)
    return build_dialogues(out_dir, dialogues=dialogue_turns(World.load()), gap_s=GAP_S)


def load_organism_dialogues():
    return load_dialogues(ORGANISM_DIALOGUES_DIR)


def is_organism(model) -> bool:
    return str(getattr(model, "checkpoint_id", "")).startswith("organism")


def default_dialogues(model):
    """The dialogue set a vector for `model` is fitted on: the organism's own, else the general one."""
    return load_organism_dialogues() if is_organism(model) else load_dialogues()


if __name__ == "__main__":
    manifest = build()
    print(f"{len(manifest['dialogues'])} dialogues, {manifest['n_turns']} turns -> {ORGANISM_DIALOGUES_DIR}")
