"""Integrated loudness (ITU-R BS.1770, LUFS) and loudness normalisation of mono recordings.

PersonaPlex normalises a WAV voice prompt to -24 LUFS before encoding it (with pyloudnorm); this is
the same measurement without the extra dependency: K-weighting (a high shelf, then a high pass,
designed for any sample rate from BS.1770's analogue prototype), mean square over 400 ms blocks
with 75 % overlap, an absolute gate at -70 LUFS and a relative gate 10 LU below the gated mean.
"""

from __future__ import annotations

import numpy as np

from .audio import AudioError

# BS.1770's K-weighting prototype (the constants that reproduce its published 48 kHz coefficients)
SHELF_HZ, SHELF_GAIN_DB, SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
HIGHPASS_HZ, HIGHPASS_Q = 38.13547087602444, 0.5003270373238773
BLOCK_S, OVERLAP = 0.4, 0.75
ABSOLUTE_GATE_LUFS, RELATIVE_GATE_LU = -70.0, -10.0


def k_weighting(sample_rate: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The two biquads (b, a) of the K-weighting filter at `sample_rate`."""
    k = np.tan(np.pi * SHELF_HZ / sample_rate)
    vh = 10 ** (SHELF_GAIN_DB / 20)
    vb = vh ** 0.4996667741545416
    a0 = 1 + k / SHELF_Q + k * k
    shelf_b = np.array([vh + vb * k / SHELF_Q + k * k, 2 * (k * k - vh), vh - vb * k / SHELF_Q + k * k]) / a0
    shelf_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / SHELF_Q + k * k) / a0])
    k = np.tan(np.pi * HIGHPASS_HZ / sample_rate)
    a0 = 1 + k / HIGHPASS_Q + k * k
    high_b = np.array([1.0, -2.0, 1.0])
    high_a = np.array([1.0, 2 * (k * k - 1) / a0, (1 - k / HIGHPASS_Q + k * k) / a0])
    return [(shelf_b, shelf_a), (high_b, high_a)]


def integrated_loudness(wav: np.ndarray, sample_rate: int) -> float:
    """Gated integrated loudness of a mono recording in LUFS (-inf when everything is gated out)."""
    from scipy.signal import lfilter

    x = np.asarray(wav, dtype=np.float64)
    block = int(round(BLOCK_S * sample_rate))
    if x.ndim != 1 or len(x) < block:
        raise AudioError(f"loudness needs a mono recording of at least {BLOCK_S} s, got shape {x.shape}")
    for b, a in k_weighting(sample_rate):
        x = lfilter(b, a, x)
    hop = int(round(block * (1 - OVERLAP)))
    starts = np.arange(0, len(x) - block + 1, hop)
    power = np.array([np.mean(x[s : s + block] ** 2) for s in starts])
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10 * np.log10(power)
    kept = power[loud > ABSOLUTE_GATE_LUFS]
    if kept.size == 0:
        return float("-inf")
    relative = -0.691 + 10 * np.log10(kept.mean()) + RELATIVE_GATE_LU
    with np.errstate(divide="ignore"):
        kept = kept[-0.691 + 10 * np.log10(kept) > relative]
    return float(-0.691 + 10 * np.log10(kept.mean()))


def normalize_loudness(wav: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """`wav` scaled so that its integrated loudness is `target_lufs` (unchanged when it is silent)."""
    loud = integrated_loudness(wav, sample_rate)
    if not np.isfinite(loud):
        return np.asarray(wav, dtype=np.float32)
    return (np.asarray(wav, dtype=np.float64) * 10 ** ((target_lufs - loud) / 20)).astype(np.float32)
