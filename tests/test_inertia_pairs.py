"""Paired take-over lags: known differences, censoring rules, pairing by gap, the printed line, timelines."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_steer.probes.inertia import InertiaReport, OnsetInertia, OnsetWindows, Scenario
from duplex_steer.probes.inertia_pairs import (
    SPEAKING_MINUS_LISTENING,
    STEERED_MINUS_UNSTEERED,
    comparison_line,
    inertia_comparisons,
    mean_timeline,
    paired_lags,
    speaking_rows,
)


def test_paired_lags_known_answer_and_censoring():
    speaking = [5, 6, 7, None, 9]
    listening = [2, 3, 4, 1, None]
    got = paired_lags(speaking, listening, max_frames=50, seed=0)
    # both observed in 3 pairs, each differing by exactly 3: the interval is that point
    assert (got["n_pairs"], got["n_used"], got["censored_pairs"]) == (5, 3, 2)
    assert (got["censored_values"], got["censored_reference"]) == (1, 1)
    assert got["difference"] == 3.0 and got["ci_low"] == got["ci_high"] == 3.0 and "nothing varies" in got["note"]
    # censored lags counted as max_frames: (5+6+7+50+9)/5 - (2+3+4+1+50)/5 = 77/5 - 60/5
    bound = got["censored_as_max_frames"]
    assert bound["difference"] == pytest.approx(17 / 5)
    assert bound["ci_low"] <= bound["difference"] <= bound["ci_high"]


def test_paired_lags_interval_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    listening = rng.integers(0, 6, 40).tolist()
    speaking = [x + 4 + int(rng.integers(-2, 3)) for x in listening]
    got = paired_lags(speaking, listening, max_frames=50, seed=1)
    diffs = np.subtract(speaking, listening)
    assert got["difference"] == pytest.approx(diffs.mean()) and got["censored_pairs"] == 0
    assert diffs.min() < got["ci_low"] < got["difference"] < got["ci_high"] < diffs.max()
    assert paired_lags(speaking, listening, max_frames=50, seed=1) == got
    assert "BCa" in got["method"] and "paired" in got["method"]


def test_all_censored_says_so_and_lengths_must_match():
    got = paired_lags([None, None], [1, None], max_frames=20)
    assert got["difference"] is None and got["n_used"] == 0 and "no pair" in got["note"]
    assert got["censored_as_max_frames"]["difference"] == pytest.approx((40 - 21) / 2)
    with pytest.raises(ValueError, match="same length"):
        paired_lags([1], [1, 2], max_frames=20)


def _scenario(pair: str, gap: float) -> Scenario:
    return Scenario(f"{pair}@gap{gap:g}s", np.zeros(1920, np.float32), 0, gap, [], "", pair)


def test_comparisons_pair_measured_states_and_steered_reruns_by_scenario():
    scen = [_scenario("a", 0.4), _scenario("a", 4.0), _scenario("b", 4.0), _scenario("b", 0.4),
            _scenario("c", 0.4), _scenario("c", 4.0)]
    lags = [1, 8, 2, None, 3, 5]
    # a: as intended; b: speaking after the SHORT gap (it talked at once), listening after the long one;
    # c: speaking in both (left out of speaking - listening)
    cond = ["listening", "speaking", "listening", "speaking", "speaking", "speaking"]
    report = InertiaReport([OnsetInertia(i, 0, c, x) for i, (c, x) in enumerate(zip(cond, lags, strict=True))],
                           {}, max_frames=30)
    assert speaking_rows(report, 6) == [1, 3, 4, 5]
    steered = InertiaReport([OnsetInertia(i, 0, "speaking", x) for i, x in enumerate([5, 20, 3, 1])], {}, max_frames=30)
    got = inertia_comparisons(scen, report, steered, seed=0)
    sl = got[SPEAKING_MINUS_LISTENING]
    assert [(p["pair"], p["listening"], p["speaking"], p["gaps_s"]) for p in sl["pairs"]] == [
        ("a", 1, 8, [0.4, 4.0]), ("b", 2, None, [4.0, 0.4])]
    assert sl["queries"] == 3 and [q["pair"] for q in sl["same_state_queries"]] == ["c"]
    assert sl["difference"] == 7.0 and sl["n_used"] == 1 and sl["censored_pairs"] == 1
    assert sl["censored_as_max_frames"]["difference"] == pytest.approx(((8 - 1) + (30 - 2)) / 2)
    st = got[STEERED_MINUS_UNSTEERED]
    assert [(p["scenario"], p["unsteered"], p["steered"]) for p in st["pairs"]] == [
        ("a@gap4s", 8, 5), ("b@gap0.4s", None, 20), ("c@gap0.4s", 3, 3), ("c@gap4s", 5, 1)]
    assert st["difference"] == pytest.approx(((5 - 8) + 0 + (1 - 5)) / 3) and st["n_used"] == 3
    line = comparison_line(SPEAKING_MINUS_LISTENING, sl)
    assert line == ("speaking - listening: +7.0 frames [+7.0, +7.0], n=1 of 2 pairs (1 censored); "
                    "censored as max_frames: +17.5 [+7.0, +28.0]")


def test_mean_timeline_averages_the_band_over_scenarios_ignoring_nan():
    gen = np.zeros((2, 36, 3), np.float32)
    perc = np.zeros((2, 36, 3), np.float32)
    gen[0, :, 1], gen[1, :, 1] = 0.2, 0.4  # band = layers 1..2 of [0, 1, 2]
    gen[:, :, 2] = 0.0
    perc[0, :, 1:] = 1.0
    perc[1] = np.nan  # a window past its recording's end
    tl = mean_timeline(OnsetWindows(gen, perc, [0, 1, 2], (1, 2)))
    assert tl["n"] == 2 and len(tl["band_S_gen"]) == 36
    assert tl["band_S_gen"][0] == pytest.approx(0.15) and tl["band_S_perc"][0] == pytest.approx(1.0)
