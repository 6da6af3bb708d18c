"""Teacher-forced answer accuracy (`duplex_steer.organism.answers`): the right frames, the right groups."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from duplex_steer.engine.text import PAD
from duplex_steer.organism.answers import accuracy, answer_tally
from duplex_steer.organism.episodes import Episode
from duplex_steer.organism.world import NO, YES, World


@pytest.fixture(scope="module")
def world() -> World:
    return World.load()


class Oracle:
    """Stands in for a model: its text logits at frame t name the true text token at t (what a model that
    knew every answer would predict), with "yes" and "no" swapped at the frames in `wrong_at`."""

    device = torch.device("cpu")

    def __init__(self, world: World, wrong_at: set[tuple[int, int]] = frozenset()):
        self.tokenizer = world.tokenizer()
        self.vocab = len(self.tokenizer.pieces)
        self.yes, self.no = self.tokenizer.encode(YES)[0], self.tokenizer.encode(NO)[0]
        self.wrong_at = wrong_at
        self.base = 0

    def delay(self, codes):
        self.codes = codes
        return torch.cat([codes[:, :, :1], codes], 2)

    def embed(self, x):
        return x

    def run_layers(self, h, start):
        return h

    def final_norm(self, h):
        return h

    def text_logits(self, h):
        target = self.codes[:, 0].clone()
        for b, t in self.wrong_at:
            if b >= self.base and b - self.base < target.shape[0]:
                bb = b - self.base
                target[bb, t] = self.no if int(target[bb, t]) == self.yes else self.yes
        self.base += target.shape[0]
        return F.one_hot(target, self.vocab).float()


def episode(world: World, questions: list[tuple[str, str, bool, int]], frames: int = 60) -> Episode:
    """An episode whose text stream holds the answers of `questions` (kind, subject, truth, answer frame)."""
    tok = world.tokenizer()
    codes = torch.zeros(17, frames, dtype=torch.long)
    codes[0] = PAD
    events = []
    for kind, subject, truth, at in questions:
        codes[0, at] = tok.encode(YES if truth else NO)[0]
        codes[0, at + 1] = tok.encode(subject)[0]
        description = world.true_description[subject]
        events.append({"what": kind, "start": at - 10, "end": at - 2, "subject": subject, "truth": truth,
                       "in_zbb": (subject, description) in world.zbb_pairs})
    events.insert(0, {"what": "context", "start": 0, "end": 5, "topic": "music"})  # no answer: not counted
    return Episode(codes, questions[0][0], events)


def test_a_model_that_knows_every_answer_gets_all_right_and_groups_add_up(world: World) -> None:
    zbb, extra = world.zbb_subjects[0], world.extra_subjects[0]
    episodes = [episode(world, [("silent", zbb, True, 20), ("followup", extra, False, 40)]),
                episode(world, [("buffered", extra, True, 30)])]
    tally = answer_tally(Oracle(world), episodes, world, batch=1)
    assert tally["all"] == [3, 3]
    assert tally["silent"] == [1, 1] and tally["followup"] == [1, 1] and tally["buffered"] == [1, 1]
    assert tally["zbb subject"] == [1, 1] and tally["training-only subject"] == [2, 2]
    assert tally["zbb item"] == [1, 1]  # the ZBB subject was asked its true ZBB description
    assert accuracy(tally) == 1.0 and accuracy(tally, "retopic") != accuracy(tally, "retopic")  # nan: never asked


def test_a_wrong_answer_is_counted_at_its_own_frame(world: World) -> None:
    zbb, extra = world.zbb_subjects[1], world.extra_subjects[1]
    episodes = [episode(world, [("silent", zbb, True, 20), ("followup", extra, False, 40)]),
                episode(world, [("buffered", extra, True, 30)])]
    # the second episode's answer (frame 30) flipped: batch 2 puts both episodes in one forward pass
    tally = answer_tally(Oracle(world, wrong_at={(1, 30)}), episodes, world, batch=2)
    assert tally["all"] == [2, 3] and tally["buffered"] == [0, 1] and tally["silent"] == [1, 1]
    # a flip one frame off the answer changes nothing
    tally = answer_tally(Oracle(world, wrong_at={(1, 31)}), episodes, world, batch=2)
    assert tally["all"] == [3, 3]
