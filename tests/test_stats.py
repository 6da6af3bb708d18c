"""duplex_steer.stats: the paired BCa difference (seeded), against the unpaired one and on degenerate data."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_steer.stats import difference_interval


def test_paired_interval_contains_the_difference_and_beats_the_unpaired_one_on_correlated_data():
    rng = np.random.default_rng(0)
    item = rng.normal(0, 1, 60)  # a strong per-item effect shared by both conditions
    reference = item + rng.normal(0, 0.1, 60)
    condition = item + 0.3 + rng.normal(0, 0.1, 60)
    paired = difference_interval(condition, reference, paired=True, n_boot=2000, seed=1)
    unpaired = difference_interval(condition, reference, paired=False, n_boot=2000, seed=1)
    observed = float(condition.mean() - reference.mean())
    assert paired["difference"] == pytest.approx(observed) and paired["note"] is None
    assert paired["ci_low"] < observed < paired["ci_high"]
    assert paired["ci_low"] > 0  # the pairing reveals the shift ...
    assert unpaired["ci_low"] < 0 < unpaired["ci_high"]  # ... that item-to-item spread hides unpaired
    assert (paired["ci_high"] - paired["ci_low"]) * 5 < unpaired["ci_high"] - unpaired["ci_low"]
    assert difference_interval(condition, reference, seed=1) == paired  # seeded
    assert "BCa" in paired["method"] and "paired" in paired["method"]


def test_degenerate_differences_do_not_crash_and_say_so():
    same = difference_interval([1, 1, 0, 0], [0, 0, -1, -1])
    assert (same["difference"], same["ci_low"], same["ci_high"]) == (1.0, 1.0, 1.0)
    assert "every paired difference equals 1" in same["note"]
    single = difference_interval([1], [0])
    assert single["difference"] == 1.0 and "nothing varies" in single["note"]
    one_off = difference_interval([1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0])  # one discordant item
    assert one_off["ci_low"] is not None and one_off["ci_low"] <= 1 / 6 <= one_off["ci_high"]
    with pytest.raises(ValueError, match="same length"):
        difference_interval([1, 0], [1])
