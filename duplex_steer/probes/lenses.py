"""Lenses: read a layer's residual state as a distribution over the next token of one stream.

A lens maps raw layer outputs h [L, B, dim] (one state per chosen layer and batch item, all from the
same frame) to probabilities [L, B, V]. Three kinds:

- `TextLens`: softmax(text_logits(final_norm(h))), the logit lens on the text stream.
- `DepformerLens`: the model's own depformer run on final_norm(h), teacher-forced with the tokens the
  step sampled. Codebook 0 of the model's audio is depformer step 0 (previous token = the text token);
  PersonaPlex (dep_q = 16) also predicts the user's codebook 0 at step 8, after steps 0..7 fed the
  text and the model's codebooks 0..7.
- `EmbeddingLens`: final_norm(h) @ E.T with an input embedding E (the initial-token row dropped): which
  token of that stream the state "looks like". Works on every model, user heads or not.

`duplex_steer.probes.linear.ProbeLens` adds learned linear probes with the same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import DuplexSteerError

STREAMS = ("text", "model_cb0", "user_cb0")


class LensError(DuplexSteerError, ValueError):
    """A lens the model cannot support (e.g. a user-stream depformer lens without user heads)."""


@dataclass
class StepTokens:
    """What one step sampled, per batch item: text [B] (frame t+1) and the model's codes [B, 8]."""

    text: Tensor
    audio: Tensor

    @classmethod
    def from_session(cls, session) -> StepTokens:
        return cls(session.last_sampled_text, session.last_sampled_audio)

    def target(self, stream: str) -> Tensor:
        """The sampled token of a model output stream: [B]."""
        if stream == "text":
            return self.text
        if stream == "model_cb0":
            return self.audio[:, 0]
        raise LensError(f"the step samples no token of stream {stream!r}; use the user's next input instead")


class Lens:
    """Base class: `lens(model, h [L, B, dim], layers, tokens) -> probabilities [L, B, V]`."""

    name: str = "lens"
    stream: str = "text"

    def check(self, model) -> None:
        """Raise LensError if `model` cannot support this lens."""

    def logits(self, model, h: Tensor, layers: Sequence[int], tokens: StepTokens) -> Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, model, h: Tensor, layers: Sequence[int], tokens: StepTokens) -> Tensor:
        return torch.softmax(self.logits(model, h, layers, tokens).float(), dim=-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


def _normed(model, h: Tensor) -> Tensor:
    return model.final_norm(h.to(model.device, model.dtype))


class TextLens(Lens):
    """Logit lens on the text stream."""

    name, stream = "text", "text"

    def logits(self, model, h, layers, tokens):
        return model.text_logits(_normed(model, h))


class DepformerLens(Lens):
    """The model's depformer on a layer's state, for the model's (stream 'model_cb0') or the user's
    ('user_cb0', PersonaPlex only) codebook 0."""

    def __init__(self, stream: str = "model_cb0"):
        if stream not in ("model_cb0", "user_cb0"):
            raise LensError(f"a depformer lens reads 'model_cb0' or 'user_cb0', not {stream!r}")
        self.stream = stream
        self.name = f"depformer-{stream.split('_')[0]}"

    def check(self, model) -> None:
        if self.stream == "user_cb0" and not model.spec.has_user_heads:
            raise LensError(f"{model.source} has no user heads (dep_q={model.spec.dep_q}); the depformer cannot "
                            "predict the user's stream: use the 'embedding-user' lens or a learned probe")

    def logits(self, model, h, layers, tokens):
        self.check(model)
        L, B, D = h.shape
        normed = _normed(model, h).reshape(L * B, D)
        prev = [tokens.text] + [tokens.audio[:, k] for k in range(model.spec.num_audio_codebooks)]
        steps = 1 if self.stream == "model_cb0" else model.spec.num_audio_codebooks + 1
        kv: list[list[Tensor]] = [[] for _ in range(model.spec.depformer_num_layers)]
        for k in range(steps):
            out = model.depth_step(k, normed, prev[k].to(model.device).repeat(L), kv)
        return out.view(L, B, -1)


class EmbeddingLens(Lens):
    """final_norm(h) @ E.T for the input embedding of the model's or the user's codebook 0."""

    def __init__(self, stream: str = "user_cb0"):
        if stream not in ("model_cb0", "user_cb0"):
            raise LensError(f"an embedding lens reads 'model_cb0' or 'user_cb0', not {stream!r}")
        self.stream = stream
        self.name = f"embedding-{stream.split('_')[0]}"

    def logits(self, model, h, layers, tokens):
        index = 0 if self.stream == "model_cb0" else model.spec.num_audio_codebooks
        weight = model.hf.embed_tokens[index].weight[: model.spec.card]  # drop the initial-token row
        return _normed(model, h) @ weight.T


LENSES = {
    "text": TextLens,
    "depformer-model": lambda: DepformerLens("model_cb0"),
    "depformer-user": lambda: DepformerLens("user_cb0"),
    "embedding-model": lambda: EmbeddingLens("model_cb0"),
    "embedding-user": lambda: EmbeddingLens("user_cb0"),
}


def get_lens(lens: str | Lens) -> Lens:
    """A lens by name (see LENSES) or an existing Lens object."""
    if isinstance(lens, Lens):
        return lens
    if lens not in LENSES:
        raise LensError(f"unknown lens {lens!r}; choose one of {', '.join(LENSES)} or pass a Lens object")
    return LENSES[lens]()


def default_lenses(model) -> tuple[list[Lens], Lens]:
    """(generation lenses, perception lens): text + depformer(model cb0); depformer(user cb0) when the
    model has user heads, else embedding-transpose(user cb0)."""
    perc = DepformerLens("user_cb0") if model.spec.has_user_heads else EmbeddingLens("user_cb0")
    return [TextLens(), DepformerLens("model_cb0")], perc
