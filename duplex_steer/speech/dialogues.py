"""The turn-by-turn dialogue set for fitting steering vectors, plus the committed demo recording.

Each dialogue is ONE mono 24 kHz OGG file: a short lead-in silence, then user turns separated by silences
in which a full-duplex model answers. The turns are everyday questions and requests; none mentions a
Zero-Buffer Benchmark subject (tests check this against zbb/items.jsonl), so vectors are not fitted on
the benchmark. Turn timings come from the synthesized audio (first to last sample at or above
`ONSET_THRESHOLD`), so they mark where speech really is.

Committed audio is checked against SHA-256 sums in a manifest; OGG files are written with a fixed stream
serial number so a rebuild with the same espeak-ng and libvorbis gives the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE, AudioError, load_audio, pad_to_frames
from duplex_steer.resources import fixtures_dir
from duplex_steer.speech.tts import (
    ONSET_THRESHOLD,
    TTS,
    default_tts,
    speech_offset,
    speech_onset,
    tts_settings,
)

FIXTURES_DIR = fixtures_dir()
DIALOGUES_DIR = FIXTURES_DIR / "dialogues"
INTERRUPTION_EXAMPLE = FIXTURES_DIR / "interruption_example.ogg"
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = "dialogues-1"

LEAD_IN_S = 0.5  # silence before the first turn (a model's start-up frames)
ANSWER_GAP_S = 3.5  # silence after every turn, where the model answers
OGG_QUALITY = 0.9  # libsndfile Vorbis compression level (0 best, 1 smallest): ~35 kbps, speech spectrum kept

# 25 dialogues x 4 turns. Everyday questions and requests; no ZBB subject (penguins, cows, trains, ...).
DIALOGUE_TURNS: tuple[tuple[str, ...], ...] = (
    ("What do goats eat?", "Why do roosters crow in the morning?", "How long do sheep live?",
     "Tell me something funny about ducks."),
    ("Tell me about the moon.", "How far away is Mars?", "Why is the sky blue?", "What is a shooting star?"),
    ("How do I boil an egg?", "What can I cook with rice?", "Is butter better than oil for frying?",
     "Give me a quick dessert idea."),
    ("Why is there thunder in a storm?", "How do clouds float?", "What causes a strong wind?",
     "How does fog form?"),
    ("Where should I go for a summer holiday?", "What should I pack for a long flight?",
     "How do I sleep well in a hotel?", "Tell me a fun fact about Japan."),
    ("How much water should I drink each day?", "Why do we need sleep?", "What is a good morning stretch?",
     "How can I stop feeling tired after lunch?"),
    ("Who wrote the Moonlight Sonata?", "How do I start learning guitar?", "What makes a song catchy?",
     "Recommend some calm music for studying."),
    ("Who built the pyramids?", "Why did the Roman Empire fall?", "When was the printing press invented?",
     "Tell me about the Wright brothers."),
    ("How does a computer remember things?", "What is the internet made of?", "Why does my phone get warm?",
     "Explain what a password manager does."),
    ("What is seven times eight?", "How do I find the area of a circle?", "Why can't we divide by zero?",
     "Give me an easy trick for adding fractions."),
    ("How do you say hello in French?", "What is the hardest language to learn?",
     "Why does English have so many irregular verbs?", "Teach me a word in Spanish."),
    ("How often should I feed a parrot?", "Why do rabbits thump their feet?", "What does a hamster like to eat?",
     "How big does a guinea pig get?"),
    ("When should I plant potatoes?", "How often do houseplants need water?",
     "Why are my basil leaves turning yellow?", "Which flowers smell the nicest?"),
    ("How long is a marathon?", "What are the rules of volleyball?", "How can I run faster?",
     "Who invented the game of golf?"),
    ("Why do we yawn?", "How many bones are in the human body?", "What does the heart do?",
     "Why do our fingers wrinkle in the bath?"),
    ("How do I save money each month?", "What is a credit score?", "Should I rent or buy a house?",
     "Explain interest in simple words."),
    ("Recommend a good mystery novel.", "Who wrote Pride and Prejudice?", "How can I read more every week?",
     "Tell me a short story about a dragon."),
    ("What is gravity?", "Why does ice float on water?", "How does a magnet work?", "What is an atom made of?"),
    ("What should I make for breakfast?", "How do I get a coffee stain out of a shirt?",
     "Give me a tip for a tidy kitchen.", "How long should I nap?"),
    ("How do I write a good email?", "What should I say in a job interview?", "How can I stay focused at work?",
     "Give me a polite way to say no."),
    ("Why do leaves change color in autumn?", "How do birds find their way south?",
     "What is the tallest tree in the world?", "Tell me about coral reefs."),
    ("What is the capital of Canada?", "Which river is the longest?", "How many countries are in Africa?",
     "Tell me about the Amazon forest."),
    ("Tell me a joke.", "Can you make up a riddle?", "What is a fun game for a long car ride?",
     "Say something to cheer me up."),
    ("How does a car engine work?", "What is a hybrid car?", "How do traffic lights know when to change?",
     "What was the first car like?"),
    ("Where does chocolate come from?", "Why do onions make us cry?", "How is yogurt made?",
     "What fruit has the most vitamin C?"),
)  # fmt: skip

# The demo: a request that sets the model talking, then a zero-buffer interruption (ZBB item penguins-false).
EXAMPLE_QUESTION = "Tell me about the ocean."
EXAMPLE_INTERRUPTION = "Penguins, they live in the desert, right?"
EXAMPLE_INTERRUPTION_ITEM = "penguins-false"
EXAMPLE_TALK_S = 4.0  # silence after the question, where the model talks
EXAMPLE_TAIL_S = 3.0  # silence after the interruption, where the model answers it


class FixtureError(AudioError):
    """A committed audio file is missing or does not match its manifest."""


# ---------------------------------------------------------------- committed audio files (shared with zbb/build.py)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@cache
def _ogg_crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        reg = byte << 24
        for _ in range(8):
            reg = ((reg << 1) ^ 0x04C11DB7) if reg & 0x80000000 else (reg << 1)
        table.append(reg & 0xFFFFFFFF)
    return tuple(table)


def _ogg_crc(page: bytes) -> int:
    table, crc = _ogg_crc_table(), 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) & 0xFF) ^ byte]
    return crc


def _fix_ogg_serial(data: bytes, serial: int = 1) -> bytes:
    """Replace the random stream serial number libsndfile picks with `serial` (page CRCs recomputed)."""
    out, pos = bytearray(data), 0
    while pos < len(out):
        if out[pos : pos + 4] != b"OggS":
            raise AudioError(f"not an Ogg page at byte {pos}")
        n_segments = out[pos + 26]
        length = 27 + n_segments + sum(out[pos + 27 : pos + 27 + n_segments])
        page = out[pos : pos + length]
        page[14:18] = struct.pack("<I", serial)
        page[22:26] = b"\0\0\0\0"
        page[22:26] = struct.pack("<I", _ogg_crc(bytes(page)))
        out[pos : pos + length] = page
        pos += length
    return bytes(out)


def encode_ogg(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, quality: float = OGG_QUALITY) -> bytes:
    """Mono float audio -> OGG Vorbis bytes, reproducible for identical input (fixed stream serial)."""
    import soundfile as sf

    buf = io.BytesIO()
    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    sf.write(buf, wav, sample_rate, format="OGG", subtype="VORBIS", compression_level=quality)
    return _fix_ogg_serial(buf.getvalue())


def write_ogg(path: str | Path, wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """Write `wav` as OGG Vorbis to `path`; return the file's SHA-256."""
    data = encode_ogg(wav, sample_rate)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def verify_file(path: str | Path, sha256: str, rebuild_hint: str = "") -> None:
    """Raise FixtureError naming `path` if it is missing or its SHA-256 differs from the manifest's."""
    path = Path(path)
    hint = f"; {rebuild_hint}" if rebuild_hint else ""
    if not path.is_file():
        raise FixtureError(f"audio file listed in the manifest is missing: {path}{hint}")
    actual = sha256_file(path)
    if actual != sha256:
        raise FixtureError(
            f"checksum mismatch for {path}: manifest says sha256 {sha256[:12]}..., file has {actual[:12]}... "
            f"(the file was changed or corrupted){hint}"
        )


