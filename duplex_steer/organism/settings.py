"""What every organism model carries: its architecture, its steering settings and its caveat.

Kept apart from the package's command (`duplex_steer.organism`), training (`train`) and loading
(`checkpoint`) so that each of those can read them without importing the others.
"""

from __future__ import annotations

from ..engine.spec import ModelSpec

# Steering settings for the organism, chosen without ZBB by the development protocol
# (scripts/tune_organism_steering.sh: 48 items about training-only subjects, both seeds, `zbb choose` with the
# side-effect and random-control bounds): layer 5 of 6, 3 frames, linear decay, alpha 1 x the mean difference.
# Until 2026-12-03 the default was layer 2, alpha 1, fixed in advance from the CPU prototype; the protocol's
# first rule chose layer 1, alpha 2, which failed the random control on ZBB and was not adopted (model card,
# "Steering settings").
STEERING_DEFAULTS = {"layer": 5, "alpha": 1.0, "span": 3}
ORGANISM_NOTE = ("organism: a 4.2M-parameter model trained on CPU on a synthetic toy world; it shows mechanisms "
                 "at small scale, never figures about Moshi or PersonaPlex")


def organism_spec(text_card: int, card: int = 64, dep_q: int = 16) -> ModelSpec:
    """The organism's architecture: Moshi's, small (6 layers x 128, depformer 1 x 64), with `card` audio
    codes and, at `dep_q=16`, user-stream heads (the depformer also predicts the user's 8 codebooks, as
    PersonaPlex's does)."""
    return ModelSpec(dim=128, num_heads=4, num_layers=6, text_card=text_card, card=card, context=256,
                     depformer_dim=64, depformer_num_heads=2, depformer_num_layers=1,
                     depformer_dim_feedforward=256, dep_q=dep_q)


__all__ = ["ORGANISM_NOTE", "STEERING_DEFAULTS", "organism_spec"]
