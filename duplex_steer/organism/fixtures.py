"""The organism's turn-by-turn dialogue set (audio_fixtures/organism_dialogues), for fitting vectors.

Same format and loader as the general dialogue set (`duplex_steer.speech.dialogues`), with turns the
organism understands and long gaps in which it talks or answers. Rebuild with
`python -m duplex_steer.organism.fixtures` (deterministic: same espeak-ng and libvorbis, same bytes).
"""

from __future__ import annotations

from pathlib import Path

from ..speech.dialogues import FIXTURES_DIR, build_dialogues, load_dialogues
from .episodes import dialogue_turns
from .world import World

ORGANISM_DIALOGUES_DIR = FIXTURES_DIR / "organism_dialogues"
# An interruption the organism can miss: a ZBB context, then a ZBB query at 3.12 s, while it talks.
ORGANISM_EXAMPLE = FIXTURES_DIR / "organism_interruption.flac"
GAP_S = 9.0  # longer than the longest monologue (110 frames = 8.8 s), so turns rarely overlap it


def build_example(path: str | Path = ORGANISM_EXAMPLE, item_id: str = "penguins-false",
                  onset_frame: int = 39, tail_s: float = 3.0) -> dict:
    """The organism's interruption recording, assembled from the committed ZBB audio and stored
    losslessly (FLAC): the organism only recognizes words in the exact rendering it was trained on, and
    re-encoding the whole recording as OGG would change the query's codes (see the model card)."""
    import hashlib
    import json

    import numpy as np
    import soundfile as sf

    from ..audio import FRAME_SAMPLES, SAMPLE_RATE
    from ..speech.zbb_audio import load_context_audio, load_query_audio, read_items

    item = {it["id"]: it for it in read_items()}[item_id]
    context, query = load_context_audio(None, item["context"]), load_query_audio(None, item_id)
    at = onset_frame * FRAME_SAMPLES
    wav = np.zeros(at + len(query) + int(tail_s * SAMPLE_RATE), np.float32)
    wav[: len(context)] = context
    wav[at : at + len(query)] = query
    path = Path(path)
    sf.write(path, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_24")
    info = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "duration_s": round(len(wav) / SAMPLE_RATE, 3), "zbb_item": item_id,
            "turns": [{"role": "question", "text": item["context"], "start_s": 0.0,
                       "end_s": round(len(context) / SAMPLE_RATE, 3)},
                      {"role": "interruption", "text": item["text"], "start_s": at / SAMPLE_RATE,
                       "end_s": round((at + len(query)) / SAMPLE_RATE, 3)}],
            "interruption_onset_s": at / SAMPLE_RATE}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1))
    return info


def build(out_dir: str | Path = ORGANISM_DIALOGUES_DIR) -> dict:
    build_example()
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
