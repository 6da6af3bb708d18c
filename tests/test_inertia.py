"""State inertia: the take-over rule, per-onset measurement, summaries, paired scenarios."""

from __future__ import annotations

import numpy as np
import pytest

from duplex_steer.audio import FRAME_SAMPLES
from duplex_steer.probes.activity import Activity
from duplex_steer.probes.affinity import AffinityResult
from duplex_steer.probes.inertia import (
    OnsetInertia,
    build_pair,
    measure_inertia,
    onset_window,
    run_scenarios,
    scenario_noise_key,
    summarize,
    takeover_frame,
    zbb_pairs,
)


def test_takeover_needs_k_consecutive_perceptive_frames():
    gen = np.full(12, 0.5)
    perc = np.array([0.9, 0, 0.9, 0.9, 0, 0.9, 0.9, 0.9, 0.9, 0, 0, np.nan])
    assert takeover_frame(gen, perc, 1, k=3) == 5
    assert takeover_frame(gen, perc, 1, k=2) == 2
    assert takeover_frame(gen, perc, 0, k=1) == 0
    assert takeover_frame(gen, perc, 6, k=3) == 6
    assert takeover_frame(gen, perc, 1, k=3, end=7) is None  # the run must fit before `end`
    assert takeover_frame(gen, perc, 9, k=1) is None  # NaN never counts as perceptive


def _result(gen: np.ndarray, perc: np.ndarray, onsets, model_active) -> AffinityResult:
    B, T = gen.shape
    act = Activity(np.zeros((B, T), bool), np.asarray(model_active, bool), onsets)
    return AffinityResult(gen[..., None], perc[..., None], [0], (0, 0), act, onsets, "m", True)


def test_measure_inertia_labels_and_windows():
    T = 30
    gen = np.full((2, T), 0.5)
    perc = np.zeros((2, T))
    perc[0, 4:] = 1  # item 0: onset 3 (model silent before) switches at 4
    perc[1, 17:] = 1  # item 1: onset 10 (model speaking before) switches at 17; onset 25 at once
    model = np.zeros((2, T), bool)
    model[1, 5:10] = True
    res = _result(gen, perc, [[3], [10, 25]], model)
    got = measure_inertia(res, k=3, max_frames=20)
    assert [(x.item, x.onset, x.condition, x.frames) for x in got] == [
        (0, 3, "listening", 1), (1, 10, "speaking", 7), (1, 25, "listening", 0)]
    # a take-over is looked for only before the next onset / max_frames: censored otherwise
    short = measure_inertia(res, k=3, max_frames=5)
    assert short[1].frames is None and short[1].seconds is None and got[1].seconds == pytest.approx(0.56)


def test_summary_mean_median_and_difference():
    xs = [OnsetInertia(0, 5, "listening", 1), OnsetInertia(1, 5, "listening", 3), OnsetInertia(2, 5, "speaking", 8),
          OnsetInertia(3, 5, "speaking", 6), OnsetInertia(4, 5, "speaking", None), OnsetInertia(5, 5, "speaking", 10)]
    s = summarize(xs)
    assert s["listening"] == {"n": 2, "censored": 0, "mean_frames": 2, "median_frames": 2, "values": [1, 3]}
    assert s["speaking"]["n"] == 4 and s["speaking"]["censored"] == 1 and s["speaking"]["mean_frames"] == 8
    assert s["difference_speaking_minus_listening"] == {"mean_frames": 6, "median_frames": 6}
    assert summarize(xs[:2])["difference_speaking_minus_listening"]["mean_frames"] is None


