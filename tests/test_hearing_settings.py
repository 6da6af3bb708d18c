"""scripts/hearing_settings.py: how often codebook 0 names the subject of a buffered query."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from duplex_steer.audio import FRAME_SAMPLES, SAMPLE_RATE
from duplex_steer.engine.tag_codec import SILENCE
from duplex_steer.speech.aligned import AlignedUtterance
from tests.conftest import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hearing_settings.py"
WORDS = ["um", "excuse", "me", "penguins", "they"]


class FrameCodec:
    """Tags frame i with the class `plan[i]` (one-hot logits): a codec whose hearing the test decides."""

    labels = [SILENCE, *WORDS, "honey"]

    def __init__(self, plan: list[str]) -> None:
        self.plan = plan

    def tag_logits(self, audio: np.ndarray) -> torch.Tensor:
        frames = audio.shape[1] // FRAME_SAMPLES
        idx = torch.tensor([self.labels.index(self.plan[min(i, len(self.plan) - 1)]) for i in range(frames)])
        return torch.nn.functional.one_hot(idx, len(self.labels)).float()[None]


@pytest.fixture(scope="module")
def script():
    return load_file_module(SCRIPT, "hearing_settings")


def test_the_subject_counts_when_most_of_its_frames_name_it(script) -> None:
    f = FRAME_SAMPLES / SAMPLE_RATE
    spans = [(0, 1 * f), (1 * f, 3 * f), (3 * f, 4 * f), (4 * f, 7 * f), (7 * f, 8 * f)]  # penguins: frames 4-6
    utt = AlignedUtterance("Um, excuse me, Penguins, they", "test", np.zeros(8 * FRAME_SAMPLES, np.float32), WORDS,
                           spans)
    heard = ["um", "excuse", "excuse", "me", "honey", "penguins", "penguins", "they"]
    misheard = ["um", "excuse", "excuse", "me", "honey", "honey", "penguins", "they"]
    assert script.subject_accuracy(FrameCodec(heard), [utt]) == 1.0  # 2 of its 3 frames
    assert script.subject_accuracy(FrameCodec(misheard), [utt]) == 0.0
    assert script.subject_accuracy(FrameCodec(heard), [utt, utt]) == 1.0
