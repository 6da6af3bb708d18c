"""Where each voice's energy ends: the organism's training voices and the held-out engine's, side by side.

Renders the first 40 ZBB queries in every voice (24 kHz, as the organism hears them), averages their power
spectra (2048-point Hann frames) and prints the frequencies below which 99% and 99.9% of the energy lies,
and the level at 3.4, 5, 7 and 9 kHz against the spectrum's peak. The model card's "Hearing the held-out
engine" cites it: voices differ above ~3.4 kHz by their engine's sample rate (flite's kal was recorded at
8 kHz), not by what they say, which is why the tagger reads only the lowest 32 mel bands there.

    .venv/bin/python scripts/voice_bandwidth.py --speech-cache runs/speech-cache
"""

from __future__ import annotations

import argparse

import numpy as np

N_FFT = 2048
LEVELS_HZ = (3400, 5000, 7000, 9000)


def spectrum_edges(audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """The 99% and 99.9% energy frequencies and the dB levels at LEVELS_HZ of `audio`'s mean power spectrum."""
    usable = audio[: len(audio) // N_FFT * N_FFT].reshape(-1, N_FFT)
    power = (np.abs(np.fft.rfft(usable * np.hanning(N_FFT), axis=1)) ** 2).mean(0)
    freqs = np.fft.rfftfreq(N_FFT, 1 / sample_rate)
    cumulative = np.cumsum(power) / power.sum()
    db = 10 * np.log10(power / power.max() + 1e-12)
    row = {"f99_hz": float(freqs[np.searchsorted(cumulative, 0.99)]),
           "f999_hz": float(freqs[np.searchsorted(cumulative, 0.999)])}
    row.update({f"db_at_{hz}": float(db[np.searchsorted(freqs, hz)]) for hz in LEVELS_HZ})
    return row


def main() -> None:
    from duplex_steer.audio import SAMPLE_RATE
    from duplex_steer.organism.hearing import TRAINING_VOICES
    from duplex_steer.organism.train import HELD_OUT_CHECK_VOICES
    from duplex_steer.speech.aligned import render_corpus
    from duplex_steer.speech.zbb_audio import read_items

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--speech-cache", default=None, help="folder keeping rendered speech between runs")
    args = ap.parse_args()
    queries = [it["text"] for it in read_items()][:40]
    print("| voice | 99% of energy below | 99.9% below | " + " | ".join(f"dB at {hz / 1000:g} kHz" for hz in LEVELS_HZ)
          + " |\n|---|---|---|" + "---|" * len(LEVELS_HZ))
    for voice in TRAINING_VOICES + HELD_OUT_CHECK_VOICES:
        heard = render_corpus([voice], queries, workers=2, progress=False, cache=args.speech_cache).values()
        row = spectrum_edges(np.concatenate([u.audio for u in heard if u is not None]), SAMPLE_RATE)
        held = " (held out)" if voice in HELD_OUT_CHECK_VOICES else ""
        print(f"| {voice}{held} | {row['f99_hz']:.0f} Hz | {row['f999_hz']:.0f} Hz | "
              + " | ".join(f"{row[f'db_at_{hz}']:.0f}" for hz in LEVELS_HZ) + " |")


if __name__ == "__main__":  # render_corpus starts worker processes (spawn): they import this file
    main()
