"""Learned linear probes: training on recorded states, accuracy vs baseline, safetensors+JSON, fingerprints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from duplex_steer.probes.affinity import compute_affinities
from duplex_steer.probes.linear import (
    LinearProbe,
    ProbeData,
    ProbeError,
    ProbeLens,
    collect_probe_data,
    train_probe,
    train_probes,
)


def _synthetic(n: int = 600, dim: int = 16, classes: int = 5, seed: int = 0) -> ProbeData:
    """Tokens that a linear map recovers from noisy states; 4 'recordings'."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=gen)
    means = 3 * torch.randn(classes, dim, generator=gen)
    X = means[y] + torch.randn(n, dim, generator=gen) + 5.0  # an offset: probes must read raw states
    groups = torch.arange(n) // (n // 4)
    return ProbeData({2: X}, {"user_cb0": y, "text": y}, groups, {"checkpoint": "synthetic"})


def test_training_beats_the_majority_baseline_and_is_seeded():
    data = _synthetic()
    a = train_probe(data, 2, "user_cb0", 5, epochs=3, seed=1)
    b = train_probe(data, 2, "user_cb0", 5, epochs=3, seed=1)
    assert torch.equal(a.weight, b.weight)
    m = a.metrics
    assert m["n_train"] == 450 and m["n_heldout"] == 150  # the last of 4 recordings is held out
    assert m["heldout_accuracy"] > 0.9 > m["baseline_accuracy"]
    assert 0.1 < m["baseline_accuracy"] < 0.4
    with pytest.raises(ProbeError, match="unknown probe target"):
        train_probe(data, 2, "model_cb3", 5)
    with pytest.raises(ProbeError, match="layer 1 was not recorded"):
        train_probe(data, 1, "text", 5)


def test_save_load_and_fingerprint_mismatch(tmp_path, tiny, tiny_personaplex):
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(12000)).astype(np.float32) for _ in range(3)]
    data = collect_probe_data(tiny, waves, layers=[1, 3])
    assert data.states[1].shape == (3 * 6, 64) and data.targets["text"].shape == (18,)
    assert data.groups.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    probes = train_probes(tiny, waves, layers=[1], epochs=1)
    assert [(p.layer, p.target) for p in probes] == [(1, "user_cb0"), (1, "text")]
    probe = probes[1]
    assert probe.weight.shape == (tiny.spec.text_card, 64)
    weights, meta = probe.save(tmp_path / "probe_l1_text")
    assert weights.suffix == ".safetensors" and meta.suffix == ".json"
    info = json.loads(meta.read_text())
    for key in ("layer", "target", "fingerprint", "n_train", "n_heldout", "heldout_accuracy", "baseline_accuracy"):
        assert key in info
    back = LinearProbe.load(tmp_path / "probe_l1_text", model=tiny)
    assert torch.equal(back.weight, probe.weight) and back.metrics == probe.metrics
    with pytest.raises(ProbeError, match="trained on .*preset:tiny:seed0.* but the model is"):
        LinearProbe.load(tmp_path / "probe_l1_text", model=tiny_personaplex)
    with pytest.raises(ProbeError, match="not found"):
        LinearProbe.load(tmp_path / "missing")


def test_probe_lens_in_the_affinities(tiny):
    gen = torch.Generator().manual_seed(0)
    probes = [LinearProbe(layer, "user_cb0", torch.randn(64, 64, generator=gen), torch.zeros(64), tiny.fingerprint())
              for layer in (1, 2)]
    wav = (0.1 * np.random.default_rng(1).standard_normal(8000)).astype(np.float32)
    res, _ = compute_affinities(tiny, wav, layers=[1, 2], band=(1, 2), perc_lens=ProbeLens(probes))
    assert res.lenses["perc"] == "probe-user_cb0" and np.isfinite(res.S_perc[0, :-1]).all()
    with pytest.raises(ProbeError, match="no probe for layers"):
        compute_affinities(tiny, wav, layers=[3], perc_lens=ProbeLens(probes))
    other = dict(tiny.fingerprint(), checkpoint="elsewhere")
    with pytest.raises(ProbeError, match="elsewhere"):
        ProbeLens([LinearProbe(1, "text", torch.zeros(100, 64), torch.zeros(100), other)]).check(tiny)
