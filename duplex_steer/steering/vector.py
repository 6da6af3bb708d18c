"""`PerceptionVector`: per-layer directions with provenance, arithmetic and a portable file.

File format: one safetensors file, tensors named `layer.<L>`, and the JSON metadata (model
fingerprint, method, thresholds, frame counts, toolkit version, ...) in the safetensors header
under the key `duplex_steer`. No pickle: safe to share and to load from strangers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .. import __version__
from ..engine.noise import key_for
from ..errors import DuplexSteerError

FORMAT = "duplex-steer/perception-vector/1"


class VectorError(DuplexSteerError, ValueError):
    """A vector file that cannot be read, or a vector that does not fit the model."""


@dataclass
class PerceptionVector:
    """Directions from the generative to the perceptive state, one per layer (explicit layer map)."""

    directions: dict[int, Tensor]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.directions:
            raise VectorError("a PerceptionVector needs at least one layer")
        sizes = {v.shape for v in self.directions.values()}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise VectorError(f"all directions must be 1-D of one size, got {sorted(map(tuple, sizes))}")
        self.directions = {int(k): v.detach().float().cpu() for k, v in self.directions.items()}

    @property
    def layers(self) -> list[int]:
        return sorted(self.directions)

    @property
    def hidden_size(self) -> int:
        return int(next(iter(self.directions.values())).shape[0])

    def __getitem__(self, layer: int) -> Tensor:
        if layer not in self.directions:
            raise VectorError(f"this vector has layers {self.layers}, not {layer}; refit with --layers {layer}")
        return self.directions[layer]

    def norms(self) -> dict[int, float]:
        return {k: float(v.norm()) for k, v in sorted(self.directions.items())}

    # --- arithmetic (repeng style): on the layers both operands have --------------------------------
    def _combine(self, other: PerceptionVector, sign: float) -> PerceptionVector:
        common = sorted(set(self.directions) & set(other.directions))
        if not common:
            raise VectorError(f"no common layers between {self.layers} and {other.layers}")
        if self.hidden_size != other.hidden_size:
            raise VectorError(f"hidden sizes differ: {self.hidden_size} vs {other.hidden_size}")
        meta = {"method": "arithmetic", "operands": [self.meta.get("method"), other.meta.get("method")],
                "model": self.meta.get("model")}
        return PerceptionVector({k: self.directions[k] + sign * other.directions[k] for k in common}, meta)

    def __add__(self, other: PerceptionVector) -> PerceptionVector:
        return self._combine(other, 1.0)

    def __sub__(self, other: PerceptionVector) -> PerceptionVector:
        return self._combine(other, -1.0)

    def __mul__(self, scale: float) -> PerceptionVector:
        meta = dict(self.meta, scaled_by=float(scale) * float(self.meta.get("scaled_by", 1.0)))
        return PerceptionVector({k: v * float(scale) for k, v in self.directions.items()}, meta)

    __rmul__ = __mul__

    def __neg__(self) -> PerceptionVector:
        return self * -1.0

    def normalized(self) -> PerceptionVector:
        return PerceptionVector({k: v / v.norm().clamp_min(1e-12) for k, v in self.directions.items()},
                                dict(self.meta, normalized=True))

    def random_like(self, key: int) -> PerceptionVector:
        """A random direction of each layer's norm (the random-direction control), drawn from a generator of
        its own per layer seeded with (key, layer): a layer's direction does not depend on the vector's other
        layers, and different keys (e.g. one per benchmark item) give independent directions."""
        dirs = {}
        for layer, v in self.directions.items():
            g = torch.Generator().manual_seed(key_for("random-direction", key, layer))
            r = torch.randn(v.shape, generator=g)
            dirs[layer] = r / r.norm() * v.norm()
        return PerceptionVector(dirs, {"method": "random-direction-control", "key": int(key),
                                       "model": self.meta.get("model")})

    # --- compatibility -------------------------------------------------------------------------------
    def check_compatible(self, model) -> None:
        """Raise VectorError unless this vector was made for a model of the same shape."""
        mine = self.meta.get("model") or {}
        theirs = model.fingerprint()
        if self.hidden_size != model.hidden_size:
            raise VectorError(f"vector hidden size {self.hidden_size} != model hidden size {model.hidden_size} "
                              f"(vector made for {mine.get('checkpoint', 'an unknown model')}, model is "
                              f"{theirs['checkpoint']}); fit a vector on this model with `duplex-steer fit-vector`")
        bad = [layer for layer in self.layers if layer >= model.num_layers]
        if bad:
            raise VectorError(f"vector layers {bad} do not exist in a {model.num_layers}-layer model")
        for key in ("architecture", "num_layers"):
            if key in mine and mine[key] != theirs[key]:
                raise VectorError(f"vector made for {key}={mine[key]!r}, model has {theirs[key]!r}; "
                                  "fit a vector on this model with `duplex-steer fit-vector`")

    # --- file ------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(self.meta, format=FORMAT, toolkit_version=__version__, layers=self.layers)
        save_file({f"layer.{k}": v.contiguous() for k, v in self.directions.items()}, str(path),
                  metadata={"duplex_steer": json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> PerceptionVector:
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise VectorError(f"vector file not found: {path}; make one with `duplex-steer fit-vector`")
        try:
            with safe_open(str(path), "pt") as f:
                header = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:
            raise VectorError(f"{path} is not a safetensors vector file ({exc})") from None
        if "duplex_steer" not in header:
            raise VectorError(f"{path} has no duplex_steer metadata; it was not written by PerceptionVector.save")
        meta = json.loads(header["duplex_steer"])
        if meta.get("format") != FORMAT:
            raise VectorError(f"{path}: unknown format {meta.get('format')!r} (expected {FORMAT})")
        try:
            directions = {int(k.split(".", 1)[1]): v for k, v in tensors.items() if k.startswith("layer.")}
        except ValueError:
            raise VectorError(f"{path}: tensor names must be layer.<index>") from None
        return cls(directions, meta)
