"""The engine's own modules compute what transformers' Moshi modules compute, on the same weights, exactly.

`DuplexModel` runs on either tree (same routes and names): the comparison is the whole model (teacher-
forced logits and states, eager and SDPA attention, a streamed greedy conversation), not one layer.
"""

from __future__ import annotations

import pytest
import torch

from duplex_steer import load
from duplex_steer.engine.build import build_empty_modules, build_random_modules
from duplex_steer.engine.kv_cache import FrameKVCache
from duplex_steer.engine.model import DuplexModel
from duplex_steer.engine.modules import MoshiModules, from_transformers, to_transformers
from duplex_steer.engine.spec import PRESETS


def _twins(name: str) -> tuple[DuplexModel, DuplexModel]:
    """A preset on the engine's modules and the same tensors in transformers' `MoshiForConditionalGeneration`."""
    ours = load(name, device="cpu")
    theirs = to_transformers(ours.hf, ours.spec)
    assert type(theirs).__name__ == "MoshiForConditionalGeneration"
    twin = DuplexModel(theirs, ours.spec, ours.codec, ours.tokenizer, source=name, is_random=True)
    return ours, twin


@pytest.fixture(scope="module", params=["tiny", "tiny-personaplex"])
def twins(request):
    return _twins(request.param)


def test_state_dict_names_and_shapes_are_transformers(twins):
    ours, twin = twins
    a, b = ours.hf.state_dict(), twin.hf.state_dict()
    assert set(a) == set(b)
    for name, value in a.items():
        assert value.shape == b[name].shape and value.dtype == b[name].dtype, name
        assert value.data_ptr() == b[name].data_ptr(), f"{name} was copied, not shared"


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_teacher_forced_outputs_are_identical(twins, attention):
    ours, twin = twins
    codes = torch.randint(0, ours.spec.card, (2, 17, 12), generator=torch.Generator().manual_seed(1))
    codes[:, 0] = codes[:, 0] % ours.spec.text_card
    for model in (ours, twin):
        model.hf.config._attn_implementation = attention
    try:
        a, b = ours.forward_codes(codes), twin.forward_codes(codes)
    finally:
        for model in (ours, twin):
            model.hf.config._attn_implementation = "sdpa"
    assert torch.equal(a.hidden, b.hidden)
    assert torch.equal(a.text_logits, b.text_logits)
    assert torch.equal(a.audio_logits.nan_to_num(), b.audio_logits.nan_to_num())


def test_eager_attention_returns_the_same_weights(twins):
    ours, twin = twins
    x = torch.randn(1, 6, ours.spec.dim, generator=torch.Generator().manual_seed(2))
    pos = torch.arange(6).view(1, -1)
    mask = torch.zeros(1, 1, 6, 6).masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), torch.finfo(x.dtype).min)
    ours.hf.config._attn_implementation = twin.hf.config._attn_implementation = "eager"
    try:
        out_a, w_a = ours.layers[1].self_attn(x, attention_mask=mask, position_ids=pos)
        out_b, w_b = twin.layers[1].self_attn(x, attention_mask=mask, position_ids=pos)
    finally:
        ours.hf.config._attn_implementation = twin.hf.config._attn_implementation = "sdpa"
    assert torch.equal(out_a, out_b) and torch.equal(w_a, w_b)


def test_a_streamed_layer_through_the_kv_cache_is_identical(twins):
    ours, twin = twins
    x = torch.randn(3, 9, ours.spec.dim, generator=torch.Generator().manual_seed(3))
    caches = [FrameKVCache(ours.num_layers, context=4, max_frames=9) for _ in range(2)]
    for t in range(9):
        for cache in caches:
            cache.position = t
        pos = torch.full((1, 1), t)
        a = ours.layers[0](x[:, t : t + 1], position_ids=pos, past_key_values=caches[0])
        b = twin.layers[0](x[:, t : t + 1], position_ids=pos, past_key_values=caches[1])
        assert torch.equal(a, b), f"frame {t}"


def test_a_greedy_conversation_gives_the_same_tokens(twins):
    ours, twin = twins
    user = torch.randint(0, ours.spec.card, (2, ours.spec.num_audio_codebooks, 10),
                         generator=torch.Generator().manual_seed(4))
    runs = [model.session(batch_size=2, greedy=True).run(user) for model in (ours, twin)]
    assert (runs[0].text[:, 1:] >= 0).all()
    assert torch.equal(runs[0].text, runs[1].text) and torch.equal(runs[0].audio, runs[1].audio)


def test_from_transformers_shares_the_tensors_back():
    ours, twin = _twins("tiny")
    again = from_transformers(twin.hf, ours.spec)
    assert isinstance(again, MoshiModules) and again.audio_encoder is twin.hf.audio_encoder
    for name, value in again.state_dict().items():
        assert value.data_ptr() == ours.hf.state_dict()[name].data_ptr(), name


def test_random_modules_are_seeded_and_fully_initialised():
    spec = PRESETS["tiny"]
    a, b = (build_random_modules(spec, 5, torch.device("cpu"), torch.float32) for _ in range(2))
    c = build_random_modules(spec, 6, torch.device("cpu"), torch.float32)
    for (name, p), q, r in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True):
        assert torch.equal(p, q) and torch.isfinite(p).all(), name
        if p.dim() >= 2:
            assert not torch.equal(p, r), name
            assert abs(float(p.float().std()) - p.shape[-1] ** -0.5) < 0.5 * p.shape[-1] ** -0.5, name
        else:
            assert torch.equal(p, torch.ones_like(p)), name


def test_modules_in_bfloat16_keep_float32_rope_tables():
    modules = build_random_modules(PRESETS["tiny"], 0, torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for p in modules.parameters()} == {torch.bfloat16}
    inv_freq = modules.decoder.model.layers[0].self_attn.rotary_emb.inv_freq
    head_dim = PRESETS["tiny"].dim // PRESETS["tiny"].num_heads
    expected = 1.0 / (PRESETS["tiny"].max_period ** (torch.arange(0, head_dim, 2).float() / head_dim))
    assert inv_freq.dtype == torch.float32 and torch.equal(inv_freq, expected)
    assert all(t.is_meta for t in build_empty_modules(PRESETS["tiny"]).state_dict().values())
