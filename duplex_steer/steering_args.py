"""The `--layer / --alpha / --span / --allow-negative-alpha` options every steering command shares.

They default to None, "the model's default" (`duplex_steer.steering.defaults`): commands check them
before the model loads (`check_steering_args`) and resolve them after (`resolve_steering`). The help texts
name those defaults from where they are defined, so they cannot go stale.
"""

from __future__ import annotations

import argparse

from .organism.settings import STEERING_DEFAULTS as ORGANISM_STEERING
from .steering.defaults import PAPER_ALPHA, PAPER_DEPTH, PAPER_LAYER, PAPER_SPAN


def add_steering_args(parser: argparse.ArgumentParser) -> None:
    """--layer, --alpha, --span (default: the model's) and --allow-negative-alpha."""
    parser.add_argument("--layer", type=int, default=None,
                        help=f"steering layer (default: the model's: the organism {ORGANISM_STEERING['layer']}, a "
                             f"{PAPER_DEPTH}-layer Moshi / PersonaPlex {PAPER_LAYER}, else {PAPER_LAYER}/{PAPER_DEPTH} "
                             "of the depth; the vector's first layer if it lacks that one)")
    parser.add_argument("--alpha", type=float, default=None,
                        help=f"strength (default: the model's: the organism {ORGANISM_STEERING['alpha']}, other models "
                             f"{PAPER_ALPHA})")
    parser.add_argument("--span", type=int, default=None,
                        help=f"frames steered after the onset (default: the model's: the organism {ORGANISM_STEERING['span']}, "
                             f"other models {PAPER_SPAN})")
    parser.add_argument("--allow-negative-alpha", action="store_true",
                        help="accept a negative --alpha (steers away from the perceptive state)")
