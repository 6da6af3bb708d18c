"""More speech engines from Debian packages, each speaking whole sentences and reporting its own timings.

- `FliteTTS`: CMU flite (package `flite`), voices kal, kal16, awb, rms, slt; phone end times from `-psdur`.
- `FestivalTTS`: festival with an HTS voice (`festvox-us-slt-hts`) or a diphone voice (`festvox-kallpc16k`);
  phone and word times from the utterance (`utt.save.segs`, `utt.save.words`).
espeak-ng (sentence mode with its library's word events, or word by word) is `tts.EspeakTTS`. Importing
this module registers the engines with `get_tts` ("flite", "festival"); `duplex_steer.speech` does that.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from duplex_steer.audio import SAMPLE_RATE, resample
from duplex_steer.speech.timing import Rendering
from duplex_steer.speech.tts import TTSError, register_tts, require_binary, trim_silence

PAUSE = "pau"
# The Debian package behind each engine binary and voice (what a missing-binary error tells you to install).
ENGINE_PACKAGES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "festival"}
FESTIVAL_VOICES = {  # short name -> (festival voice, Debian package)
    "slt-hts": ("cmu_us_slt_arctic_hts", "festvox-us-slt-hts"),
    "kal": ("kal_diphone", "festvox-kallpc16k"),
}


def phone_windows(phones: Sequence[tuple[str, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    """From (phone, end time) pairs: (start of the first spoken phone, its end) and the same for the last.

    Pauses ("pau") before and after the speech are skipped. Raises TTSError when nothing but pauses.
    """
    spoken = [i for i, (name, _) in enumerate(phones) if name != PAUSE]
    if not spoken:
        raise TTSError("the engine reported no spoken phone")
    first, last = spoken[0], spoken[-1]
    start = phones[first - 1][1] if first > 0 else 0.0
    last_start = phones[last - 1][1] if last > 0 else 0.0
    return (start, phones[first][1]), (last_start, phones[last][1])


def _to_24k_trimmed(rendering: Rendering) -> np.ndarray:
    return trim_silence(resample(rendering.audio, rendering.sample_rate, SAMPLE_RATE))


@dataclass(frozen=True)
class FliteTTS:
    """CMU flite through its binary: one sentence per call, phone end times from `-psdur`."""

    voice: str = "slt"
    binary: str = "flite"
    name: ClassVar[str] = "flite"

    def _exe(self) -> str:
        exe = require_binary(self.binary, ENGINE_PACKAGES["flite"])
        voices = flite_voices(exe)
        if self.voice not in voices:
            raise TTSError(f"flite has no voice {self.voice!r}; choose from {', '.join(voices)}")
        return exe

    def render(self, text: str) -> Rendering:
        """Speak `text` at flite's rate (8 or 16 kHz) with the first and last phone's times."""
        if not text.split():
            raise TTSError("nothing to synthesize: the text is empty")
        exe = self._exe()
        with tempfile.TemporaryDirectory() as tmp:
            wav_path = Path(tmp) / "out.wav"
            proc = subprocess.run([exe, "-voice", self.voice, "-t", " ".join(text.split()), "-o", str(wav_path),
                                   "-psdur"], capture_output=True, text=True, check=False)  # fmt: skip
            if proc.returncode != 0 or not wav_path.is_file():
                raise TTSError(f"flite failed (exit {proc.returncode}) on {text!r}: {proc.stderr.strip()}")
            import soundfile as sf

            audio, sample_rate = sf.read(str(wav_path), dtype="float32")
        phones = [(name, float(end)) for name, end in re.findall(r"(\S+):([0-9.]+)", proc.stdout)]
        onset, end = phone_windows(phones)
        return Rendering(audio, int(sample_rate), onset_window_s=onset, end_window_s=end)

    def synthesize(self, text: str) -> np.ndarray:
        """Speak `text`; 24 kHz, trimmed like every TTS here (speech starts 2 ms in)."""
        return _to_24k_trimmed(self.render(text))

    def settings(self) -> dict[str, Any]:
        """The voice and flite's version, for manifests."""
        return {"voice": self.voice, "flite_version": flite_version(self.binary)}


@lru_cache(maxsize=4)
def flite_voices(exe: str) -> list[str]:
    """The voices compiled into this flite binary (`flite -lv`)."""
    out = subprocess.run([exe, "-lv"], capture_output=True, text=True, check=False).stdout
    return out.split(":", 1)[1].split() if ":" in out else []


