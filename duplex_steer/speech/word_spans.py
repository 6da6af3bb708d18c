"""Where each word of a sentence lies in one engine's own rendering of it: flite, festival, espeak-ng.

Every function returns `EngineWords` (the engine's audio at its own rate and one (start, end) per word, in
seconds) or None where the engine's words cannot be matched to ours for sure: a wrong alignment would teach a
word classifier the wrong word, a missing sentence costs nothing. `duplex_steer.speech.aligned` resamples,
trims and counts the skips.

- flite: phone end times from `-psdur`; a word's phones from the same lexicon spoken word by word (cached);
  the sentence's spoken phones must be the words' phones one after another (see `split_phones_by_word`).
- festival: the utterance's own words (`utt.save.words`, end = the end of the word's last segment) and
  segments (a word starts where the previous word or a pause ends); the words must equal ours.
- espeak-ng: the library's word events give the starts (one fresh process per sentence, see
  `espeak_isolated`); a word ends where its sound ends before the next word's start (energy).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise
from pathlib import Path

import numpy as np

from duplex_steer.speech.engines import (
    ENGINE_PACKAGES,
    FESTIVAL_VOICES,
    PAUSE,
    flite_voices,
    read_festival_times,
    run_festival,
    word_starts,
)
from duplex_steer.speech.timing import FRAME_S, PEAK_FLOOR_DB
from duplex_steer.speech.tts import TTSError, require_binary

# flite's US voices share the CMU lexicon and letter-to-sound rules; kal (a diphone voice) looks a word up in
# about 1 ms where the unit-selection voices synthesize it for 10-20 ms. kal merges "ah" into "aa", so
# looked-up phones may differ from the voice's in vowel quality, never in number.
FLITE_LEXICON_VOICE = "kal"
LOOKUP_BATCH = 200  # words per flite call when looking words up
ESPEAK_SCRIPT = Path(__file__).with_name("espeak_isolated.py")


@dataclass(frozen=True)
class EngineWords:
    """One engine rendering: mono float32 audio at `sample_rate`, and (start_s, end_s) per word."""

    audio: np.ndarray
    sample_rate: int
    spans_s: list[tuple[float, float]]


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    audio, sample_rate = sf.read(str(path), dtype="float32")
    return audio, int(sample_rate)


# ---------------------------------------------------------------- flite


def is_vowel(phone: str) -> bool:
    """CMU phone set: the vowels are exactly the phones starting with a, e, i, o or u."""
    return phone[0] in "aeiou"


def split_phones_by_word(spoken: Sequence[str], word_phones: Sequence[Sequence[str]]) -> list[int] | None:
    """Index of each word's first phone in `spoken`, or None when the words do not account for the phones.

    Required: the same total count; any phone that differs must keep its class (vowel for vowel, consonant for
    consonant: homographs such as "excuse" s/z, reduced "the", kal's aa for ah) and at most half of a word's
    phones (at least one) may differ. A word given one phone too many and a later one one too few shifts the
    phones between them, which breaks the class of some phone almost surely; such a sentence is refused.
    """
    if sum(len(p) for p in word_phones) != len(spoken) or any(len(p) == 0 for p in word_phones):
        return None
    firsts, k = [], 0
    for phones in word_phones:
        said = spoken[k : k + len(phones)]
        differ = [(a, b) for a, b in zip(said, phones, strict=True) if a != b]
        if any(is_vowel(a) != is_vowel(b) for a, b in differ) or len(differ) > max(1, len(phones) // 2):
            return None
        firsts.append(k)
        k += len(phones)
    return firsts


_WORD_PHONES: dict[tuple[str, str], list[str]] = {}


def flite_word_phones(words: Sequence[str], voice: str = FLITE_LEXICON_VOICE) -> list[list[str]]:
    """Each word's phones as flite says it alone (`-ps`), cached per (voice, word) for this process.

    Words are looked up in batches ("w1. w2. ..." speaks each as its own sentence, pauses between); a batch
    whose pauses do not split into one group per word is looked up word by word.
    """
    exe = require_binary("flite", ENGINE_PACKAGES["flite"])
    missing = sorted({w for w in words if (voice, w) not in _WORD_PHONES})
    for i in range(0, len(missing), LOOKUP_BATCH):
        batch = missing[i : i + LOOKUP_BATCH]
        out = _flite_phones(exe, voice, " ".join(f"{w}." for w in batch))
        groups = [g.split() for g in " ".join(out).split(PAUSE) if g.split()]
        if len(groups) != len(batch):
            groups = [[p for p in _flite_phones(exe, voice, w) if p != PAUSE] for w in batch]
        _WORD_PHONES.update({(voice, w): g for w, g in zip(batch, groups, strict=True)})
    return [_WORD_PHONES[(voice, w)] for w in words]


def _flite_phones(exe: str, voice: str, text: str) -> list[str]:
    proc = subprocess.run(
        [exe, "-voice", voice, "-t", text, "-o", "none", "-ps"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise TTSError(
            f"flite failed (exit {proc.returncode}) looking up {text[:60]!r}: {proc.stderr.strip()}"
        )
    return proc.stdout.split()


def flite_words(voice: str, text: str, words: Sequence[str]) -> EngineWords | None:
    """flite's rendering of `text` with each word's span from its phones (None: phones and words disagree)."""
    exe = require_binary("flite", ENGINE_PACKAGES["flite"])
    if voice not in flite_voices(exe):
        raise TTSError(f"flite has no voice {voice!r}; choose from {', '.join(flite_voices(exe))}")
    with tempfile.TemporaryDirectory() as tmp:
        wav_path = Path(tmp) / "out.wav"
        proc = subprocess.run([exe, "-voice", voice, "-t", " ".join(text.split()), "-o", str(wav_path), "-psdur"],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode != 0 or not wav_path.is_file():
            raise TTSError(f"flite failed (exit {proc.returncode}) on {text!r}: {proc.stderr.strip()}")
        audio, sample_rate = read_wav(wav_path)
    phones = [(name, float(end)) for name, end in re.findall(r"(\S+):([0-9.]+)", proc.stdout)]
    starts = [0.0] + [end for _, end in phones[:-1]]
    spoken = [(name, start, end) for (name, end), start in zip(phones, starts, strict=True) if name != PAUSE]
    word_phones = flite_word_phones(words)
    firsts = split_phones_by_word([name for name, _, _ in spoken], word_phones)
    if firsts is None:
        return None
    spans = [(spoken[k][1], spoken[k + len(p) - 1][2]) for k, p in zip(firsts, word_phones, strict=True)]
    return EngineWords(audio, sample_rate, spans)


# ---------------------------------------------------------------- festival


def festival_spans(
    words: Sequence[tuple[str, float]], segs: Sequence[tuple[str, float]]
) -> list[tuple[float, float]]:
    """(start, end) per festival word: it starts where the previous word or a pause after it ends."""
    return [(start, end) for start, (_, end) in zip(word_starts(words, segs), words, strict=True)]


def festival_words(
    voice: str, texts: Sequence[str], words: Sequence[Sequence[str]]
) -> list[EngineWords | None]:
    """festival's renderings of all `texts` in one process; None where its words are not `words[i]`."""
    exe = require_binary("festival", ENGINE_PACKAGES["festival"])
    festival_voice, package = FESTIVAL_VOICES[voice]
    results: list[EngineWords | None] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        proc = run_festival(exe, festival_voice, texts, out)
        for i, text in enumerate(texts):
            if not (out / f"{i}.wav").is_file():
                raise TTSError(f"festival did not render {text!r} with voice {festival_voice!r} (is {package} "
                               f"installed?): {proc.stderr.strip()[-300:]}")  # fmt: skip
            said = read_festival_times(out / f"{i}.words")
            if [name.lower() for name, _ in said] != list(words[i]):
                results.append(None)
                continue
            audio, sample_rate = read_wav(out / f"{i}.wav")
            results.append(
                EngineWords(audio, sample_rate, festival_spans(said, read_festival_times(out / f"{i}.segs")))
            )
    return results


# ---------------------------------------------------------------- espeak-ng


@lru_cache(maxsize=1)
def espeak_voice_table() -> tuple[dict[str, str], frozenset[str]]:
    """({language code or voice file: the name libespeak-ng accepts}, the variant names), from the binary."""
    exe = require_binary("espeak-ng", ENGINE_PACKAGES["espeak-ng"])
    names: dict[str, str] = {}
    for line in subprocess.run([exe, "--voices"], capture_output=True, text=True).stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5 and not parts[4].startswith("mb/"):  # mbrola voices need extra packages
            names.setdefault(parts[1].lower(), parts[4])
            names.setdefault(parts[4].lower(), parts[4])
    out = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True).stdout.splitlines()[1:]
    variants = frozenset(p[4].split("/")[-1].lower() for p in (line.split() for line in out) if len(p) >= 5)
    return names, variants


