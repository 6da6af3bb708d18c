"""One definition of the steering settings a model runs with: the organism's own, the paper's scaled to depth."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from duplex_steer.steering import PerceptionVector
from duplex_steer.steering.defaults import (
    SteeringArgError,
    check_steering_args,
    default_steering,
    default_steering_layer,
    resolve_steering,
)


def _model(num_layers: int, own: dict | None = None):
    return SimpleNamespace(num_layers=num_layers, steering_defaults=own)


def test_defaults_the_organism_its_own_a_32_layer_model_the_papers():
    from duplex_steer import load

    assert default_steering(load("organism")) == {"layer": 5, "alpha": 1.0, "span": 3}
    assert default_steering(_model(32)) == {"layer": 23, "alpha": 5.5, "span": 3}
    assert default_steering(load("tiny")) == {"layer": 3, "alpha": 5.5, "span": 3}  # 4 layers: round(23/32 x 4)
    assert [default_steering_layer(n) for n in (1, 4, 6, 32, 40)] == [0, 3, 4, 23, 29]


def test_resolve_records_where_each_value_came_from():
    vec = PerceptionVector({2: torch.ones(8), 5: torch.ones(8)})
    s = resolve_steering(_model(6, {"layer": 2, "alpha": 1.0, "span": 3}), vec, alpha=2.0)
    assert s.to_json() == {"layer": 2, "alpha": 2.0, "span": 3,
                           "from": {"layer": "the model's default", "alpha": "--alpha", "span": "the model's default"}}
    other = resolve_steering(_model(32), PerceptionVector({7: torch.ones(8)}))  # the default 23 is not in it
    assert other.layer == 7 and other.sources["layer"].startswith("the vector's first layer")
    with pytest.raises(SteeringArgError, match=r"--layer 6: the model has 6 layers \(0..5\)"):
        resolve_steering(_model(6), vec, layer=6)
    with pytest.raises(SteeringArgError, match="--span 0"):
        resolve_steering(_model(6), vec, span=0)


def test_checks_before_loading(tmp_path):
    with pytest.raises(SteeringArgError, match="--alpha -0.5 is negative"):
        check_steering_args(None, alpha=-0.5)
    assert check_steering_args(None, alpha=-0.5, allow_negative_alpha=True) is None
    path = PerceptionVector({1: torch.ones(8)}, {"model": {"num_layers": 4}}).save(tmp_path / "v.safetensors")
    assert check_steering_args(path, layer=1).layers == [1]
    with pytest.raises(SteeringArgError, match="fitted on has 4 layers"):
        check_steering_args(path, layer=4)
