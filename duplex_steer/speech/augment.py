"""Acoustic variation for training speech: speed, gain, additive noise and a synthetic room (numpy/scipy only).

Applied in this order, each deterministic given `Augmentation.seed`:
1. speed: resampling by a rational factor (polyphase), so tempo, pitch and formants change together, as
   vocal-tract-length perturbation does; speed 1.1 makes the audio 1/1.1 as long;
2. room: convolution with an impulse response of a direct path (1 at t=0) plus exponentially decaying
   Gaussian noise from 2 ms on (amplitude down 60 dB at `rt60_s`, `REVERB_ENERGY` of the direct path's
   energy); the output grows by the response's length (rt60_s), word spans stay where they are;
3. gain: `gain_db` exactly;
4. noise: white or pink (1/f power) Gaussian noise at `snr_db` (signal power over the whole clip / noise power);
5. peak: if any sample exceeds `PEAK` (0.99) in magnitude, everything is scaled down to peak at 0.99 (never
   clipped), which keeps the SNR but lowers the effective gain;
6. lossy storage (`lossy_rate`): resampled to that rate, stored as ogg Vorbis as `zbb build` stores speech
   (`speech.dialogues.encode_ogg`), read back at the original rate and length: the artefacts of compressed
   speech, which every recording a person shares has.

`close_pauses` is a separate, word-aware variation: it shortens the silences between words (a comma's pause
in flite or espeak-ng; festival's HTS voices run "excuse me, Penguins" together), so that a tagger learns
where a word starts without a pause before it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from duplex_steer.audio import SAMPLE_RATE
from duplex_steer.errors import DuplexSteerError
from duplex_steer.speech.aligned import AlignedUtterance

PEAK = 0.99
REVERB_ENERGY = 0.5  # reverberant / direct energy of the synthetic room (direct-to-reverberant ratio +3 dB)
REVERB_DELAY_S = 0.002
MAX_SPEED_DENOMINATOR = 200  # speed factors are rounded to p/q with q <= 200 (error < 3e-5)
NOISES = ("white", "pink")

# `draw_augmentation` ranges
SPEED_RANGE = (0.88, 1.12)
GAIN_DB_RANGE = (-10.0, 4.0)
NOISE_PROBABILITY = 0.5
SNR_DB_RANGE = (12.0, 40.0)
ROOM_PROBABILITY = 0.4
RT60_S_RANGE = (0.1, 0.5)
LOSSY_RATES = (16000, 24000)  # `draw_augmentation`'s lossy storage rates (ZBB stores 16 kHz engines at 16 kHz)


class AugmentationError(DuplexSteerError, ValueError):
    """An augmentation setting out of range, with the valid range."""


@dataclass(frozen=True)
class Augmentation:
    """What `apply_augmentation` does: speed factor (>1 faster), gain in dB, noise at `snr_db` dB SNR
    (None: no noise) of kind `noise` ("white" or "pink"), a room with `rt60_s` (None: no room), and the seed
    of the noise and the room's response."""

    speed: float = 1.0
    gain_db: float = 0.0
    snr_db: float | None = None
    noise: str = "white"
    rt60_s: float | None = None
    seed: int = 0
    lossy_rate: int | None = None  # stored as ogg Vorbis at this rate last (None: not)

    def __post_init__(self) -> None:
        if not 0.5 <= self.speed <= 2.0:
            raise AugmentationError(f"speed {self.speed} is outside 0.5-2.0")
        if self.noise not in NOISES:
            raise AugmentationError(f"noise {self.noise!r} must be one of {', '.join(NOISES)}")
        if self.rt60_s is not None and not 0.0 < self.rt60_s <= 3.0:
            raise AugmentationError(f"rt60_s {self.rt60_s} must be in (0, 3] seconds, or None for no room")
        if self.lossy_rate is not None and not 8000 <= self.lossy_rate <= 48000:
            raise AugmentationError(f"lossy_rate {self.lossy_rate} must be 8000-48000 Hz, or None for no lossy storage")


def draw_augmentation(rng: np.random.Generator, lossy_probability: float = 0.0) -> Augmentation:
    """A random augmentation: speed uniform in 0.88-1.12, gain uniform in -10..+4 dB, with probability 0.5
    white or pink noise (even odds) at 12-40 dB SNR, with probability 0.4 a room of RT60 0.1-0.5 s, and with
    probability `lossy_probability` lossy storage at a rate of `LOSSY_RATES` (drawn after everything else, so
    0 draws the same augmentations as before the option existed)."""
    speed = float(rng.uniform(*SPEED_RANGE))
    gain_db = float(rng.uniform(*GAIN_DB_RANGE))
    with_noise = rng.random() < NOISE_PROBABILITY
    snr_db = float(rng.uniform(*SNR_DB_RANGE))
    noise = NOISES[int(rng.integers(2))]
    with_room = rng.random() < ROOM_PROBABILITY
    rt60_s = float(rng.uniform(*RT60_S_RANGE))
    seed = int(rng.integers(2**31))
    lossy_rate = None
    if lossy_probability > 0 and rng.random() < lossy_probability:
        lossy_rate = LOSSY_RATES[int(rng.integers(len(LOSSY_RATES)))]
    return Augmentation(
        speed, gain_db, snr_db if with_noise else None, noise, rt60_s if with_room else None, seed, lossy_rate
    )


def speed_ratio(speed: float) -> Fraction:
    """The speed factor actually applied: `speed` as a fraction with a denominator of at most 200."""
    return Fraction(speed).limit_denominator(MAX_SPEED_DENOMINATOR)


def change_speed(audio: np.ndarray, speed: float) -> np.ndarray:
    """Play `audio` `speed` times as fast by resampling (tempo, pitch and formants together)."""
    ratio = speed_ratio(speed)
    if ratio == 1:
        return audio
    from scipy.signal import resample_poly

    return resample_poly(audio, ratio.denominator, ratio.numerator).astype(np.float32)


