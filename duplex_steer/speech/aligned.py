"""Sentence-level speech with word alignments from several TTS engines: training data for a word classifier.

Voice ids (`parse_voice`):
- "flite:<voice>": a voice compiled into flite (kal, kal16, awb, rms, slt);
- "festival:<short>": slt-hts (HTS) or kal (diphone), see `engines.FESTIVAL_VOICES`;
- "espeak-ng:<voice>[+<variant>][@<wpm>]": any espeak-ng voice ("en-us", "en-gb", "en-us+m3", "en-gb+f2",
  "en-us@140"), sentence mode, 175 words per minute unless "@<wpm>" (80-450) says otherwise.

A word's span runs from its start to the end of its last phone (flite, festival) or its last sound
(espeak-ng), so the pause after a comma lies outside every span. Where an engine's words cannot be matched to
ours for sure (a number it reads out, a token it splits differently, phones that do not add up) the sentence
is skipped (None, and a warning with the count), never aligned wrongly: see `duplex_steer.speech.word_spans`.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from duplex_steer.audio import SAMPLE_RATE, resample
from duplex_steer.speech.engines import FESTIVAL_VOICES
from duplex_steer.speech.render_cache import RenderCache, Rendered
from duplex_steer.speech.tts import ONSET_THRESHOLD, TTSError, speech_offset, speech_onset
from duplex_steer.speech.word_spans import (
    EngineWords,
    espeak_words,
    festival_words,
    flite_words,
    resolve_espeak_voice,
)

ENGINES = ("flite", "festival", "espeak-ng")
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
ESPEAK_DEFAULT_WPM = 175
ESPEAK_WPM_RANGE = (80, 450)
LEAD_S = 0.002  # audio kept before the first sound, as every engine's `synthesize` trims
TAIL_S = 0.010  # audio kept after the later of the last sound and the last word's end
FESTIVAL_BATCH = 40  # texts per festival process in `render_corpus` (its start-up costs ~0.3 s)
CHUNK = 20  # texts per task for the other engines

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")


def normalize_words(text: str) -> list[str]:
    """Lowercase words of letters with inner apostrophes: "Um, don't stop-gap 3" -> ["um", "don't", "stop", "gap"].

    Digits and punctuation go (hyphens split words), as a word classifier's vocabulary has them.
    """
    return _WORD.findall(text.lower())


@dataclass
class AlignedUtterance:
    """One sentence in one voice: 24 kHz mono float32 audio (speech starts ~2 ms in, ~10 ms of tail kept),
    its words (`normalize_words(text)`) and (start_s, end_s) of each word in `audio`'s time."""

    text: str
    voice: str
    audio: np.ndarray
    words: list[str]
    spans_s: list[tuple[float, float]]


@dataclass(frozen=True)
class VoiceSpec:
    """A parsed voice id: engine, the engine's voice, speaking rate (espeak-ng only)."""

    engine: str
    voice: str
    rate_wpm: int | None = None


def parse_voice(voice_id: str) -> VoiceSpec:
    """ "flite:rms" -> VoiceSpec("flite", "rms"); one TTSError naming the valid engines and voices otherwise."""
    engine, sep, voice = voice_id.partition(":")
    valid = (f"give 'flite:<{'|'.join(FLITE_VOICES)}>', 'festival:<{'|'.join(FESTIVAL_VOICES)}>' or "
             "'espeak-ng:<voice>[+<variant>][@<wpm>]' (e.g. espeak-ng:en-us+m3@160)")  # fmt: skip
    if not sep or engine not in ENGINES or not voice:
        raise TTSError(f"unknown voice id {voice_id!r}: {valid}")
    if engine == "flite":
        if voice not in FLITE_VOICES:
            raise TTSError(f"flite has no voice {voice!r} here: {valid}")
        return VoiceSpec("flite", voice)
    if engine == "festival":
        if voice not in FESTIVAL_VOICES:
            raise TTSError(f"festival voice {voice!r} is not one of ours: {valid}")
        return VoiceSpec("festival", voice)
    name, at, rate = voice.partition("@")
    if at and not (rate.isdigit() and ESPEAK_WPM_RANGE[0] <= int(rate) <= ESPEAK_WPM_RANGE[1]):
        raise TTSError(f"espeak-ng rate {rate!r} in {voice_id!r} must be words per minute in "
                       f"{ESPEAK_WPM_RANGE[0]}-{ESPEAK_WPM_RANGE[1]}")  # fmt: skip
    resolve_espeak_voice(name)  # unknown voice or variant: its own TTSError
    return VoiceSpec("espeak-ng", name, int(rate) if at else ESPEAK_DEFAULT_WPM)


def to_utterance(text: str, voice_id: str, words: list[str], rendering: EngineWords) -> AlignedUtterance:
    """Resample the engine's audio to 24 kHz, trim it like the engines' `synthesize`, shift the spans."""
    audio = resample(np.asarray(rendering.audio, dtype=np.float32), rendering.sample_rate, SAMPLE_RATE)
    onset = speech_onset(audio, ONSET_THRESHOLD)
    if onset is None:
        raise TTSError(f"{voice_id} rendered {text!r} as silence")
    start = max(0, onset - int(round(LEAD_S * SAMPLE_RATE)))
    last_word_end = int(np.ceil(rendering.spans_s[-1][1] * SAMPLE_RATE))
    end = min(
        len(audio), max(speech_offset(audio, ONSET_THRESHOLD), last_word_end) + int(TAIL_S * SAMPLE_RATE)
    )
    duration = (end - start) / SAMPLE_RATE
    shift = start / SAMPLE_RATE
    spans = [
        (min(max(0.0, a - shift), duration), min(max(0.0, b - shift), duration)) for a, b in rendering.spans_s
    ]
    return AlignedUtterance(text, voice_id, audio[start:end].copy(), words, spans)


