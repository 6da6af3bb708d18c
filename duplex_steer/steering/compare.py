"""Steered and unsteered conversations on the same recording, side by side, in one batch.

Item 0 is unsteered, item 1 steered; the onset detector runs causally on the user's audio, frame
by frame, before each step, so steering can start on the detected frame itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import FRAME_SAMPLES, SAMPLE_RATE
from ..engine.conversation import ConversationResult, FrameCallback, Recording, as_waveform, converse
from ..probes.activity import model_activity_rule
from .onset import OnsetDetector, OracleOnset
from .steer import Steering, apply


@dataclass
class SteeredComparison:
    """Both conversations, the onset used and the frames that were steered (recording frames)."""

    result: ConversationResult  # batch of 2: [unsteered, steered]
    onset_frames: list[int]  # recording frames where the detector fired
    steered_frames: list[int]  # recording frames that received the vector
    steering: Steering
    detector: str

    def to_json(self, model_label: str) -> dict[str, Any]:
        r = self.result
        return {
            "model": model_label,
            "detector": self.detector,
            "onset_frames": self.onset_frames,
            "onset_s": [f * FRAME_SAMPLES / SAMPLE_RATE for f in self.onset_frames],
            "steered_frames": self.steered_frames,
            "frame_offset": r.frame_offset,
            "prompt": r.prompt,
            "steering": {"layers": list(self.steering.layers), "alpha": self.steering.alpha,
                         "span": self.steering.span, "schedule": self.steering.schedule},
            "unsteered": {"text": r.texts[0], "pieces": r.pieces[0]},
            "steered": {"text": r.texts[1], "pieces": r.pieces[1]},
        }


def onset_frame_from_seconds(seconds: float) -> int:
    return int(seconds * SAMPLE_RATE // FRAME_SAMPLES)


def steer_recording(model, recording: Recording, steering: Steering, detector: OnsetDetector, *,
                    greedy: bool = False, seed: int = 0, prompt=None, progress: bool = False,
                    on_frame: FrameCallback | None = None) -> SteeredComparison:
    """Run the recording twice in one batch; detect onsets live; steer the second copy only.

    `on_frame(session, recording_frame)` is called after each step (e.g. probes' OnlineAffinity).
    """
    wav = as_waveform(recording)
    padded = np.pad(wav, (0, (-len(wav)) % FRAME_SAMPLES))
    frames = padded.reshape(-1, FRAME_SAMPLES)
    onsets: list[int] = []
    text_history: list[np.ndarray] = []
    activity = model_activity_rule(model)  # the model's vocabulary's rule (SentencePiece pieces or whole words)

    with apply(model, steering, batch_size=2, enabled=[False, True]) as ctl:
        def before_frame(session, i):
            speaking = (activity.speaking_now(np.stack(text_history[-activity.window:], 1)) if text_history
                        else np.zeros(2, bool))
            fired = detector.update(np.repeat(frames[i : i + 1], 2, 0), i, speaking)
            if fired[1]:
                onsets.append(i)
                ctl.trigger(0, session.frame)
                ctl.trigger(1, session.frame)

        def after_frame(session, i):
            text_history.append(session.last_sampled_text.cpu().numpy())
            if on_frame is not None:
                on_frame(session, i)

        result = converse(model, [wav, wav], greedy=greedy, seed=seed, prompt=prompt, progress=progress,
                          before_frame=before_frame, on_frame=after_frame, noise_groups=[0, 0])
        steered_abs = ctl.steered_frames(1)
    steered = [f - result.frame_offset for f in steered_abs if 0 <= f - result.frame_offset < len(frames)]
    name = type(detector).__name__
    return SteeredComparison(result, onsets, steered, steering, name)


def oracle(seconds: float) -> OracleOnset:
    """An oracle detector firing at `seconds` into the recording, for both batch items."""
    frame = onset_frame_from_seconds(seconds)
    return OracleOnset(frames=[frame, frame], refractory_frames=0)
