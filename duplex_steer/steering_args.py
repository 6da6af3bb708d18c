"""The `--layer / --alpha / --span / --allow-negative-alpha` options every steering command shares.

They default to None, "the model's default" (`duplex_steer.steering.defaults`): commands check them
before the model loads (`check_steering_args`) and resolve them after (`resolve_steering`).
"""

from __future__ import annotations

import argparse


def add_steering_args(parser: argparse.ArgumentParser) -> None:
    """--layer, --alpha, --span (default: the model's) and --allow-negative-alpha."""
    parser.add_argument("--layer", type=int, default=None,
                        help="steering layer (default: the model's: the organism 2, a 32-layer Moshi / PersonaPlex "
                             "23, else 23/32 of the depth; the vector's first layer if it lacks that one)")
    parser.add_argument("--alpha", type=float, default=None,
                        help="strength (default: the model's: the organism 1.0, other models 5.5)")
    parser.add_argument("--span", type=int, default=None, help="frames steered after the onset (default: the model's, 3)")
    parser.add_argument("--allow-negative-alpha", action="store_true",
                        help="accept a negative --alpha (steers away from the perceptive state)")
