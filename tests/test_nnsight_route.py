"""The nnsight route (examples/nnsight_route.py) captures exactly what our `record` hooks capture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from duplex_steer.hooks import record
from tests.conftest import load_file_module

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nnsight_route.py"


@pytest.fixture(scope="module")
def route():
    return load_file_module(EXAMPLE, "nnsight_route")  # nnsight reads trace bodies from this file's source


@pytest.mark.parametrize("name", ["tiny", "tiny_personaplex"])
def test_nnsight_and_record_capture_the_same_tensors(name, request, route):
    model = request.getfixturevalue(name)
    gen = torch.Generator().manual_seed(0)
    T, layers = 6, [0, 3]
    codes = torch.randint(0, model.spec.card, (2, 17, T), generator=gen)
    codes[:, 0] = torch.randint(0, model.spec.text_card, (2, T), generator=gen)
    user = torch.randint(0, model.spec.card, (2, 8, T), generator=gen)

    tf = route.teacher_forced_outputs(model, codes, layers)
    st = route.streaming_outputs(model, user, layers)
    with record(model, layers) as rec_tf:
        model.forward_codes(codes)
    with record(model, layers) as rec_st:
        model.session(batch_size=2, greedy=True).run(user)
    for layer in layers:
        assert torch.equal(tf[layer], rec_tf.stacked(layer))
        assert st[layer].shape == (2, T, model.hidden_size)
        assert torch.equal(st[layer], rec_st.stacked(layer))
    assert all(not layer._forward_hooks for layer in model.layers)  # nnsight leaves nothing behind


def test_example_main_runs(route, capsys, tmp_path):
    route.main(["--frames", "4", "--layers", "2", "--out", str(tmp_path / "s.safetensors")])
    out = capsys.readouterr().out
    assert "identical to record(): True" in out and "identical: True" in out and "pipeline check" in out
    assert (tmp_path / "s.safetensors").is_file()