def read_json(path: str | Path) -> dict[str, Any]:
    """Load a JSON manifest, with a FixtureError naming the file if it is missing or malformed."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FixtureError(f"manifest not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise FixtureError(f"manifest {path} is not valid JSON: {exc}") from None


def seconds(n_samples: int) -> float:
    """Sample count -> seconds at 24 kHz, rounded to 6 decimals (exact enough to recover the count)."""
    return round(n_samples / SAMPLE_RATE, 6)


def write_json(path: str | Path, data: dict[str, Any]) -> None:
    """Write a manifest as indented UTF-8 JSON with a trailing newline."""
    Path(path).write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- dialogues


@dataclass(frozen=True)
class Turn:
    """One user turn: what is said and where its speech starts and ends in the dialogue's audio."""

    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Dialogue:
    """One dialogue recording with its turns."""

    id: str
    path: Path
    sha256: str
    duration_s: float
    turns: tuple[Turn, ...]

    def audio(self) -> np.ndarray:
        """The recording as mono float32 at 24 kHz."""
        return load_audio(self.path)

    def user_speaking(self, frame_samples: int = FRAME_SAMPLES) -> np.ndarray:
        """Per model frame (80 ms): True where a turn overlaps the frame. Length = frames in the file."""
        n_frames = -(-round(self.duration_s * SAMPLE_RATE) // frame_samples)
        mask = np.zeros(n_frames, dtype=bool)
        for turn in self.turns:
            first = int(turn.start_s * SAMPLE_RATE) // frame_samples
            last = -(-int(turn.end_s * SAMPLE_RATE) // frame_samples)
            mask[first:last] = True
        return mask


@dataclass(frozen=True)
class _Placed:
    """Text laid out in a recording: sample offsets of its speech."""

    text: str
    start: int
    end: int

    def timing(self) -> dict[str, Any]:
        return {"text": self.text, "start_s": seconds(self.start), "end_s": seconds(self.end)}


def lay_out_turns(
    texts: Sequence[str], tts: TTS, lead_in_s: float, gaps_s: Sequence[float]
) -> tuple[np.ndarray, list[_Placed]]:
    """Synthesize `texts` and place them in one recording: lead-in, turn, gap, turn, gap, ...

    gaps_s[i] is the silence after turn i. The length is padded up to whole 80 ms frames.
    """
    if len(gaps_s) != len(texts):
        raise ValueError("need one gap per turn")
    pieces = [np.zeros(round(lead_in_s * SAMPLE_RATE), dtype=np.float32)]
    cursor, placed = len(pieces[0]), []
    for text, gap in zip(texts, gaps_s, strict=True):
        speech = np.asarray(tts.synthesize(text), dtype=np.float32)
        onset, offset = speech_onset(speech), speech_offset(speech)
        if onset is None or offset is None:
            raise AudioError(f"the TTS produced silence for {text!r}")
        placed.append(_Placed(text, cursor + onset, cursor + offset))
        pieces += [speech, np.zeros(round(gap * SAMPLE_RATE), dtype=np.float32)]
        cursor += len(speech) + len(pieces[-1])
    return pad_to_frames(np.concatenate(pieces)), placed


def build_dialogues(
    out_dir: str | Path = DIALOGUES_DIR,
    tts: TTS | None = None,
    dialogues: Sequence[Sequence[str]] = DIALOGUE_TURNS,
    lead_in_s: float = LEAD_IN_S,
    gap_s: float = ANSWER_GAP_S,
) -> dict[str, Any]:
    """Synthesize every dialogue to `out_dir`/dialogue_NN.ogg and write the manifest; return it."""
    tts = tts or default_tts()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, texts in enumerate(dialogues):
        wav, placed = lay_out_turns(texts, tts, lead_in_s, [gap_s] * len(texts))
        name = f"dialogue_{index:02d}.ogg"
        sha = write_ogg(out_dir / name, wav)
        entries.append({"id": name.removesuffix(".ogg"), "file": name, "sha256": sha,
                        "duration_s": seconds(len(wav)),
                        "n_samples": len(wav), "turns": [p.timing() for p in placed]})  # fmt: skip
    manifest = {
        "version": MANIFEST_VERSION,
        "tts": tts.name,
        "tts_settings": tts_settings(tts),
        "sample_rate": SAMPLE_RATE,
        "onset_threshold": ONSET_THRESHOLD,
        "lead_in_s": lead_in_s,
        "gap_s": gap_s,
        "n_turns": sum(len(e["turns"]) for e in entries),
        "dialogues": entries,
    }
    write_json(out_dir / MANIFEST_NAME, manifest)
    return manifest


def load_dialogues(root: str | Path = DIALOGUES_DIR, verify: bool = True) -> list[Dialogue]:
    """Read the dialogue manifest; with `verify`, check every file's SHA-256 (FixtureError on mismatch)."""
    root = Path(root)
    manifest = read_json(root / MANIFEST_NAME)
    if manifest.get("version") != MANIFEST_VERSION:
        raise FixtureError(
            f"{root / MANIFEST_NAME}: version {manifest.get('version')!r}, expected {MANIFEST_VERSION!r}"
        )
    out = []
    for entry in manifest["dialogues"]:
        path = root / entry["file"]
        if verify:
            verify_file(path, entry["sha256"], "rebuild with: python -m duplex_steer.speech.dialogues")
        turns = tuple(Turn(t["text"], float(t["start_s"]), float(t["end_s"])) for t in entry["turns"])
        out.append(Dialogue(entry["id"], path, entry["sha256"], float(entry["duration_s"]), turns))
    return out


# ---------------------------------------------------------------- the demo recording


def build_interruption_example(
    out_path: str | Path = INTERRUPTION_EXAMPLE, tts: TTS | None = None, question_text: str = EXAMPLE_QUESTION,
    item_id: str = EXAMPLE_INTERRUPTION_ITEM, interruption_text: str = EXAMPLE_INTERRUPTION,
    talk_s: float = EXAMPLE_TALK_S, lead_in_s: float = LEAD_IN_S,
) -> dict[str, Any]:
    """Write a demo recording: question, `talk_s` of silence, zero-buffer interruption, EXAMPLE_TAIL_S.

    Writes `out_path` (OGG) and a .json beside it with texts and timings; returns that JSON.
    """
    tts = tts or default_tts()
    out_path = Path(out_path)
    texts = [question_text, interruption_text]
    wav, (question, interruption) = lay_out_turns(texts, tts, lead_in_s, [talk_s, EXAMPLE_TAIL_S])
    sha = write_ogg(out_path, wav)
    info = {
        "version": MANIFEST_VERSION,
        "tts": tts.name,
        "tts_settings": tts_settings(tts),
        "sample_rate": SAMPLE_RATE,
        "onset_threshold": ONSET_THRESHOLD,
        "file": out_path.name,
        "sha256": sha,
        "duration_s": seconds(len(wav)),
        "n_samples": len(wav),
        "turns": [
            {"role": "question", **question.timing()},
            {"role": "interruption", "zbb_item": item_id, **interruption.timing()},
        ],
        "interruption_onset_s": interruption.timing()["start_s"],
    }
    write_json(out_path.with_suffix(".json"), info)
    return info


def load_interruption_example(path: str | Path = INTERRUPTION_EXAMPLE) -> tuple[np.ndarray, dict[str, Any]]:
    """The demo recording (checked against its .json) and its JSON description."""
    path = Path(path)
    info = read_json(path.with_suffix(".json"))
    verify_file(path, info["sha256"], "rebuild with: python -m duplex_steer.speech.dialogues")
    return load_audio(path), info


def main(argv: Sequence[str] | None = None) -> None:
    """Rebuild the dialogue set and the demo recording (python -m duplex_steer.speech.dialogues)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FIXTURES_DIR, help="folder for dialogues/ and the demo")
    args = parser.parse_args(argv)
    manifest = build_dialogues(args.out / "dialogues")
    info = build_interruption_example(args.out / INTERRUPTION_EXAMPLE.name)
    print(f"{len(manifest['dialogues'])} dialogues, {manifest['n_turns']} turns -> {args.out / 'dialogues'}")
    print(f"demo ({info['duration_s']} s) -> {args.out / INTERRUPTION_EXAMPLE.name}")


if __name__ == "__main__":
    main()