def room_response(rt60_s: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Direct path plus exponentially decaying Gaussian noise (60 dB down at rt60_s), `rt60_s` long."""
    n = max(2, int(round(rt60_s * sample_rate)))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60_s)
    tail[: int(round(REVERB_DELAY_S * sample_rate))] = 0.0
    tail *= np.sqrt(REVERB_ENERGY / max(float(np.sum(tail**2)), 1e-12))
    tail[0] = 1.0
    return tail


def make_noise(n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of unit-power white or pink (power ~ 1/f, shaped in the frequency domain) Gaussian noise."""
    white = rng.standard_normal(n)
    if kind == "pink":
        spectrum = np.fft.rfft(white)
        freqs = np.arange(len(spectrum), dtype=np.float64)
        freqs[0] = 1.0
        white = np.fft.irfft(spectrum / np.sqrt(freqs), n)
    return white / max(float(np.sqrt(np.mean(white**2))), 1e-12)


def apply_augmentation(audio: np.ndarray, aug: Augmentation, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`audio` (mono float) changed as `aug` says (see the module docstring); float32, peak at most 0.99."""
    out = change_speed(np.asarray(audio, dtype=np.float32), aug.speed).astype(np.float64)
    room_rng, noise_rng = np.random.default_rng([aug.seed, 1]), np.random.default_rng([aug.seed, 2])
    if aug.rt60_s is not None:
        from scipy.signal import fftconvolve

        out = fftconvolve(out, room_response(aug.rt60_s, room_rng, sample_rate))
    out = out * 10 ** (aug.gain_db / 20)
    if aug.snr_db is not None and out.size:
        power = float(np.mean(out**2))
        out = out + make_noise(len(out), aug.noise, noise_rng) * np.sqrt(power / 10 ** (aug.snr_db / 10))
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > PEAK:
        out = out * (PEAK / peak)
    out = out.astype(np.float32)
    return out if aug.lossy_rate is None else lossy_round_trip(out, aug.lossy_rate, sample_rate)


def lossy_round_trip(audio: np.ndarray, rate: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """`audio` stored as ogg Vorbis at `rate` (as `zbb build` stores speech) and read back at `sample_rate`,
    cut or padded to its length (float32)."""
    import io

    import soundfile as sf

    from duplex_steer.audio import resample
    from duplex_steer.speech.dialogues import encode_ogg

    if audio.size == 0:
        return audio.astype(np.float32)
    stored, stored_rate = sf.read(io.BytesIO(encode_ogg(resample(audio, sample_rate, rate), rate)), dtype="float32")
    back = resample(stored, stored_rate, sample_rate)[: len(audio)]
    return np.pad(back, (0, len(audio) - len(back))).astype(np.float32)


PAUSE_KEEP_S = (0.0, 0.04)  # `close_pauses`: what is left of a pause, drawn per pause
CROSSFADE_S = 0.005


def close_pauses(utt: AlignedUtterance, rng: np.random.Generator, keep_s: tuple[float, float] = PAUSE_KEEP_S,
                 ) -> AlignedUtterance:
    """The utterance with every gap between consecutive words longer than `keep_s[1]` cut to a length drawn
    from `keep_s` (at least 5 ms; the middle of the gap removed, joined with a 5 ms crossfade); later word
    spans move earlier by what was cut. Speech before the first and after the last word is kept."""
    audio, spans = utt.audio, list(utt.spans_s)
    fade = int(CROSSFADE_S * SAMPLE_RATE)
    pieces, shifted, cursor, removed = [], [], 0, 0
    for j, (start, end) in enumerate(spans):
        shifted.append((start - removed / SAMPLE_RATE, end - removed / SAMPLE_RATE))
        if j + 1 == len(spans):
            break
        gap_start, gap_end = int(round(end * SAMPLE_RATE)), int(round(spans[j + 1][0] * SAMPLE_RATE))
        keep = max(int(rng.uniform(*keep_s) * SAMPLE_RATE), fade)  # at least the crossfade's length
        cut = gap_end - gap_start - keep - fade
        if cut <= 0:
            continue
        blend = gap_start + (keep - fade) // 2  # the kept silence's first `fade` samples blend with its last
        head, tail = audio[cursor : blend + fade], audio[blend + fade + cut : blend + 2 * fade + cut]
        ramp = np.linspace(1.0, 0.0, fade, dtype=np.float32)
        pieces += [head[:-fade], head[-fade:] * ramp + tail * (1 - ramp)]
        cursor, removed = blend + 2 * fade + cut, removed + cut + fade
    pieces.append(audio[cursor:])
    return replace(utt, audio=np.concatenate(pieces).astype(np.float32), spans_s=shifted, words=list(utt.words))


def maybe_close_pauses(utt: AlignedUtterance, share: float, rng: np.random.Generator) -> AlignedUtterance:
    """`close_pauses(utt, rng)` with probability `share`, else `utt`; `rng` is not drawn from at share 0, so a
    generator shared with other draws gives them as before."""
    if share > 0 and rng.random() < share:
        return close_pauses(utt, rng)
    return utt


def augment_utterance(utt: AlignedUtterance, aug: Augmentation) -> AlignedUtterance:
    """The utterance with augmented audio and its word spans scaled by the speed change."""
    audio = apply_augmentation(utt.audio, aug)
    scale = 1 / float(speed_ratio(aug.speed))
    duration = len(audio) / SAMPLE_RATE
    spans = [(min(a * scale, duration), min(b * scale, duration)) for a, b in utt.spans_s]
    return replace(utt, audio=audio, spans_s=spans, words=list(utt.words))