def render_aligned(voice_id: str, texts: Sequence[str], warn: bool = True) -> list[AlignedUtterance | None]:
    """Every text spoken by one voice with its word spans; None for a text the engine's words do not match
    (warned about once, with the count, unless `warn` is False). festival speaks all texts in one process."""
    spec = parse_voice(voice_id)
    words = [normalize_words(t) for t in texts]
    if any(not w for w in words):
        raise TTSError("a text has no words (letters) to speak")
    if spec.engine == "festival":
        renderings = festival_words(spec.voice, texts, words)
    elif spec.engine == "flite":
        renderings = [flite_words(spec.voice, t, w) for t, w in zip(texts, words, strict=True)]
    else:
        renderings = [
            espeak_words(spec.voice, spec.rate_wpm or ESPEAK_DEFAULT_WPM, t, w)
            for t, w in zip(texts, words, strict=True)
        ]
    out = [
        None if r is None else to_utterance(t, voice_id, w, r)
        for t, w, r in zip(texts, words, renderings, strict=True)
    ]
    skipped = sum(u is None for u in out)
    if warn and skipped:
        warnings.warn(f"{voice_id}: {skipped} of {len(texts)} texts skipped (the engine's words did not match "
                      "ours for sure)", stacklevel=2)  # fmt: skip
    return out


def _render_task(task: tuple[str, list[str]]) -> tuple[str, list[str], list[AlignedUtterance | None]]:
    voice_id, texts = task
    return voice_id, texts, render_aligned(voice_id, texts, warn=False)


def corpus_tasks(voices: Iterable[str], texts: Sequence[str]) -> list[tuple[str, list[str]]]:
    """(voice id, chunk of texts) tasks; the chunks depend on the inputs only, never on the worker count."""
    tasks = []
    for voice_id in voices:
        size = FESTIVAL_BATCH if parse_voice(voice_id).engine == "festival" else CHUNK
        tasks += [(voice_id, list(texts[i : i + size])) for i in range(0, len(texts), size)]
    return tasks


def render_corpus(voices: Sequence[str], texts: Sequence[str], workers: int = 2, progress: bool = True,
                  cache: str | Path | None = None) -> dict[tuple[str, str], AlignedUtterance]:  # fmt: skip
    """Every text in every voice, rendered in `workers` processes (1: in this process), keyed (voice, text).

    Skipped texts (see `render_aligned`) are absent, with one warning per voice giving the count. Each
    rendering depends on its text and voice only, so the result is the same for any `workers` (identical
    arrays); the dict's order is voices x texts as given. Voice ids are checked before anything is rendered.
    With `cache` (a folder, `render_cache.RenderCache`), renderings kept there are reused and new ones added.
    """
    unique_texts = list(dict.fromkeys(texts))
    voice_ids = list(dict.fromkeys(voices))
    engines = {voice_id: parse_voice(voice_id).engine for voice_id in voice_ids}  # bad ids fail here
    results: dict[tuple[str, str], AlignedUtterance | None] = {}
    store = RenderCache(cache) if cache is not None else None
    todo: dict[str, list[str]] = {}
    for voice_id in voice_ids:
        kept = store.load(voice_id, engines[voice_id]) if store is not None else {}
        for t in unique_texts:
            if t in kept:
                r = kept[t]
                results[(voice_id, t)] = None if r is None else AlignedUtterance(t, voice_id, r.audio, r.words, r.spans_s)
        todo[voice_id] = [t for t in unique_texts if t not in kept]
    tasks = [task for voice_id in voice_ids for task in corpus_tasks([voice_id], todo[voice_id])]
    from tqdm.auto import tqdm

    with tqdm(
        total=sum(len(t) for _, t in tasks), desc="rendering", unit="text", disable=not progress
    ) as bar:
        if workers <= 1 or not tasks:
            done: Iterable = map(_render_task, tasks)
            pool = None
        else:
            import multiprocessing

            pool = multiprocessing.get_context("spawn").Pool(workers)
            done = pool.imap_unordered(_render_task, tasks)
        try:
            for voice_id, chunk, utterances in done:
                results.update({(voice_id, t): u for t, u in zip(chunk, utterances, strict=True)})
                bar.update(len(chunk))
        finally:
            if pool is not None:
                pool.terminate()
    if store is not None:
        for voice_id in voice_ids:
            if todo[voice_id]:
                store.save(voice_id, engines[voice_id], {
                    t: None if (u := results[(voice_id, t)]) is None else Rendered(u.audio, u.words, u.spans_s)
                    for t in todo[voice_id]})
    out = {}
    for voice_id in dict.fromkeys(voices):
        kept = {
            (voice_id, t): results[(voice_id, t)] for t in unique_texts if results[(voice_id, t)] is not None
        }
        if len(kept) < len(unique_texts):
            warnings.warn(f"{voice_id}: {len(unique_texts) - len(kept)} of {len(unique_texts)} texts skipped "
                          "(the engine's words did not match ours for sure)", stacklevel=2)  # fmt: skip
        out.update(kept)
    return out  # type: ignore[return-value]
