"""`DuplexModel`'s teacher-forced depformer: all steps at once equal the streamed steps, values and gradients."""

from __future__ import annotations

import pytest
import torch

import duplex_steer as ds
from duplex_steer.engine.model import DuplexModel


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(model: DuplexModel, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    normed = torch.randn(n, model.spec.dim, generator=g)
    tokens = [torch.randint(0, model.spec.text_card, (n,), generator=g)]
    tokens += [torch.randint(0, model.spec.card, (n,), generator=g) for _ in range(model.spec.dep_q - 1)]
    return normed, torch.stack(tokens, 1)


def _streamed(model: DuplexModel, normed: torch.Tensor, inputs: torch.Tensor, k_max: int) -> torch.Tensor:
    kv: list[list[torch.Tensor]] = [[] for _ in range(model.spec.depformer_num_layers)]
    return torch.stack([model.depth_step(k, normed, inputs[:, k], kv) for k in range(k_max)], 1)


@pytest.mark.parametrize("name", ["tiny", "tiny-personaplex", "organism"])
def test_depth_logits_equal_the_streamed_depformer_steps(name: str) -> None:
    model = ds.load(name, device="cpu")
    normed, inputs = _inputs(model, 37)
    with torch.no_grad():
        for k_max in (model.spec.dep_q, 3):  # every step, and the first few (`num_codebooks`, as lenses ask)
            together = model.depth_logits(normed, inputs, num_codebooks=k_max)
            streamed = _streamed(model, normed, inputs, k_max)
            assert together.shape == streamed.shape == (37, k_max, model.spec.card)
            torch.testing.assert_close(together, streamed, rtol=1e-5, atol=1e-5 * streamed.abs().max().item())


def test_depth_logits_gradients_equal_the_streamed_ones() -> None:
    """Training backpropagates through `depth_logits`: same gradients for every depformer weight."""
    model = ds.load("tiny-personaplex", device="cpu")
    params = list(model.hf.depth_decoder.parameters())
    normed, inputs = _inputs(model, 23, seed=1)
    target = torch.randint(0, model.spec.card, (23, model.spec.dep_q), generator=torch.Generator().manual_seed(2))
    grads = []
    for run in (model.depth_logits, lambda n, i: _streamed(model, n, i, model.spec.dep_q)):
        for p in params:
            p.requires_grad_(True)
            p.grad = None
        model.forget_fused_weights()
        x = normed.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(run(x, inputs).flatten(0, 1), target.flatten())
        loss.backward()
        grads.append([x.grad] + [p.grad.clone() for p in params])
    for p in params:
        p.requires_grad_(False)
    model.forget_fused_weights()
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
