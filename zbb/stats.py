"""Statistics for ZBB reports: single rates, paired differences, McNemar, recovery (pure functions).

ZBB is paired: every condition plays the same items with the same sampling noise, so a condition is
compared with its reference item by item.
- Single rates: Wilson score interval over items (it stays inside [0, 1] and does not collapse to a
  point at 0 or 1, unlike a percentile bootstrap). With repetitions, an item's rate is the mean of its
  repetitions and n stays the number of items.
- Paired difference: mean over items of (condition - reference), with a paired BCa bootstrap interval
  over items, seeded (`duplex_steer.stats.difference_interval`, shared with the probes; re-exported here).
- McNemar's exact test: a two-sided binomial test (p = 1/2) on the discordant pairs of 0/1 outcomes.
- Recovery = (condition - interrupt) / (no_interrupt - interrupt), with a percentile interval from
  the same item resamples. As the gap (the denominator) approaches 0 the ratio diverges; when more
  than the interval's tail share of resamples has a gap <= 0, no interval is given and the report
  says recovery is not identified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from duplex_steer.stats import DEFAULT_CONFIDENCE, DEFAULT_N_BOOT, DEFAULT_SEED, difference_interval


def mean_se(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample std, ddof=1); SE is None below 2 values."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("mean_se needs at least one value")
    mean = float(arr.mean())
    se = float(arr.std(ddof=1) / math.sqrt(arr.size)) if arr.size > 1 else None
    return mean, se


def bootstrap_interval(values: Sequence[float], n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED,
                       confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-item ``values`` (for measures that are not rates)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        raise ValueError("bootstrap_interval needs at least one value")
    rng = np.random.default_rng(seed)
    means = arr[rng.integers(0, arr.size, size=(n_boot, arr.size))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def wilson_interval(successes: float, n: int, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a rate (successes may be fractional: per-item means of repetitions)."""
    if n < 1:
        raise ValueError("wilson_interval needs n >= 1")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n], got {successes} of {n}")
    z = float(sps.norm.ppf(0.5 + confidence / 2.0))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends (no rounding past 0 or 1)
    return low, 1.0 if successes == n else min(1.0, centre + half)


def mcnemar_exact(values: Sequence[float], reference: Sequence[float]) -> dict[str, Any]:
    """Exact McNemar test on paired 0/1 outcomes: two-sided binomial test on the discordant pairs.

    Returns {"n_pairs", "gained" (reference 0, condition 1), "lost" (1 -> 0), "p_value", "note"}.
    Non-binary pairs raise ValueError; no discordant pair gives p = 1 with a note.
    """
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired arrays must have the same length, got {a.size} and {b.size}")
    if not np.isin(a, (0.0, 1.0)).all() or not np.isin(b, (0.0, 1.0)).all():
        raise ValueError("McNemar's test needs 0/1 outcomes")
    gained, lost = int(((b == 0) & (a == 1)).sum()), int(((b == 1) & (a == 0)).sum())
    out: dict[str, Any] = {"n_pairs": int(a.size), "gained": gained, "lost": lost, "p_value": 1.0, "note": None}
    if gained + lost == 0:
        out["note"] = "no discordant pairs"
    else:
        out["p_value"] = float(sps.binomtest(gained, gained + lost, 0.5).pvalue)
    return out


def recovery_interval(condition: Sequence[float], interrupt: Sequence[float], no_interrupt: Sequence[float],
                      n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED,
                      confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """Recovery (c - i) / (n - i) on item-aligned arrays, with a paired percentile bootstrap interval.

    Returns {"n", "recovery", "gap", "ci_low", "ci_high", "gap_le_zero_share", "method", "note"}.
    The ratio diverges as the gap nears 0: a resample with gap <= 0 counts as -inf/+inf (by the sign
    of its numerator), and when such resamples exceed the tail share no interval is given.
    """
    c, i, n = (np.asarray(x, dtype=float) for x in (condition, interrupt, no_interrupt))
    if not c.shape == i.shape == n.shape or c.size == 0:
        raise ValueError("recovery_interval needs three non-empty arrays aligned by item")
    gap = float(n.mean() - i.mean())
    tail = (1.0 - confidence) / 2.0
    out: dict[str, Any] = {"n": int(c.size), "recovery": None, "gap": gap, "ci_low": None, "ci_high": None,
                           "gap_le_zero_share": None,
                           "method": f"percentile bootstrap over items (paired), {n_boot} resamples, seed {seed}",
                           "note": None}
    if gap <= 0:
        out["note"] = "no_interrupt is not above interrupt: no gap to recover"
        return out
    out["recovery"] = float((c.mean() - i.mean()) / gap)
    picks = np.random.default_rng(seed).integers(0, c.size, size=(n_boot, c.size))
    num = c[picks].mean(1) - i[picks].mean(1)
    den = n[picks].mean(1) - i[picks].mean(1)
    bad = den <= 1e-12
    share = float(bad.mean())
    out["gap_le_zero_share"] = share
    if share > tail:
        out["note"] = (f"the gap is <= 0 in {share:.0%} of resamples: recovery is not identified (it diverges as "
                       "the gap nears 0)")
        return out
    ratios = np.where(bad, np.where(num >= 0, np.inf, -np.inf), num / np.where(bad, 1.0, den))
    low, high = np.quantile(ratios, [tail, 1.0 - tail], method="inverted_cdf")
    out.update(ci_low=float(low), ci_high=float(high))
    if share > 0:
        out["note"] = f"the gap is <= 0 in {share:.1%} of resamples (counted as +-inf, in the tails)"
    return out


__all__ = ["DEFAULT_CONFIDENCE", "DEFAULT_N_BOOT", "DEFAULT_SEED", "bootstrap_interval", "difference_interval",
           "mcnemar_exact", "mean_se", "recovery_interval", "wilson_interval"]
