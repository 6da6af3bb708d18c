"""Names and defaults the probes' command-line options need, free of torch so that `--help` starts fast.

`lenses.LENSES` holds the lens classes under the names listed here (a test keeps the two in step);
`inertia` takes its take-over defaults from here.
"""

from __future__ import annotations

GENERATION_LENSES = ("text", "depformer-model", "embedding-model")
PERCEPTION_LENSES = ("depformer-user", "embedding-user")
K_CONSECUTIVE = 3  # consecutive perceptive frames that make a take-over
MAX_FRAMES = 50  # 4 s: give up on a take-over after this many frames

__all__ = ["GENERATION_LENSES", "K_CONSECUTIVE", "MAX_FRAMES", "PERCEPTION_LENSES"]
