"""Report statistics: Wilson, exact McNemar, recovery; the paired difference is duplex_steer.stats's."""

from __future__ import annotations

import math

import numpy as np
import pytest

import zbb.stats
from zbb.stats import mcnemar_exact, recovery_interval, wilson_interval


def test_wilson_interval_known_values():
    # 8 of 10 at 95 % (z = 1.959964): the textbook interval [0.4902, 0.9433]
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(3.8415 / 13.8415, abs=1e-4)
    assert wilson_interval(10, 10) == (pytest.approx(10 / 13.841459, abs=1e-6), 1.0)  # never collapses to a point
    with pytest.raises(ValueError):
        wilson_interval(3, 0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)


def test_mcnemar_exact_p_is_the_binomial_on_discordant_pairs():
    reference = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    condition = [1, 1, 1, 1, 1, 0, 0, 1, 1, 1]  # gained 5 (0 -> 1), lost 1 (1 -> 0), 4 concordant
    res = mcnemar_exact(condition, reference)
    assert (res["gained"], res["lost"], res["n_pairs"]) == (5, 1, 10)
    by_hand = 2 * (math.comb(6, 0) + math.comb(6, 1)) / 2**6  # two-sided: P(X <= 1) + P(X >= 5), X ~ Bin(6, 1/2)
    assert res["p_value"] == pytest.approx(by_hand, abs=1e-12) and by_hand == pytest.approx(0.21875)
    same = mcnemar_exact([1, 0, 1], [1, 0, 1])
    assert same["p_value"] == 1.0 and same["note"] == "no discordant pairs"
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([0.5, 1], [1, 1])


def test_the_paired_difference_is_the_shared_one():
    """One implementation, in duplex_steer.stats (tested in test_stats.py); zbb re-exports it."""
    import duplex_steer.stats

    assert zbb.stats.difference_interval is duplex_steer.stats.difference_interval


def test_recovery_interval_and_a_vanishing_gap():
    n = 40
    no_interrupt = np.ones(n)
    interrupt = np.r_[np.ones(8), np.zeros(n - 8)]  # gap 0.8
    steer = np.r_[np.ones(24), np.zeros(n - 24)]  # recovers half the gap
    res = recovery_interval(steer, interrupt, no_interrupt, seed=0)
    assert res["recovery"] == pytest.approx(0.5) and res["gap"] == pytest.approx(0.8)
    assert res["ci_low"] < 0.5 < res["ci_high"] and res["gap_le_zero_share"] == 0.0 and res["note"] is None
    tiny_gap = recovery_interval(steer, interrupt, np.r_[np.ones(9), np.zeros(n - 9)], seed=0)  # gap 1 item
    assert tiny_gap["recovery"] == pytest.approx(16.0) and tiny_gap["ci_low"] is None
    assert "not identified" in tiny_gap["note"]
    none = recovery_interval(steer, interrupt, interrupt)
    assert none["recovery"] is None and "no gap" in none["note"]
