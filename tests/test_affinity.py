"""Affinities: exact arithmetic with lenses whose outputs are fixed in advance, then the real engine."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from duplex_steer.errors import DuplexSteerError
from duplex_steer.hooks import HookError, record
from duplex_steer.probes.affinity import AffinityError, OnlineAffinity, compute_affinities, default_band
from duplex_steer.probes.lenses import Lens, StepTokens, default_lenses

BASE = torch.tensor([0.5, 0.25, 0.125, 0.125])  # dyadic: every mean below is exact in float32


def rot(shift: int) -> torch.Tensor:
    return torch.roll(BASE, shift)


class TableLens(Lens):
    """Call number c, layer index l: the distribution rot(c + factor * l), the same for every batch item."""

    def __init__(self, name: str, stream: str, factor: int):
        self.name, self.stream, self.factor, self.calls = name, stream, factor, 0

    def __call__(self, model, h, layers, tokens):
        c, self.calls = self.calls, self.calls + 1
        return torch.stack([rot(c + self.factor * i) for i in range(len(layers))])[:, None].expand(-1, h.shape[1], -1)


def test_affinity_arithmetic_is_exact(tiny):
    """Which token is scored at which frame, the mean over streams, the band average, NaN at the end."""
    text = [2, 0, 3, 1]  # what step t sampled (text, model codebook 0)
    audio0 = [1, 1, 0, 2]
    fed = [3, 1, 0, 2]  # the user's codebook 0 each step feeds (frame 0's is not scored)
    lenses = [TableLens("A", "text", 1), TableLens("B", "model_cb0", 3)]
    perc = TableLens("P", "user_cb0", 2)
    aff = OnlineAffinity(tiny, [0, 1, 2, 3], gen_lenses=lenses, perc_lens=perc)
    h = torch.zeros(4, 1, tiny.hidden_size)
    for t in range(4):
        audio = torch.tensor([[audio0[t]] + [0] * 7])
        aff.update(h, StepTokens(torch.tensor([text[t]]), audio), torch.tensor([fed[t]]))
    S_gen, S_perc, comps = aff.arrays()
    assert S_gen.shape == S_perc.shape == (1, 4, 4)
    for t in range(4):
        for i in range(4):
            a, b = rot(t + i)[text[t]], rot(t + 3 * i)[audio0[t]]
            assert comps["A"][0, t, i] == a and comps["B"][0, t, i] == b
            assert S_gen[0, t, i] == (a + b) / 2
            if t < 3:
                assert S_perc[0, t, i] == rot(t + 2 * i)[fed[t + 1]]  # the NEXT frame's user token
    assert np.isnan(S_perc[0, 3]).all()
    # spelled out: frame 0, layer 0: text 2 under [.5,.25,.125,.125] and codebook 1 under the same
    assert S_gen[0, 0, 0] == (0.125 + 0.25) / 2 and S_perc[0, 0, 0] == 0.25
    # frame 1, layer 2: text lens rot(3) = [.25,.125,.125,.5] at 0; audio lens rot(7) = rot(3) at 1
    assert S_gen[0, 1, 2] == (0.25 + 0.125) / 2

    from duplex_steer.probes.affinity import AffinityResult

    res = AffinityResult(S_gen, S_perc, [0, 1, 2, 3], (1, 2), None, [[]], "x", True)
    np.testing.assert_array_equal(res.band_gen, S_gen[..., 1:3].mean(-1))
    assert res.band_perc[0, 2] == (S_perc[0, 2, 1] + S_perc[0, 2, 2]) / 2 and np.isnan(res.band_perc[0, 3])
    record_ = res.to_json()
    assert record_["S_perc"][3] == [None] * 4 and record_["S_gen"][0][0] == pytest.approx(0.1875)
    json.dumps(record_, allow_nan=False)


class IndexLens(Lens):
    """p[v] = (v + 1) / Z: the probability reveals which token was scored."""

    def __init__(self, stream: str, vocab: int):
        self.stream, self.name, self.vocab = stream, f"index-{stream}", vocab

    def __call__(self, model, h, layers, tokens):
        p = torch.arange(1, self.vocab + 1, dtype=torch.float64) / (self.vocab * (self.vocab + 1) / 2)
        return p.expand(len(layers), h.shape[1], -1)


@pytest.mark.parametrize("name", ["tiny", "tiny_personaplex"])
def test_scored_tokens_are_the_sampled_text_and_the_next_user_code(name, request):
    model = request.getfixturevalue(name)
    T, B = 7, 2
    user = torch.randint(0, model.spec.card, (B, 8, T), generator=torch.Generator().manual_seed(4))
    sess = model.session(batch_size=B, greedy=True)
    texts = []
    with OnlineAffinity(model, [1, 3], [IndexLens("text", model.spec.text_card)],
                        IndexLens("user_cb0", model.spec.card)) as aff:
        for t in range(T):
            sess.step(user[:, :, t])
            texts.append(sess.last_sampled_text.clone())
            aff.on_frame(sess, t)
    S_gen, S_perc, _ = aff.arrays()
    zt, zu = model.spec.text_card * (model.spec.text_card + 1) / 2, model.spec.card * (model.spec.card + 1) / 2
    got_text = np.rint(S_gen * zt - 1).astype(int)
    got_user = np.rint(S_perc[:, :-1] * zu - 1).astype(int)
    for layer in range(2):
        np.testing.assert_array_equal(got_text[..., layer], torch.stack(texts, 1).numpy())
        np.testing.assert_array_equal(got_user[..., layer], user[:, 0, 1:].numpy())
    assert np.isnan(S_perc[:, -1]).all()
    assert all(not layer._forward_hooks for layer in model.layers)
    assert not model.hf.embed_tokens[8]._forward_hooks


def test_online_equals_offline_with_default_lenses(tiny_personaplex):
    model = tiny_personaplex
    T, layers = 6, [0, 2, 3]
    user = torch.randint(0, model.spec.card, (1, 8, T), generator=torch.Generator().manual_seed(2))
    sess, tokens = model.session(greedy=True), []
    with OnlineAffinity(model, layers) as aff, record(model, layers) as rec:
        for t in range(T):
            sess.step(user[:, :, t])
            tokens.append(StepTokens(sess.last_sampled_text.clone(), sess.last_sampled_audio.clone()))
            aff.on_frame(sess, t)
            assert not aff._sink.states  # the frame's states are dropped once scored
    S_gen, S_perc, _ = aff.arrays()
    gen, perc = default_lenses(model)
    for t in range(T):
        h = torch.stack([rec.stacked(layer)[:, t] for layer in layers])
        g = [lens(model, h, layers, tokens[t]).gather(-1, tokens[t].target(lens.stream).view(1, 1, 1).expand(3, 1, 1))
             for lens in gen]
        np.testing.assert_allclose(S_gen[0, t], torch.cat(g, -1).mean(-1)[:, 0].numpy(), rtol=1e-5)
        if t < T - 1:
            p = perc(model, h, layers, tokens[t])[:, 0, user[0, 0, t + 1]]
            np.testing.assert_allclose(S_perc[0, t], p.numpy(), rtol=1e-5)


@pytest.mark.parametrize("name", ["tiny", "tiny_personaplex"])
def test_compute_affinities_on_a_batch(name, request):
    model = request.getfixturevalue(name)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(24000)).astype(np.float32), np.zeros(16000, np.float32)]
    waves[1][4000:12000] = 0.2 * np.sin(np.arange(8000) / 5)
    res, conv = compute_affinities(model, waves, turns=[None, [(0.2, 0.5)]])
    T = conv.user_codes.shape[-1]
    assert res.S_gen.shape == res.S_perc.shape == (2, T, model.num_layers)
    assert np.isfinite(res.S_gen).all() and ((res.S_gen >= 0) & (res.S_gen <= 1)).all()
    assert np.isnan(res.S_perc[:, -1]).all() and np.isfinite(res.S_perc[:, :-1]).all()
    assert res.band == default_band(model.num_layers) == (1, 3)
    assert res.onsets[1] == [2] and res.activity.user[1, 2:7].all() and not res.activity.user[1, 7:].any()
    assert res.activity.model.shape == (2, T)
    rec = res.to_json(1)
    assert rec["note"] and rec["frames"] == T and len(rec["S_gen"][0]) == model.num_layers
    json.dumps(rec, allow_nan=False)
    assert all(math.isfinite(x) for x in res.band_gen[0])


def test_bad_requests_are_clear_errors(tiny):
    wav = np.full(8000, 0.1, np.float32)
    with pytest.raises(HookError, match="out of range"):
        compute_affinities(tiny, wav, layers=[7])
    with pytest.raises(AffinityError, match="band"):
        compute_affinities(tiny, wav, band=(2, 9))
    with pytest.raises(AffinityError, match="band 0..0"):
        compute_affinities(tiny, wav, layers=[2, 3], band=(0, 0))
    with pytest.raises(AffinityError, match="user's codebook 0"):
        OnlineAffinity(tiny, None, perc_lens="text")
    with pytest.raises(DuplexSteerError, match="NaN"):
        compute_affinities(tiny, np.full(4000, np.nan, np.float32))


def test_a_fast_session_gives_the_eager_affinities(tiny):
    """The fast step runs no hooks: OnlineAffinity reads its captured layers and the user code it fed."""
    from duplex_steer.engine.fast_step import FastStep
    from duplex_steer.engine.session import sample_token

    T, B, layers = 7, 2, [1, 3]
    user = torch.randint(0, tiny.spec.card, (B, 8, T), generator=torch.Generator().manual_seed(6))
    results = []
    for fast in (False, True):
        sess = tiny.session(batch_size=B, seed=1, fast=fast)
        if fast:  # the static step without torch.compile (quick); compiled, it computes the same
            sess.fast_step = FastStep(tiny, B, tiny.spec.context, sample_token, sess.sampling, compile=False)
        with OnlineAffinity(tiny, layers, session=sess) as aff:
            for t in range(T):
                sess.step(user[:, :, t])
                aff.on_frame(sess, t)
        results.append(aff.arrays())
    (eager_gen, eager_perc, _), (fast_gen, fast_perc, _) = results
    np.testing.assert_allclose(fast_gen, eager_gen, rtol=1e-5)
    np.testing.assert_allclose(fast_perc, eager_perc, rtol=1e-5)
    assert np.isfinite(fast_perc[:, :-1]).all()
