"""The steering settings (layer, alpha, span) a model runs with when none are given: one definition.

The rule, for every command and the library:

- a model that carries its own settings (`model.steering_defaults`): those. The organism does: layer 5
  of 6, alpha 1.0, span 3, chosen on development items (not ZBB's) by `zbb choose`;
- any other model: the paper's settings for a 32-layer Moshi / PersonaPlex, layer 23, alpha 5.5 and a
  span of 3 frames, with the layer scaled to the model's depth: round(23 / 32 x depth), at most the last.

Commands take `--layer / --alpha / --span` defaulting to None ("the model's default"). They check what
they can before the model loads (`check_steering_args`: the vector file, the layer against the vector,
the sign of alpha) and resolve the rest after (`resolve_steering`), recording what was used and where
each value came from (`SteeringSettings.to_json`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DuplexSteerError

if TYPE_CHECKING:  # imported where used: `zbb --help` must not load torch
    from .vector import PerceptionVector

PAPER_LAYER, PAPER_DEPTH = 23, 32  # the paper's steering layer in the 32-layer 7B models
PAPER_ALPHA = 5.5
PAPER_SPAN = 3  # frames of 80 ms after the onset
MODEL_DEFAULT = "the model's default"
NEGATIVE_ALPHA_HINT = "pass --allow-negative-alpha to run it anyway"


class SteeringArgError(DuplexSteerError, ValueError):
    """Steering settings that cannot work on this model or vector (said before the model loads when possible)."""


def default_steering_layer(num_layers: int) -> int:
    """The paper's layer 23 of 32, scaled to the model's depth (23 for a 32-layer model)."""
    return min(num_layers - 1, round(PAPER_LAYER / PAPER_DEPTH * num_layers))


def default_steering(model) -> dict[str, Any]:
    """{"layer", "alpha", "span"} to steer `model` with when none are given (see the module's rule)."""
    own = getattr(model, "steering_defaults", None)
    if own:
        return {"layer": int(own["layer"]), "alpha": float(own["alpha"]), "span": int(own["span"])}
    return {"layer": default_steering_layer(model.num_layers), "alpha": PAPER_ALPHA, "span": PAPER_SPAN}


@dataclass(frozen=True)
class SteeringSettings:
    """The layer, alpha and span a run steers with, and where each came from (an option or a default)."""

    layer: int
    alpha: float
    span: int
    sources: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"layer": self.layer, "alpha": self.alpha, "span": self.span, "from": dict(self.sources)}

    def line(self) -> str:
        """One line for logs: 'steering: layer 5 (the model's default), alpha 1 (...), span 3 (...)'."""
        parts = [f"{k} {getattr(self, k):g} ({self.sources.get(k, MODEL_DEFAULT)})" for k in ("layer", "alpha", "span")]
        return "steering: " + ", ".join(parts)


def check_alpha(alpha: float | None, allow_negative: bool = False, option: str = "--alpha") -> None:
    """Refuse a negative strength unless asked for: it pushes the model away from listening."""
    if alpha is not None and alpha < 0 and not allow_negative:
        raise SteeringArgError(f"{option} {alpha:g} is negative: it steers away from the perceptive state, the "
                               f"opposite of the method; {NEGATIVE_ALPHA_HINT}")


def check_layer(layer: int, num_layers: int | None, vector: PerceptionVector | None, what: str = "the model") -> None:
    """`layer` must exist in the model (`num_layers`, when known) and be one of the vector's layers."""
    if num_layers is not None and not 0 <= layer < num_layers:
        raise SteeringArgError(f"--layer {layer}: {what} has {num_layers} layers (0..{num_layers - 1}); "
                               "pick one of them")
    if vector is not None and layer not in vector.layers:
        raise SteeringArgError(f"--layer {layer}: the vector holds layers {vector.layers}; steer at one of them, "
                               f"or fit a vector at this layer with `duplex-steer fit-vector --layers {layer}`")


def vector_model_layers(vector: PerceptionVector) -> int | None:
    """The depth of the model a vector was fitted on, from its metadata (None when not recorded)."""
    n = (vector.meta.get("model") or {}).get("num_layers")
    return int(n) if n is not None else None


def check_steering_args(vector: str | Path | PerceptionVector | None, layer: int | None = None,
                        alpha: float | None = None, allow_negative_alpha: bool = False) -> PerceptionVector | None:
    """Everything that can be checked before a model loads: the vector file is readable, the layer exists in
    the model the vector was fitted on and in the vector, alpha is not negative unless asked for.
    Returns the loaded vector (None when there is none)."""
    from .vector import PerceptionVector

    check_alpha(alpha, allow_negative_alpha)
    if vector is None:
        return None
    vec = vector if isinstance(vector, PerceptionVector) else PerceptionVector.load(vector)
    depth = vector_model_layers(vec)
    if layer is not None and depth is not None:  # else after loading, when the model's depth is known
        check_layer(layer, depth, vec, what="the model this vector was fitted on")
    return vec


def resolve_steering(model, vector: PerceptionVector | None = None, layer: int | None = None,
                     alpha: float | None = None, span: int | None = None) -> SteeringSettings:
    """The settings to steer `model` with: given values win, the rest are the model's defaults.

    Without --layer the model's default layer is used when the vector holds it, else the vector's first
    layer (a vector fitted elsewhere); every value's origin is recorded."""
    defaults = default_steering(model)
    sources: dict[str, str] = {}
    if layer is not None:
        check_layer(layer, model.num_layers, vector)
        sources["layer"] = "--layer"
    elif vector is None or defaults["layer"] in vector.layers:
        layer, sources["layer"] = defaults["layer"], MODEL_DEFAULT
    else:
        layer = vector.layers[0]
        check_layer(layer, model.num_layers, None)
        sources["layer"] = f"the vector's first layer; the model's default {defaults['layer']} is not in it"
    if span is not None and span < 1:
        raise SteeringArgError(f"--span {span}: steer at least 1 frame")
    sources["alpha"] = MODEL_DEFAULT if alpha is None else "--alpha"
    sources["span"] = MODEL_DEFAULT if span is None else "--span"
    return SteeringSettings(layer=int(layer), alpha=float(defaults["alpha"] if alpha is None else alpha),
                            span=int(defaults["span"] if span is None else span), sources=sources)


# how a perception vector's fit splits frames into perceptive and generative ones (`fit-vector --split`,
# `steering.fit.make_labeler`), the default first
FRAME_SPLITS = ("activity", "user-activity", "affinity")

__all__ = ["FRAME_SPLITS", "MODEL_DEFAULT", "PAPER_ALPHA", "PAPER_LAYER", "PAPER_SPAN", "SteeringArgError", "SteeringSettings",
           "check_alpha", "check_layer", "check_steering_args", "default_steering", "default_steering_layer",
           "resolve_steering", "vector_model_layers"]