def resolve_espeak_voice(voice: str) -> str:
    """ "en-gb+f2" -> "gmw/en+f2": what libespeak-ng's SetVoiceByName accepts; TTSError if unknown."""
    base, _, variant = voice.partition("+")
    names, variants = espeak_voice_table()
    if base.lower() not in names:
        raise TTSError(
            f"espeak-ng has no voice {base!r}; list them with: espeak-ng --voices (e.g. en-us, en-gb)"
        )
    if variant and variant.lower() not in variants:
        raise TTSError(f"espeak-ng has no variant {variant!r}; list them with: espeak-ng --voices=variant "
                       "(e.g. m3, f2)")  # fmt: skip
    return names[base.lower()] + (f"+{variant}" if variant else "")


def word_ends(audio: np.ndarray, sample_rate: int, starts_s: Sequence[float]) -> list[float] | None:
    """Where each word's sound ends: the end of its last 5 ms frame above the speech threshold (40 dB under
    the loudest frame) before the next word's start. None when a word has no such frame."""
    frame = max(1, int(round(FRAME_S * sample_rate)))
    n = len(audio) // frame
    rms = np.sqrt((audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1))
    loud = rms >= rms.max() * 10 ** (PEAK_FLOOR_DB / 20)
    bounds = [int(s * sample_rate) // frame for s in starts_s] + [n]
    ends = []
    for lo, hi in pairwise(bounds):
        hits = np.flatnonzero(loud[lo:hi])
        if hits.size == 0:
            return None
        ends.append((lo + int(hits[-1]) + 1) * frame / sample_rate)
    return ends


def espeak_words(voice: str, rate_wpm: int, text: str, words: Sequence[str]) -> EngineWords | None:
    """espeak-ng's sentence rendering (fresh process) with word spans; None when its word events are not one
    per word or a word is silent."""
    resolved = resolve_espeak_voice(voice)
    cmd = [sys.executable, "-S", "-I", str(ESPEAK_SCRIPT), resolved, str(rate_wpm), "50", "100"]
    proc = subprocess.run(cmd, input=" ".join(text.split()).encode("utf-8"), capture_output=True, check=False)
    if proc.returncode != 0:
        raise TTSError(f"espeak-ng's library failed (exit {proc.returncode}) on {text!r} with voice {voice!r}: "
                       f"{proc.stderr.decode(errors='replace').strip()[-300:]}")  # fmt: skip
    header, _, pcm = proc.stdout.partition(b"\n")
    info = json.loads(header)
    sample_rate = int(info["sample_rate"])
    audio = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="=i2").astype(np.float32) / 32768.0
    starts = [sample / sample_rate for sample, length in info["words"] if length > 0]
    if len(starts) != len(words) or any(b <= a for a, b in pairwise(starts)):
        return None
    ends = word_ends(audio, sample_rate, starts)
    if ends is None:
        return None
    return EngineWords(audio, sample_rate, list(zip(starts, ends, strict=True)))
