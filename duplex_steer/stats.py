"""Paired statistics shared by the probes and the benchmark (pure functions; numpy and scipy only).

Paired difference: mean over items of (condition - reference), with a BCa bootstrap interval that
resamples items (both members of a pair together: `scipy.stats.bootstrap(paired=True)`), seeded.
When every difference is equal there is nothing to resample: the interval is that value, flagged.
`zbb.stats` re-exports it for the benchmark's reports; `probes.inertia_pairs` uses it for take-over lags.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

DEFAULT_N_BOOT = 2000
DEFAULT_SEED = 0
DEFAULT_CONFIDENCE = 0.95


def difference_interval(values: Sequence[float], reference: Sequence[float], paired: bool = True,
                        n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED,
                        confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """Mean of ``values`` minus mean of ``reference`` with a BCa bootstrap interval.

    ``paired``: the arrays are aligned by item and resampled together (scipy's ``paired=True``);
    otherwise each is resampled on its own (shown only to compare). Returns {"n", "difference",
    "ci_low", "ci_high", "method", "note"}; note is None unless the interval is degenerate or fell
    back to the percentile method.
    """
    from scipy import stats as sps

    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if paired and a.shape != b.shape:
        raise ValueError(f"paired arrays must have the same length, got {a.size} and {b.size}")
    if a.size == 0 or b.size == 0:
        raise ValueError("difference_interval needs values in both arrays")
    diff = float(a.mean() - b.mean())
    out: dict[str, Any] = {"n": int(a.size), "difference": diff, "ci_low": None, "ci_high": None,
                           "method": f"BCa bootstrap over items ({'paired' if paired else 'unpaired'}), "
                                     f"{n_boot} resamples, seed {seed}", "note": None}
    if np.ptp(a - b) == 0 if paired else np.ptp(a) == np.ptp(b) == 0:
        what = "every paired difference" if paired else "every difference of means"
        out.update(ci_low=diff, ci_high=diff,
                   note=f"{what} equals {diff:.3g}: nothing varies to resample, the interval is a point")
        return out
    if min(a.size, b.size) < 2:
        out["note"] = "one item: no interval"
        return out

    def statistic(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(x, axis=axis) - np.mean(y, axis=axis)

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate resamples surface as NaN, handled below
            res = sps.bootstrap((a, b), statistic, paired=paired, vectorized=True, n_resamples=n_boot,
                                confidence_level=confidence, method=method, random_state=np.random.default_rng(seed))
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            out.update(ci_low=low, ci_high=high)
            if method != "BCa":
                out["method"] = out["method"].replace("BCa", "percentile")
                out["note"] = "BCa undefined on these data (too few distinct resamples): percentile interval"
            return out
    out["note"] = "no finite bootstrap interval"
    return out


__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_N_BOOT", "DEFAULT_SEED", "difference_interval"]
