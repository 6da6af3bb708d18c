"""The subject-muted control: a copy of a rendering in which every question's subject is silence.

IWOR asks whether the reply names the subject, the word the user said first. A model can also name it
without having heard it, when the rest of the question points to one subject ("..., they live in icy
places, right?"; in the organism's small world a description is asked of only a few subjects). ZBB run
on a muted copy measures that guess floor: how often the reply names a subject of which no sound was
played. An interrupt IWOR near the floor says the model missed the initial word and guessed; the floor
is the lowest IWOR any amount of inertia can give.

The copy keeps every file's audio except the subject, and the manifest keeps the original onsets, so
each condition plays its question at the same frame. The subject's span comes from the engine's own
word times: the queries and buffered queries are rendered again with the manifest's engine and voice
(the copy is refused where a rendering's speech lasts other than the stored file's), and everything from
the subject's start to the next word's start (the comma's pause included) is set to zero, with 5 ms
ramps. The muted files are FLAC (24-bit), so outside the span they are the stored audio as decoded.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from duplex_steer.speech.dialogues import FixtureError, read_json, sha256_file, write_json
from duplex_steer.speech.timing import Rendering, detect_speech_bounds
from duplex_steer.speech.tts import TTS, get_tts

from .build import BUFFER_TEXT, MANIFEST_NAME
from .rendering import render_all

RAMP_S = 0.005
MATCH_S = 0.05  # rendered again, an utterance's speech may last this much more or less than the stored file's
MUTED_KINDS = ("query", "buffered")


def subject_index(kind: str) -> int:
    """Word index of the subject in a query ("Penguins, they ...") or a buffered query ("Um, excuse me, Penguins, ...")."""
    return len(BUFFER_TEXT.split()) if kind == "buffered" else 0


def subject_span(entry: dict[str, Any], again: Rendering) -> tuple[float, float]:
    """(start, end) of the entry's subject in seconds of its stored file, from `again` (its text rendered anew):
    the engine's word times, moved so the first audible sound lands on the entry's `first_word_onset_s`."""
    text, starts = entry["text"], again.word_starts_s
    if not starts or len(starts) != len(text.split()):
        raise FixtureError(f"the engine gave no word times for {text!r}: its subject cannot be found "
                           "(festival and espeak-ng give word times; flite does not)")
    bounds = detect_speech_bounds(np.asarray(again.audio, np.float32), again.sample_rate)
    if bounds is None:
        raise FixtureError(f"rendered again, {text!r} is silent")
    onset, end = bounds
    stored = entry["speech_end_s"] - entry["first_word_onset_s"]
    if abs((end - onset) - stored) > MATCH_S:
        raise FixtureError(f"{entry['file']}: rendered again its speech lasts {end - onset:.3f} s, the stored "
                           f"file's {stored:.3f} s; the engine or voice is not the one that built the rendering")
    i, shift = subject_index(entry["kind"]), entry["first_word_onset_s"] - onset
    return starts[i] + shift, starts[i + 1] + shift


def mute_span(audio: np.ndarray, rate: int, start_s: float, end_s: float) -> np.ndarray:
    """A copy of `audio` with [start_s, end_s) set to zero, faded out before and in after over RAMP_S."""
    out = np.array(audio, np.float32, copy=True)
    a, b, ramp = max(0, round(start_s * rate)), min(len(out), round(end_s * rate)), round(RAMP_S * rate)
    out[a:b] = 0.0
    out[max(0, a - ramp):a] *= np.linspace(1.0, 0.0, a - max(0, a - ramp), endpoint=False, dtype=np.float32)
    tail = out[b:b + ramp]
    tail *= np.linspace(0.0, 1.0, len(tail), endpoint=False, dtype=np.float32)
    return out


def mute_subjects(source: str | Path, out: str | Path, tts: TTS | None = None,
                  kinds: Sequence[str] = MUTED_KINDS) -> dict[str, Any]:
    """Write to `out` a copy of the rendering `source` with the subject of every query and buffered query
    muted; return its manifest. `tts`: the engine that built it (default: the manifest's engine and voice)."""
    source, out = Path(source), Path(out)
    manifest = read_json(source / MANIFEST_NAME)
    if manifest.get("tts") in (None, "recordings") or not manifest.get("entries"):
        raise FixtureError(f"{source}: not a TTS-built rendering (manifest tts {manifest.get('tts')!r}); the "
                           "subject-muted copy needs the engine's word times (`zbb build --tts ENGINE` first)")
    if out.exists():
        raise FixtureError(f"{out} exists; give a new folder for the muted copy")
    if tts is None:
        tts = get_tts(manifest["tts"], **({"voice": manifest["voice"]} if manifest.get("voice") else {}))
    entries = [e for e in manifest["entries"] if e["kind"] in kinds]
    texts = [e["text"] for e in entries]
    again = render_all(tts, texts)
    spans = [subject_span(e, r) for e, r in zip(entries, again, strict=True)]  # all checked before writing
    shutil.copytree(source, out)
    for entry, (start, end) in zip(entries, spans, strict=True):
        audio, rate = sf.read(str(source / entry["file"]), dtype="float32")
        (out / entry["file"]).unlink()
        entry["file"] = str(Path(entry["file"]).with_suffix(".flac"))
        sf.write(str(out / entry["file"]), mute_span(audio, rate, start, end), rate, subtype="PCM_24")
        entry["sha256"] = sha256_file(out / entry["file"])
        entry["subject_muted_s"] = [round(start, 4), round(end, 4)]
    manifest["subject_muted"] = True
    manifest["note"] = f"{manifest.get('note', '')}; the subject of every {' and '.join(kinds)} muted (zbb.muting)"
    write_json(out / MANIFEST_NAME, manifest)
    return manifest
