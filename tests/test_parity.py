"""Parity with the reference implementation (kyutai moshi 0.2.13) on the shared tiny fixtures."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from duplex_steer import load
from tests.conftest import fixture_dir

TOL = 1e-4
FIXTURES = ["kyutai-tiny-moshi", "kyutai-tiny-personaplex"]


@pytest.fixture(scope="module", params=FIXTURES)
def case(request):
    folder = fixture_dir(request.param)
    return load(folder, device="cpu", lm_only=True), load_file(str(folder / "reference.safetensors"))


def _capture(model):
    store: dict[int, list[torch.Tensor]] = {}
    handles = [layer.register_forward_hook(lambda m, a, out, i=i: store.setdefault(i, []).append(out.clone()))
               for i, layer in enumerate(model.layers)]
    return store, handles


def test_teacher_forced_layers_and_logits_match_reference(case):
    model, ref = case
    store, handles = _capture(model)
    try:
        out = model.forward_codes(ref["tf_codes"])
    finally:
        for h in handles:
            h.remove()
    for i in range(model.num_layers):
        assert (store[i][0] - ref[f"tf_layer{i}_output"]).abs().max() <= TOL, f"layer {i}"
    assert (out.text_logits - ref["tf_text_logits"][:, 0]).abs().max() <= TOL
    got, want = out.audio_logits, ref["tf_audio_logits"]
    assert got.shape == want.shape
    assert torch.equal(torch.isnan(got), torch.isnan(want)), "delay-undefined positions differ"
    valid = ~torch.isnan(want)
    assert (got[valid] - want[valid]).abs().max() <= TOL


def test_greedy_stream_matches_reference_token_for_token(case):
    model, ref = case
    store, handles = _capture(model)
    try:
        record = model.session(batch_size=1, greedy=True).run(ref["stream_user_codes"])
    finally:
        for h in handles:
            h.remove()
    got = torch.cat([record.text[:, None], record.audio], 1)
    assert torch.equal(got, ref["stream_outputs"])
    for i in range(model.num_layers):
        stream = torch.cat(store[i], 1)
        assert (stream - ref[f"stream_layer{i}_output"]).abs().max() <= TOL, f"layer {i}"


def test_stepping_equals_teacher_forcing_on_the_same_tokens(case):
    """Step frame by frame, then teacher-force the tokens the stream produced: same layer states."""
    model, ref = case
    user = ref["stream_user_codes"]
    store, handles = _capture(model)
    try:
        record = model.session(batch_size=1, greedy=True).run(user)
        T = user.shape[-1]
        # step t's input position holds the stream's frame t, which is teacher-forced codes index t - 1
        codes = torch.cat([record.text[:, None, 1:], record.audio[:, :, 1:], user[:, :, 1:]], 1)
        n_stream = {i: len(v) for i, v in store.items()}
        model.forward_codes(codes)
    finally:
        for h in handles:
            h.remove()
    for i in range(model.num_layers):
        stream = torch.cat(store[i][: n_stream[i]], 1)[:, : T - 1]
        forced = store[i][n_stream[i]]
        assert (stream - forced).abs().max() <= TOL, f"layer {i}"


def test_eager_attention_gives_the_same_states_as_sdpa(case):
    """transformers' eager attention adds its mask: the engine must hand it an additive one."""
    model, ref = case
    config = model.hf.config
    base = model.forward_codes(ref["tf_codes"])
    config._attn_implementation = "eager"
    try:
        eager = model.forward_codes(ref["tf_codes"])
    finally:
        config._attn_implementation = "sdpa"
    assert (eager.hidden - base.hidden).abs().max() <= TOL