def test_build_pair_places_the_utterance_on_a_known_frame():
    ctx, utt = np.ones(5000, np.float32), np.full(7000, 0.5, np.float32)
    short, long_ = build_pair(ctx, utt, "x", gaps_s=(0.4, 3.0), lead_in_s=0.5, tail_s=1.0)
    for sc in (short, long_):
        assert len(sc.wav) % FRAME_SAMPLES == 0
        start = sc.onset * FRAME_SAMPLES
        assert sc.wav[start - 1] == 0 and sc.wav[start] == 0.5 and (sc.wav[start : start + 7000] == 0.5).all()
        assert sc.turns[1]["start_s"] == start / 24000
    assert long_.onset - short.onset == pytest.approx(2.6 * 12.5, abs=1)
    assert short.id == "x@gap0.4s" and long_.gap_s == 3.0


def test_zbb_pairs_and_a_scenario_run(tiny):
    pairs = zbb_pairs(1, gaps_s=(0.2, 1.0))
    assert [p.id for p in pairs] == ["penguins-true@gap0.2s", "penguins-true@gap1s"]
    assert "Penguins" in pairs[0].text
    # a short synthetic pair keeps the engine run quick
    rng = np.random.default_rng(0)
    ctx, utt = (0.2 * rng.standard_normal(9600)).astype(np.float32), (0.2 * rng.standard_normal(9600)).astype(np.float32)
    scen = build_pair(ctx, utt, "syn", gaps_s=(0.2, 1.0), lead_in_s=0.2, tail_s=0.8)
    report = run_scenarios(tiny, scen, batch_size=2, k=2, max_frames=10)
    assert [(x.item, x.onset, x.label) for x in report.inertias] == [(0, scen[0].onset, "syn@gap0.2s"),
                                                                    (1, scen[1].onset, "syn@gap1s")]
    assert {x.condition for x in report.inertias} <= {"listening", "speaking"}
    record = report.to_json()
    assert record["definition"]["k_consecutive"] == 2 and len(record["onsets"]) == 2


def test_onset_window_pads_outside_the_recording_with_nan():
    values = np.arange(20, dtype=np.float32).reshape(10, 2)  # [T=10, L=2]
    w = onset_window(values, 3, before=5, after=8)
    assert w.shape == (14, 2)
    assert np.isnan(w[:2]).all() and (w[2:12, 0] == values[:, 0]).all() and np.isnan(w[12:]).all()
    assert w[5, 1] == values[3, 1]  # column `before` is the onset frame


def test_scenario_runs_key_noise_per_pair_and_hand_each_onset_to_the_intervention(tiny):
    """Both members of a pair share a noise key; batching does not change a sampled run; the intervention
    gets each batch's onsets and its before_frame runs on every frame; windows are onset-aligned."""
    from contextlib import contextmanager

    rng = np.random.default_rng(1)
    ctx, utt = (0.2 * rng.standard_normal(9600)).astype(np.float32), (0.2 * rng.standard_normal(9600)).astype(np.float32)
    scen = build_pair(ctx, utt, "syn", gaps_s=(0.2, 1.0), lead_in_s=0.2, tail_s=0.8)
    assert scen[0].pair_id == scen[1].pair_id == "syn"
    assert scenario_noise_key(0, scen[0]) == scenario_noise_key(0, scen[1]) != scenario_noise_key(1, scen[0])
    seen: list = []

    @contextmanager
    def spy(onsets):
        seen.append(list(onsets))
        yield lambda session, frame: seen.append((frame, session.frame))

    together = run_scenarios(tiny, scen, batch_size=2, k=2, max_frames=10, seed=3, intervention=spy)
    assert seen[0] == [scen[0].onset, scen[1].onset]
    assert [f for f, _ in seen[1:]] == list(range(len(scen[1].wav) // FRAME_SAMPLES))
    alone = run_scenarios(tiny, scen, batch_size=1, k=2, max_frames=10, seed=3)
    np.testing.assert_allclose(together.windows.S_gen, alone.windows.S_gen, atol=1e-5)  # keyed: batch-independent
    w = together.windows
    assert w.S_gen.shape == (2, 36, tiny.num_layers) and list(w.offsets[[0, 5, -1]]) == [-5, 0, 30]
    res = together.results[0]
    np.testing.assert_array_equal(w.S_perc[1, 5], res.S_perc[1, scen[1].onset])
