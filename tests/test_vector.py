"""PerceptionVector: portable file (safetensors + JSON, no pickle), arithmetic, compatibility."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from duplex_steer.steering import PerceptionVector, VectorError


def _vec(seed=0, layers=(1, 2), size=64, meta=None):
    g = torch.Generator().manual_seed(seed)
    return PerceptionVector({k: torch.randn(size, generator=g) for k in layers}, meta or {"method": "test"})


def test_save_load_round_trip_with_metadata(tmp_path, tiny):
    v = _vec(meta={"method": "mean-difference", "model": tiny.fingerprint(), "thresholds": [0.1, 0.2]})
    path = v.save(tmp_path / "v.safetensors")
    back = PerceptionVector.load(path)
    assert back.layers == [1, 2]
    assert all(torch.equal(back[k], v[k]) for k in v.layers)
    assert back.meta["model"] == tiny.fingerprint() and back.meta["thresholds"] == [0.1, 0.2]
    with safe_open(str(path), "pt") as f:  # plain safetensors: readable by any tool
        assert set(f.keys()) == {"layer.1", "layer.2"}
        assert json.loads(f.metadata()["duplex_steer"])["format"].startswith("duplex-steer/")


def test_arithmetic_on_common_layers():
    a, b = _vec(0, (1, 2)), _vec(1, (2, 3))
    assert (a + b).layers == [2]
    assert torch.allclose((a - b)[2], a[2] - b[2])
    assert torch.allclose((2 * a)[1], 2 * a[1]) and torch.allclose((-a)[1], -a[1])
    assert abs(a.normalized()[1].norm().item() - 1.0) < 1e-6
    assert a.norms() == {1: float(a[1].norm()), 2: float(a[2].norm())}
    with pytest.raises(VectorError, match="no common layers"):
        _vec(0, (1,)) + _vec(0, (2,))


def test_incompatible_model_is_refused_clearly(tiny):
    with pytest.raises(VectorError, match="hidden size 128"):
        _vec(size=128).check_compatible(tiny)
    with pytest.raises(VectorError, match="do not exist"):
        _vec(layers=(7,)).check_compatible(tiny)
    other = dict(tiny.fingerprint(), num_layers=32)
    with pytest.raises(VectorError, match="num_layers"):
        _vec(meta={"model": other}).check_compatible(tiny)


def test_bad_files(tmp_path):
    with pytest.raises(VectorError, match="not found"):
        PerceptionVector.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 20)
    with pytest.raises(VectorError, match="not a safetensors"):
        PerceptionVector.load(junk)
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(VectorError, match="no duplex_steer metadata"):
        PerceptionVector.load(tmp_path / "plain.safetensors")


def test_random_like_keeps_each_layers_norm_and_draws_per_key_and_layer():
    v = _vec(layers=(1, 2))
    a, b = v.random_like(7), v.random_like(8)
    for layer in (1, 2):
        assert a[layer].norm().item() == pytest.approx(v[layer].norm().item(), rel=1e-5)
    assert torch.equal(a[2], v.random_like(7)[2])  # same key: the same direction
    assert not torch.allclose(a[2], b[2])  # another key: another direction
    assert abs(torch.nn.functional.cosine_similarity(a[2], b[2], dim=0)) < 0.5  # independent, not nearly equal
    # a layer's direction does not depend on which other layers the vector holds
    only_two = PerceptionVector({2: v[2]}, {})
    assert torch.equal(only_two.random_like(7)[2], a[2])
    assert a.meta["method"] == "random-direction-control" and a.meta["key"] == 7
