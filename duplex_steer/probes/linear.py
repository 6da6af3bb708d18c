"""Learned linear probes: per layer, a linear map from the raw residual state to the next token of a stream.

Targets: 'user_cb0' (the user's codebook 0 of the next frame, what the model will hear) and 'text' (the
model's next text token, what it will say). Trained on recorded conversations with torch (full-batch
AdamW, a few epochs, seeded), evaluated on held-out conversations (or the last 20 % of frames when
there is one), next to the majority-class baseline. Saved as safetensors (weights) + JSON (metadata,
including the model fingerprint); loading into another model fails clearly. No pickle anywhere.
`ProbeLens` lets probes stand in for the built-in lenses in the affinities.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..engine.conversation import Recording, converse
from ..errors import DuplexSteerError
from ..hooks import KeepSink, check_layers, record
from .lenses import Lens, StepTokens

TARGETS = ("user_cb0", "text")


class ProbeError(DuplexSteerError, ValueError):
    """A probe that cannot be trained, loaded or applied as asked."""


@dataclass
class ProbeData:
    """Training material: per layer states [N, dim], per target tokens [N], recording index per row [N]."""

    states: dict[int, Tensor]
    targets: dict[str, Tensor]
    groups: Tensor
    fingerprint: dict[str, Any]


@dataclass
class LinearProbe:
    """logits = h @ weight.T + bias, for one layer and one target stream."""

    layer: int
    target: str
    weight: Tensor  # [V, dim]
    bias: Tensor  # [V]
    fingerprint: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)

    def logits(self, h: Tensor) -> Tensor:
        return h.to(self.weight) @ self.weight.T + self.bias

    def predict(self, h: Tensor) -> Tensor:
        return self.logits(h).argmax(-1)

    def check_model(self, model) -> None:
        if model.fingerprint() != self.fingerprint:
            raise ProbeError(f"this probe was trained on {self.fingerprint} but the model is "
                             f"{model.fingerprint()}; train a probe for this model")

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Write PATH.safetensors and PATH.json (any suffix of PATH is replaced)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        weights, meta = path.with_suffix(".safetensors"), path.with_suffix(".json")
        save_file({"weight": self.weight.contiguous().cpu(), "bias": self.bias.contiguous().cpu()}, str(weights))
        meta.write_text(json.dumps({"kind": "duplex-steer linear probe", "layer": self.layer, "target": self.target,
                                    "fingerprint": self.fingerprint, **self.metrics}, indent=1))
        return weights, meta

    @classmethod
    def load(cls, path: str | Path, model=None) -> LinearProbe:
        """Read a saved probe; with `model`, check that it was trained on that model."""
        from safetensors.torch import load_file

        path = Path(path)
        weights, meta_path = path.with_suffix(".safetensors"), path.with_suffix(".json")
        for p in (weights, meta_path):
            if not p.is_file():
                raise ProbeError(f"probe file not found: {p} (a probe is a .safetensors + .json pair)")
        meta = json.loads(meta_path.read_text())
        tensors = load_file(str(weights))
        metrics = {k: v for k, v in meta.items() if k not in ("kind", "layer", "target", "fingerprint")}
        probe = cls(int(meta["layer"]), meta["target"], tensors["weight"], tensors["bias"], meta["fingerprint"], metrics)
        if model is not None:
            probe.check_model(model)
        return probe


@torch.no_grad()
def collect_probe_data(model, recordings: Sequence[Recording], layers: int | Sequence[int] | None = None,
                       greedy: bool = False, seed: int | None = 0) -> ProbeData:
    """Converse on each recording (one at a time) and keep (state at frame t, next tokens) pairs.

    Row t of a recording pairs layer states of step t with user codebook 0 of frame t + 1 and the text
    token step t sampled; the last frame has no next user token and is dropped.
    """
    layers = check_layers(model, layers)
    states: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    user, text, groups = [], [], []
    for g, rec in enumerate(recordings):
        sampled: list[Tensor] = []
        sink = KeepSink()
        with record(model, layers, sink=sink):
            conv = converse(model, rec, greedy=greedy, seed=seed, decode_audio=False,
                            on_frame=lambda s, i, out=sampled: out.append(s.last_sampled_text[0].cpu()))
        T = conv.user_codes.shape[-1]
        if T < 2:
            raise ProbeError("a recording shorter than two frames gives no training pair")
        for layer in layers:
            states[layer].append(sink.stacked(layer)[0, -T:-1].float())  # recording frames only
        user.append(conv.user_codes[0, 0, 1:])
        text.append(torch.stack(sampled)[:-1])
        groups.append(torch.full((T - 1,), g))
    return ProbeData({k: torch.cat(v) for k, v in states.items()},
                     {"user_cb0": torch.cat(user), "text": torch.cat(text)}, torch.cat(groups), model.fingerprint())


def _split(groups: Tensor, heldout_fraction: float) -> tuple[Tensor, Tensor]:
    ids = groups.unique()
    if len(ids) >= 2:
        n_held = max(1, round(len(ids) * heldout_fraction))
        held = torch.isin(groups, ids[-n_held:])
    else:
        held = torch.zeros(len(groups), dtype=torch.bool)
        held[int(len(groups) * (1 - heldout_fraction)) :] = True
    return ~held, held


def train_probe(data: ProbeData, layer: int, target: str, num_classes: int, epochs: int = 5, lr: float = 1e-2,
                weight_decay: float = 1e-4, heldout_fraction: float = 0.2, seed: int = 0) -> LinearProbe:
    """Fit one probe (full-batch AdamW, `epochs` x 50 steps) and report held-out and baseline accuracy."""
    if target not in TARGETS:
        raise ProbeError(f"unknown probe target {target!r}; choose one of {TARGETS}")
    if layer not in data.states:
        raise ProbeError(f"layer {layer} was not recorded (recorded: {sorted(data.states)})")
    X, y = data.states[layer].float(), data.targets[target].long()
    train, held = _split(data.groups, heldout_fraction)
    if train.sum() == 0 or held.sum() == 0:
        raise ProbeError(f"too little data to hold some out ({len(y)} frames)")
    mean, std = X[train].mean(0), X[train].std(0).clamp(min=1e-6)
    gen = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(X.shape[1], num_classes)
    with torch.no_grad():
        lin.weight.normal_(0, 0.01, generator=gen)
        lin.bias.zero_()
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=weight_decay)
    Xn = (X - mean) / std
    with torch.enable_grad():
        for _ in range(epochs * 50):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(lin(Xn[train]), y[train])
            loss.backward()
            opt.step()
    # fold the standardisation into the weights: the probe reads raw states
    weight = (lin.weight / std).detach()
    bias = (lin.bias - (lin.weight * mean / std).sum(1)).detach()
    probe = LinearProbe(layer, target, weight, bias, data.fingerprint)
    majority = int(torch.bincount(y[train], minlength=num_classes).argmax())
    probe.metrics = {
        "n_train": int(train.sum()), "n_heldout": int(held.sum()), "epochs": epochs, "seed": seed,
        "train_loss": loss.item(), "heldout_accuracy": float((probe.predict(X[held]) == y[held]).float().mean()),
        "baseline_accuracy": float((y[held] == majority).float().mean()), "majority_class": majority,
    }
    return probe


def train_probes(model, recordings: Sequence[Recording], layers: int | Sequence[int] | None = None,
                 targets: Sequence[str] = TARGETS, **kwargs: Any) -> list[LinearProbe]:
    """Record `recordings` and fit one probe per (layer, target)."""
    data = collect_probe_data(model, recordings, layers)
    classes = {"user_cb0": model.spec.card, "text": model.spec.text_card}
    return [train_probe(data, layer, t, classes[t], **kwargs) for layer in data.states for t in targets]


class ProbeLens(Lens):
    """Learned probes as a lens: one probe per layer, all for the same target stream."""

    def __init__(self, probes: Sequence[LinearProbe]):
        if not probes or len({p.target for p in probes}) != 1:
            raise ProbeError("a ProbeLens needs probes that all share one target")
        self.probes = {p.layer: p for p in probes}
        target = probes[0].target
        self.stream = "text" if target == "text" else "user_cb0"
        self.name = f"probe-{target}"

    def check(self, model) -> None:
        for p in self.probes.values():
            p.check_model(model)

    def logits(self, model, h: Tensor, layers: Sequence[int], tokens: StepTokens) -> Tensor:
        missing = [layer for layer in layers if layer not in self.probes]
        if missing:
            raise ProbeError(f"no probe for layers {missing} (probes exist for {sorted(self.probes)})")
        return torch.stack([self.probes[layer].logits(h[i].float()) for i, layer in enumerate(layers)])


def heldout_report(probes: Sequence[LinearProbe]) -> list[dict[str, Any]]:
    """One row per probe: layer, target, held-out accuracy, baseline."""
    return [{"layer": p.layer, "target": p.target, **{k: p.metrics.get(k) for k in
             ("n_train", "n_heldout", "heldout_accuracy", "baseline_accuracy")}} for p in probes]

