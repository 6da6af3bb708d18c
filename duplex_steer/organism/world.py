"""The organism's world: topics it talks about, subjects it answers about, the facts, its vocabulary.

Subjects and facts come from the ZBB item bank (zbb/items.jsonl), so ZBB runs on the organism
unchanged: a ZBB subject's true description is true, every other description is false of it.
`EXTRA_FACTS` are training-only subjects (none is a ZBB subject or alias) whose facts reuse ZBB
descriptions (the organism's world, chosen to be plausible, not claims about animals). Every subject
also has a second true description (`World.second_truth`, drawn once from the description pool;
arbitrary, a fact of this toy world only). Interruptions in training may be about any subject but never
use a ZBB description of a ZBB subject: no ZBB fact pair is ever an interruption in training, and
a ZBB subject's true interruptions use its second truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from ..engine.text import SPECIAL_NAMES, WORD_START, PieceTokenizer
from ..resources import zbb_items_path
from ..speech.zbb_audio import BUFFER_TEXT

ZBB_ITEMS = zbb_items_path()

# Training-only subjects and their one true description (all descriptions come from the ZBB pool).
EXTRA_FACTS: dict[str, str] = {
    "tigers": "they hunt other animals", "wolves": "they hunt at night", "rabbits": "they have fluffy fur",
    "ducks": "they swim in lakes", "sheep": "they eat only grass", "goats": "they give milk",
    "bears": "they live in the forest", "monkeys": "they climb tall trees", "parrots": "they have soft feathers",
    "eagles": "they fly above clouds", "crabs": "they crawl on eight legs", "pigs": "they are very large",
    "mice": "they are very small", "zebras": "they eat only leaves", "oranges": "they grow on tall trees",
    "grapes": "they taste sweet", "potatoes": "they grow under the ground", "buses": "they roll on roads",
    "trucks": "they have ten wheels", "ships": "they float on water", "kites": "they fly in the clouds",
    "seals": "they live in oceans", "pancakes": "people eat them for breakfast", "hats": "people wear them on heads",
}

# What the organism says about a topic: sentence templates, none holding a yes/no cue of zbb.scoring.
MONOLOGUE_TEMPLATES = (
    "{t} is a big part of life", "many people love {t}", "we can learn a lot from {t}",
    "{t} has a long story", "i think {t} is wonderful", "people study {t} every day",
    "there is so much to say about {t}", "{t} can be fun for everyone",
)
BACKCHANNELS = ("yeah", "mhm", "okay", "uh huh", "wow", "hmm", "oh")
BUFFER = BUFFER_TEXT  # what a buffered interruption starts with (defined once, by the benchmark)
FALSE_DESCRIPTIONS = 1  # false descriptions per subject beside its ZBB one: the fact table (5 before the ablation of 2026-12-03: model card)
YES, NO = "yes", "no"


@dataclass(frozen=True)
class Fact:
    subject: str
    description: str
    truth: bool
    in_zbb: bool  # this exact (subject, description) pair is a ZBB item

    @property
    def question(self) -> str:
        """The spoken question, in the ZBB item format."""
        return f"{self.subject.capitalize()}, {self.description}, right?"

    @property
    def answer(self) -> list[str]:
        return [YES if self.truth else NO, self.subject]


@dataclass
class World:
    """Topics, subjects, facts and the model's word list, read from the ZBB bank plus `EXTRA_FACTS`."""

    items: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, items_path: str | Path = ZBB_ITEMS) -> World:
        lines = Path(items_path).read_text(encoding="utf-8").splitlines()
        return cls([json.loads(line) for line in lines if line.strip()])

    @cached_property
    def topics(self) -> list[str]:
        return sorted({it["topic"] for it in self.items})

    @cached_property
    def zbb_subjects(self) -> list[str]:
        return sorted({it["subject"] for it in self.items})

    @cached_property
    def extra_subjects(self) -> list[str]:
        aliases = {a for it in self.items for a in it["aliases"]}
        clash = sorted(set(EXTRA_FACTS) & aliases)
        if clash:
            raise ValueError(f"training-only subjects {clash} are ZBB subjects or aliases")
        return sorted(EXTRA_FACTS)

    @cached_property
    def true_description(self) -> dict[str, str]:
        out = {it["subject"]: it["description"] for it in self.items if it["truth"]}
        out.update(EXTRA_FACTS)
        return out

    @cached_property
    def descriptions(self) -> list[str]:
        return sorted({it["description"] for it in self.items})

    @cached_property
    def zbb_pairs(self) -> set[tuple[str, str]]:
        return {(it["subject"], it["description"]) for it in self.items}

    @staticmethod
    def _seed(subject: str) -> int:
        return sum(ord(ch) * (i + 1) for i, ch in enumerate(subject))

    def second_truth(self, subject: str) -> str:
        """A second true description of `subject` (never one of its ZBB descriptions), fixed by its name."""
        banned = {self.true_description[subject]} | {it["description"] for it in self.items
                                                     if it["subject"] == subject}
        pool = [d for d in self.descriptions if d not in banned]
        return pool[int(np.random.default_rng(self._seed(subject) + 7).integers(len(pool)))]

    def candidate_descriptions(self, subject: str, others: int = FALSE_DESCRIPTIONS,
                               interruption: bool = False) -> tuple[list[str], list[str]]:
        """(true descriptions, false descriptions) a question about `subject` may use.

        Silent questions: both true ones, and as false ones its ZBB false one (if any) plus `others` drawn
        once from a generator seeded by the subject's name. Interruptions: never a ZBB pair, so a ZBB
        subject's ZBB descriptions are left out (its true interruptions use the second truth)."""
        zbb_own = {it["description"] for it in self.items if it["subject"] == subject}
        true = [self.true_description[subject], self.second_truth(subject)]
        false_zbb = sorted(zbb_own - set(true))
        rest = [d for d in self.descriptions if d not in set(true) | zbb_own]
        pick = np.random.default_rng(self._seed(subject)).choice(len(rest), size=others, replace=False)
        false = [rest[i] for i in sorted(pick)]
        if interruption:
            return [d for d in true if d not in zbb_own], false
        return true, false_zbb + false

    def fact(self, subject: str, description: str) -> Fact:
        truth = description in (self.true_description[subject], self.second_truth(subject))
        return Fact(subject, description, truth, (subject, description) in self.zbb_pairs)

    def development_items(self) -> list[dict]:
        """Items in ZBB's format about the training-only subjects (none is a ZBB subject, alias or fact):
        per subject its true description and its false one (the false description its silent questions
        use), the topic drawn once by its name from ZBB's topics. A development bank for choosing steering
        settings without touching ZBB. Unlike ZBB's facts, these pairs also occur as interruptions in
        training (`candidate_descriptions`), so the organism may hear them better while talking."""
        out = []
        for subject in self.extra_subjects:
            topic = self.topics[int(np.random.default_rng(self._seed(subject) + 11).integers(len(self.topics)))]
            false = self.candidate_descriptions(subject)[1][0]
            for truth, description in ((True, self.true_description[subject]), (False, false)):
                out.append({"version": self.items[0]["version"], "id": f"{subject}-{'true' if truth else 'false'}",
                            "subject": subject, "truth": truth, "description": description,
                            "text": Fact(subject, description, truth, False).question, "aliases": [subject],
                            "topic": topic, "context": f"Tell me about {topic}."})
        return out

    def monologue_sentences(self, topic: str) -> list[list[str]]:
        return [t.format(t=topic).split() for t in MONOLOGUE_TEMPLATES]

    @cached_property
    def model_words(self) -> list[str]:
        """Every word the organism can say, in a fixed order."""
        words: dict[str, None] = {YES: None, NO: None}
        for topic in self.topics:
            for sentence in self.monologue_sentences(topic):
                words.update(dict.fromkeys(sentence))
        words.update(dict.fromkeys(self.zbb_subjects + self.extra_subjects))
        return list(words)

    def tokenizer(self) -> PieceTokenizer:
        """Specials 0-3, then one piece per model word (ids fixed by `model_words`' order)."""
        return PieceTokenizer([f"<{SPECIAL_NAMES[i]}>" for i in range(4)] + [WORD_START + w for w in self.model_words])
