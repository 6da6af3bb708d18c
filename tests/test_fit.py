"""Perception-vector fitting: running means equal batch means, labels, report, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from duplex_steer.hooks import record
from duplex_steer.steering.defaults import FRAME_SPLITS
from duplex_steer.steering.fit import (
    ActivityLabeler,
    AffinityLabeler,
    FitError,
    auc,
    fit_perception_vector,
    make_labeler,
)


class _Dialogue:
    def __init__(self, seconds: float, speak: list[tuple[int, int]], seed: int):
        rng = np.random.default_rng(seed)
        n = int(seconds * 12.5)
        self._speaking = np.zeros(n, bool)
        for a, b in speak:
            self._speaking[a:b] = True
        self._audio = rng.normal(0, 0.05, n * 1920).astype(np.float32)

    def audio(self):
        return self._audio

    def user_speaking(self):
        return self._speaking


def test_vector_is_the_difference_of_class_means(tiny):
    dialogues = [_Dialogue(1.6, [(3, 9)], 0), _Dialogue(1.6, [(10, 16)], 1), _Dialogue(1.6, [(2, 6)], 2)]
    labeler = ActivityLabeler(require_model_silence=False)
    vec, report = fit_perception_vector(tiny, dialogues, [2], labeler, heldout_fraction=0.34, batch_size=2,
                                        greedy=True)
    # recompute by hand from recorded states of the two training dialogues
    from duplex_steer import converse

    with record(tiny, [2]) as rec:
        converse(tiny, [(d.audio(), 24_000) for d in dialogues[:2]], greedy=True, decode_audio=False)
    states = rec.stacked(2)  # [2, T, 64]
    user = np.stack([d.user_speaking() for d in dialogues[:2]])
    perc = states[torch.from_numpy(user)]
    gen = states[torch.from_numpy(~user)]
    assert torch.allclose(vec[2], perc.mean(0) - gen.mean(0), atol=1e-5)
    assert report.counts["perceptive"] == int(user.sum()) and report.counts["generative"] == int((~user).sum())
    assert report.counts["heldout_perceptive"] == 4
    assert vec.meta["model"] == tiny.fingerprint() and vec.meta["pipeline_check_only"] is True


def test_strict_split_on_a_model_that_never_stops_talking_says_what_to_do(tiny):
    dialogues = [_Dialogue(0.8, [(2, 5)], 0), _Dialogue(0.8, [(2, 5)], 1)]
    labeler = ActivityLabeler(require_model_silence=True, hold=50)
    with pytest.raises(FitError, match="user-activity"):
        fit_perception_vector(tiny, dialogues, [1], labeler, greedy=True)


def test_auc():
    assert auc(np.array([2.0, 3.0]), np.array([0.0, 1.0])) == 1.0
    assert auc(np.array([0.0]), np.array([0.0])) == 0.5
    assert auc(np.array([0.0, 1.0]), np.array([2.0, 3.0])) == 0.0


def test_affinity_split_labels_frames_by_band_affinities(tiny):
    """The paper's split: labels are thresholds on z-scored band affinities of the same run."""
    from duplex_steer.probes.affinity import compute_affinities
    from duplex_steer.steering.fit import AffinityLabeler

    dialogues = [_Dialogue(1.2, [(3, 9)], 0), _Dialogue(1.2, [(5, 12)], 1), _Dialogue(1.2, [(2, 6)], 2)]
    labeler = AffinityLabeler(greedy=True, margin=0.5)
    vec, report = fit_perception_vector(tiny, dialogues, [2], labeler, heldout_fraction=0.34, batch_size=2,
                                        greedy=True)
    aff, _ = compute_affinities(tiny, [(d.audio(), 24_000) for d in dialogues[:2]], greedy=True)
    diff = labeler.zscore(aff.band_perc) - labeler.zscore(aff.band_gen)
    assert report.counts["perceptive"] == int((diff > 0.5).sum()) > 0
    assert report.counts["generative"] == int((diff < -0.5).sum()) > 0
    with record(tiny, [2]) as rec:
        from duplex_steer import converse

        converse(tiny, [(d.audio(), 24_000) for d in dialogues[:2]], greedy=True, decode_audio=False)
    states = rec.stacked(2)
    perc = states[torch.from_numpy(diff > 0.5)]
    gen = states[torch.from_numpy(diff < -0.5)]
    assert torch.allclose(vec[2], perc.mean(0) - gen.mean(0), atol=1e-5)


def test_the_vector_does_not_depend_on_the_batch_size(tiny):
    """Sampled, with dialogues of different lengths: each dialogue's noise is keyed to its place and the
    silence padding after a shorter dialogue's end is not labelled, so batches of 1 and of 3 fit the same
    vector from the same frames (`fit-vector --batch-size` and `zbb main`'s fit agree)."""
    dialogues = [_Dialogue(1.6, [(3, 9)], 0), _Dialogue(0.8, [(2, 6)], 1), _Dialogue(1.2, [(4, 12)], 2),
                 _Dialogue(0.8, [(1, 5)], 3)]
    labeler = ActivityLabeler(require_model_silence=False)
    one, one_report = fit_perception_vector(tiny, dialogues, [1, 2], labeler, heldout_fraction=0.25, batch_size=1)
    three, three_report = fit_perception_vector(tiny, dialogues, [1, 2], labeler, heldout_fraction=0.25,
                                                batch_size=3)
    lengths = [len(d.user_speaking()) for d in dialogues[:3]]
    assert one_report.counts == three_report.counts
    assert one_report.counts["perceptive"] + one_report.counts["generative"] == sum(lengths)
    for layer in (1, 2):
        assert torch.allclose(one[layer], three[layer], atol=1e-5)
    changed, _ = fit_perception_vector(tiny, dialogues, [1], labeler, heldout_fraction=0.25, batch_size=3, seed=1)
    assert not torch.allclose(changed[1], three[1], atol=1e-3)  # the seed does reach the sampling


def test_each_frame_split_names_its_labeler_and_an_unknown_one_is_refused() -> None:
    assert FRAME_SPLITS[0] == "activity"  # the default of fit-vector --split and make_labeler
    activity, user_activity = make_labeler("activity"), make_labeler("user-activity")
    assert isinstance(activity, ActivityLabeler) and activity.require_model_silence
    assert isinstance(user_activity, ActivityLabeler) and not user_activity.require_model_silence
    affinity = make_labeler("affinity", margin=0.8)
    assert isinstance(affinity, AffinityLabeler) and affinity.margin == 0.8
    with pytest.raises(FitError, match="unknown frame split 'energy'"):
        make_labeler("energy")