def flite_version(binary: str = "flite") -> str:
    """'2.2' for flite 2.2."""
    out = subprocess.run([require_binary(binary, "flite"), "--version"], capture_output=True, text=True).stdout
    match = re.search(r"flite-([0-9.]+)", out)
    return match.group(1) if match else out.strip()


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_festival_times(path: Path) -> list[tuple[str, float]]:
    """(name, end time) per line after the '#' header of an utt.save.segs / utt.save.words file."""
    lines = path.read_text(encoding="utf-8", errors="replace").split("#", 1)[-1].splitlines()
    return [(parts[2], float(parts[0])) for parts in (line.split() for line in lines) if len(parts) >= 3]


def run_festival(exe: str, festival_voice: str, texts: Sequence[str], out: Path) -> subprocess.CompletedProcess:
    """Speak every text in one `festival -b` process (its start-up costs more than a sentence): text i's
    audio, phone and word times land in `out` as i.wav, i.segs, i.words; a missing i.wav means it failed
    (the process's stderr says why)."""
    script = [f"(voice_{festival_voice})"]
    for i, text in enumerate(texts):
        script += [f"(set! utt (utt.synth (Utterance Text {_scheme_string(' '.join(text.split()))})))",
                   f'(utt.save.segs utt "{out}/{i}.segs")', f'(utt.save.words utt "{out}/{i}.words")',
                   f'(utt.save.wave utt "{out}/{i}.wav" \'riff)']  # fmt: skip
    (out / "run.scm").write_text("\n".join(script) + "\n", encoding="utf-8")
    return subprocess.run([exe, "-b", str(out / "run.scm")], capture_output=True, text=True, check=False)


def word_starts(words: Sequence[tuple[str, float]], phones: Sequence[tuple[str, float]]) -> list[float]:
    """Each word's start: the previous word's end, or the end of a pause between them."""
    starts, previous_end = [], 0.0
    for _, end in words:
        start = previous_end
        for name, phone_end in phones:
            if name == PAUSE and previous_end < phone_end < end:
                start = phone_end
        starts.append(start)
        previous_end = end
    return starts


@dataclass(frozen=True)
class FestivalTTS:
    """festival through `festival -b`: many sentences per process, phone and word times per sentence.

    voice: a short name of FESTIVAL_VOICES ("slt-hts", "kal") or a festival voice name.
    """

    voice: str = "slt-hts"
    binary: str = "festival"
    name: ClassVar[str] = "festival"

    @property
    def festival_voice(self) -> str:
        return FESTIVAL_VOICES.get(self.voice, (self.voice, ""))[0]

    def _voice_package(self) -> str:
        by_voice = {v: pkg for v, pkg in FESTIVAL_VOICES.values()}
        return by_voice.get(self.festival_voice, "a festvox-* voice package")

    def render_many(self, texts: Sequence[str]) -> list[Rendering]:
        """Speak every text in one festival process (its start-up costs more than a sentence)."""
        exe = require_binary(self.binary, ENGINE_PACKAGES["festival"])
        if any(not t.split() for t in texts):
            raise TTSError("nothing to synthesize: a text is empty")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            proc = run_festival(exe, self.festival_voice, texts, out)
            renderings = []
            for i in range(len(texts)):
                wav_path = out / f"{i}.wav"
                if not wav_path.is_file():
                    raise TTSError(f"festival did not render {texts[i]!r} with voice {self.festival_voice!r} "
                                   f"(is {self._voice_package()} installed?): {proc.stderr.strip()[-300:]}")
                import soundfile as sf

                audio, sample_rate = sf.read(str(wav_path), dtype="float32")
                phones = read_festival_times(out / f"{i}.segs")
                onset, end = phone_windows(phones)
                starts = word_starts(read_festival_times(out / f"{i}.words"), phones)
                renderings.append(Rendering(audio, int(sample_rate), onset, end, starts))
        return renderings

    def render(self, text: str) -> Rendering:
        """Speak `text` at the voice's rate with its phone and word times."""
        return self.render_many([text])[0]

    def synthesize(self, text: str) -> np.ndarray:
        """Speak `text`; 24 kHz, trimmed like every TTS here (speech starts 2 ms in)."""
        return _to_24k_trimmed(self.render(text))

    def settings(self) -> dict[str, Any]:
        """The voice (short and festival name) and festival's version, for manifests."""
        out = {k: v for k, v in asdict(self).items() if k != "binary"}
        return {**out, "festival_voice": self.festival_voice, "festival_version": festival_version(self.binary)}


def festival_version(binary: str = "festival") -> str:
    """'2.5.0' for festival 2.5.0."""
    exe = require_binary(binary, "festival")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    match = re.search(r"System: ([0-9.]+)", out)
    return match.group(1) if match else out.strip()


register_tts("flite", FliteTTS)
register_tts("festival", FestivalTTS)
