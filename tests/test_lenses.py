"""Lenses on the tiny random models: at the last layer they reproduce the model's own heads."""

from __future__ import annotations

import pytest
import torch

from duplex_steer.hooks import record
from duplex_steer.probes.lenses import (
    DepformerLens,
    EmbeddingLens,
    LensError,
    StepTokens,
    TextLens,
    default_lenses,
    get_lens,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend
    yield
    torch.set_num_threads(n)


def _step(model, frames: int = 5, batch: int = 2):
    """A few greedy steps; returns (session, raw outputs [L, B, dim] of every layer at the last frame)."""
    gen = torch.Generator().manual_seed(1)
    user = torch.randint(0, model.spec.card, (batch, 8, frames), generator=gen)
    sess = model.session(batch_size=batch, greedy=True)
    layers = list(range(model.num_layers))
    with record(model, layers, frames=lambda t: t == frames - 1) as rec:
        sess.run(user)
    return sess, torch.stack([rec.stacked(layer)[:, 0] for layer in layers]), layers


@pytest.mark.parametrize("name", ["tiny", "tiny_personaplex"])
def test_last_layer_text_and_depformer_lenses_equal_the_model_heads(name, request):
    model = request.getfixturevalue(name)
    sess, h, layers = _step(model)
    tokens = StepTokens.from_session(sess)
    text = TextLens()(model, h, layers, tokens)
    assert text.shape == (model.num_layers, 2, model.spec.text_card)
    torch.testing.assert_close(text[-1], torch.softmax(sess.last_text_logits, -1))
    dep = DepformerLens("model_cb0")(model, h, layers, tokens)
    own = model.depth_step(0, sess.last_hidden, tokens.text, [[] for _ in range(model.spec.depformer_num_layers)])
    torch.testing.assert_close(dep[-1], torch.softmax(own, -1))
    assert torch.allclose(dep.sum(-1), torch.ones(())) and dep.shape[-1] == model.spec.card


def test_user_depformer_lens_is_teacher_forced_step_8(tiny_personaplex):
    model = tiny_personaplex
    sess, h, layers = _step(model)
    tokens = StepTokens.from_session(sess)
    probs = DepformerLens("user_cb0")(model, h, layers, tokens)
    inputs = torch.cat([tokens.text[:, None], tokens.audio], 1)  # text, model codebooks 0..7
    ref = model.depth_logits(model.final_norm(h[2]), inputs, num_codebooks=9)[:, 8]
    torch.testing.assert_close(probs[2], torch.softmax(ref, -1))


def test_user_depformer_lens_needs_user_heads(tiny):
    with pytest.raises(LensError, match="no user heads"):
        DepformerLens("user_cb0").check(tiny)
    gen, perc = default_lenses(tiny)
    assert [g.name for g in gen] == ["text", "depformer-model"] and perc.name == "embedding-user"


def test_embedding_lens_drops_the_initial_token_row(tiny_personaplex):
    model = tiny_personaplex
    sess, h, layers = _step(model)
    for stream, index in (("user_cb0", 8), ("model_cb0", 0)):
        probs = EmbeddingLens(stream)(model, h, layers, StepTokens.from_session(sess))
        assert probs.shape == (model.num_layers, 2, model.spec.card)  # card, not card + 1
        E = model.hf.embed_tokens[index].weight[: model.spec.card]
        torch.testing.assert_close(probs[1], torch.softmax(model.final_norm(h[1]) @ E.T, -1))
    assert default_lenses(model)[1].name == "depformer-user"


def test_lens_names_and_errors():
    assert get_lens("embedding-user").stream == "user_cb0"
    assert get_lens("depformer-model").name == "depformer-model"
    with pytest.raises(LensError, match="unknown lens"):
        get_lens("nope")
    with pytest.raises(LensError):
        DepformerLens("text")
    with pytest.raises(LensError, match="samples no token"):
        StepTokens(torch.zeros(1), torch.zeros(1, 8)).target("user_cb0")


def test_option_names_match_the_lenses():
    """The torch-free names the CLI offers (probes.options) are exactly the lenses there are."""
    from duplex_steer.probes.lenses import LENSES
    from duplex_steer.probes.options import GENERATION_LENSES, PERCEPTION_LENSES

    assert sorted(GENERATION_LENSES + PERCEPTION_LENSES) == sorted(LENSES)
    assert all(name.endswith("user") for name in PERCEPTION_LENSES)
