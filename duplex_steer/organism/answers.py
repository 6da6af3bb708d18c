"""Does the organism answer its own questions? Teacher-forced answer accuracy on recipe episodes.

The facts diagnosis (model card, "Why the facts are not learned"): episodes drawn as training draws them
(same mix, fact table and speech) are run teacher-forced, and at every answer frame the "yes" logit must
beat the "no" logit as the fact says. Tallied by how the question came (silent, follow-up, buffered,
zero-buffer), by subject (ZBB or training-only) and for the ZBB items themselves. Training records it on
a fixed set of episodes every `TrainConfig.answer_check_every` steps; `scripts/answer_accuracy.py` runs it
on any checkpoint and voices.
"""

from __future__ import annotations

from collections import defaultdict

import torch

from .episodes import Episode
from .world import NO, YES, World


@torch.no_grad()
def answer_tally(model, episodes: list[Episode], world: World, batch: int = 12) -> dict[str, list[int]]:
    """{group: [right, asked]} over every answered question of `episodes` (groups: "all", the question's
    kind, "zbb subject" / "training-only subject", "zbb item")."""
    yes, no = model.tokenizer.encode(YES)[0], model.tokenizer.encode(NO)[0]
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in range(0, len(episodes), batch):
        chunk = episodes[i : i + batch]
        codes = torch.stack([e.codes for e in chunk]).to(model.device)
        delayed = model.delay(codes)
        logits = model.text_logits(model.final_norm(model.run_layers(model.embed(delayed[:, :, :-1]), 0)))
        for b, episode in enumerate(chunk):
            answers = [t for t in range(codes.shape[2]) if int(codes[b, 0, t]) in (yes, no)]
            questions = [e for e in episode.events if "truth" in e]
            for event, t in zip(questions, answers, strict=True):  # every answered question, in order
                right = int(bool(logits[b, t, yes] > logits[b, t, no]) == bool(event["truth"]))
                subject = "zbb subject" if event["subject"] in world.zbb_subjects else "training-only subject"
                for key in ["all", event["what"], subject] + (["zbb item"] if event["in_zbb"] else []):
                    tally[key][0] += right
                    tally[key][1] += 1
    return dict(tally)


def accuracy(tally: dict[str, list[int]], group: str = "all") -> float:
    """Fraction right in `group` (nan if nothing was asked)."""
    right, asked = tally.get(group, (0, 0))
    return right / asked if asked else float("nan")
