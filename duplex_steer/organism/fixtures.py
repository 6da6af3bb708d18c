"""The organism's turn-by-turn dialogue set (audio_fixtures/organism_dialogues), for fitting vectors.

Same format and loader as the general dialogue set (`duplex_steer.speech.dialogues`), with turns the
organism understands and long gaps in which it talks or answers, spoken by a training voice
(`DIALOGUE_VOICE`): the held-out engine (festival) stays out of everything fitted, vectors
included. Rebuild with `python -m duplex_steer.organism.fixtures` (deterministic: same flite and
libvorbis, same bytes).
"""

from __future__ import annotations

from pathlib import Path

from ..speech.dialogues import FIXTURES_DIR, build_dialogues, load_dialogues
from .episodes import dialogue_turns
from .world import World

ORGANISM_DIALOGUES_DIR = FIXTURES_DIR / "organism_dialogues"
# An interruption the organism can miss: a ZBB context, then a ZBB query at 3.12 s, while it talks; spoken by
# the held-out engine (festival), so the example shows what the organism does with a voice it never heard.
ORGANISM_EXAMPLE = FIXTURES_DIR / "organism_interruption.flac"
DIALOGUE_VOICE = ("flite", "slt")  # a training voice of the organism (engine, voice)
GAP_S = 9.0  # longer than the longest monologue (110 frames = 8.8 s), so turns rarely overlap it


def held_out_rendering() -> Path:
    """The ZBB rendering by the engine the organism never heard (festival, HTS voice slt)."""
    from ..speech.zbb_audio import default_audio_dir

    return default_audio_dir().parent / "renderings" / "festival-slt-hts"


def build_example(path: str | Path = ORGANISM_EXAMPLE, item_id: str = "penguins-false",
                  onset_frame: int = 39, tail_s: float = 3.0, audio_dir: str | Path | None = None) -> dict:
    """The organism's interruption recording, assembled from a ZBB rendering (default: the held-out
    engine's, `held_out_rendering()`) and stored losslessly (FLAC)."""
    import hashlib
    import json

    import numpy as np
    import soundfile as sf

    from ..audio import FRAME_SAMPLES, SAMPLE_RATE
    from ..speech.zbb_audio import load_context_audio, load_query_audio, read_items

    audio_dir = Path(audio_dir) if audio_dir is not None else held_out_rendering()
    item = {it["id"]: it for it in read_items()}[item_id]
    context, query = load_context_audio(audio_dir, item["context"]), load_query_audio(audio_dir, item_id)
    at = onset_frame * FRAME_SAMPLES
    wav = np.zeros(at + len(query) + int(tail_s * SAMPLE_RATE), np.float32)
    wav[: len(context)] = context
    wav[at : at + len(query)] = query
    path = Path(path)
    sf.write(path, wav, SAMPLE_RATE, format="FLAC", subtype="PCM_24")
    info = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "duration_s": round(len(wav) / SAMPLE_RATE, 3), "zbb_item": item_id,
            "rendering": json.loads((audio_dir / "manifest.json").read_text()).get("tts_settings"),
            "turns": [{"role": "question", "text": item["context"], "start_s": 0.0,
                       "end_s": round(len(context) / SAMPLE_RATE, 3)},
                      {"role": "interruption", "text": item["text"], "start_s": at / SAMPLE_RATE,
                       "end_s": round((at + len(query)) / SAMPLE_RATE, 3)}],
            "interruption_onset_s": at / SAMPLE_RATE}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1))
    return info


def build(out_dir: str | Path = ORGANISM_DIALOGUES_DIR) -> dict:
    build_example()
    from ..speech import get_tts

    tts = get_tts(DIALOGUE_VOICE[0], voice=DIALOGUE_VOICE[1])
    return build_dialogues(out_dir, tts=tts, dialogues=dialogue_turns(World.load()), gap_s=GAP_S)


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
