"""ZBB's turn measure: did the model stop its own speech after the onset, and how fast.

Full-Duplex-Bench's take-over rate asks whether the model took the turn with more than a
backchannel (over 1 s or over 3 words), which reads 0 for a short correct ZBB answer ("yes,
penguins"), so ZBB reports this instead (FDB's take-over stays in `zbb import-fdb`):
- `stop_frames`: frames from the query's onset to the model's first silent frame, where "silent"
  is the run's activity rule on the model's text stream (no word token in the last `hold` + 1
  frames: `duplex_steer.probes.activity`); 0 when the model was already quiet at the onset;
  None when it never fell silent before the end of the reply window;
- `stopped`: 1 when it fell silent in that window (the onset to the end of the reply window), else 0.
A silent frame is a pause of more than `hold` frames: a model that pauses and then talks on over the
user counts as stopped at the pause.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np


class ActivityRule(Protocol):
    window: int

    def speaking(self, text_tokens: Any) -> np.ndarray: ...


def stop_after_onset(text: Mapping[int, int], onset: int, end: int, rule: ActivityRule) -> dict[str, Any]:
    """{"stopped": 0/1, "stop_frames": int or None} from the model's text tokens per absolute frame.

    `text` maps a session frame to the model's text token (missing frames: no token); frames
    `onset` .. `end` - 1 are examined, with the `rule.window` - 1 frames before the onset as history.
    """
    first = onset - rule.window + 1
    tokens = np.array([text.get(f, -1) for f in range(first, end)], dtype=np.int64)
    silent = np.flatnonzero(~np.asarray(rule.speaking(tokens), dtype=bool)[onset - first :])
    if silent.size == 0:
        return {"stopped": 0, "stop_frames": None}
    return {"stopped": 1, "stop_frames": int(silent[0])}


__all__ = ["stop_after_onset"]
