"""Synthetic full-duplex conversations for training the organism, as symbolic timelines and as codes.

One episode follows a ZBB scenario's shape: the user says "Tell me about <topic>.", the model talks
about it (a monologue), the user drops stray words and backchannels that the model must ignore,
then one of:
- `silent`: the monologue ends, and after a pause the user asks a question (any subject);
- `buffered`: the user interrupts the monologue with "Um, excuse me, <question>"; the model stops at
  "excuse" and answers after the question;
- `zero_buffer`: the user interrupts with the bare question (`zero_buffer_rate`: none by default since
  recipe zq, so a bare question while it talks is never shown to it and its inertia is made by the data);
  the model stops at the question's second word (one word could be a stray word) and answers;
- `retopic`: the user asks about another topic once the model is quiet; the model talks again;
- `none`: silence.
Interruptions (buffered and zero-buffer) never use a ZBB fact pair: about a ZBB subject they ask
its second truth or a description that is not one of its ZBB items. The answer is "yes <subject>" or
"no <subject>". After an answer, while the episode has room, the user may ask follow-up questions while
the model is silent (`followup_rate`): more facts per episode. Every user utterance comes in
`EpisodeConfig.variants` acoustic variants (the training voices, clean and augmented: see
`speech.SpeechBank.user`), so the model hears words, not one code sequence per word.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..engine.tag_codec import CONTEXT_FRAMES
from ..engine.text import PAD
from .speech import SpeechBank
from .world import BACKCHANNELS, BUFFER, FALSE_DESCRIPTIONS, Fact, World

KINDS = ("silent", "buffered", "zero_buffer", "retopic", "none")


@dataclass
class EpisodeConfig:
    """Mix and timing of the generated conversations (frames of 80 ms)."""

    frames: int = 224
    zero_buffer_rate: float = 0.0  # fraction of episodes whose question is a zero-buffer interruption (0.01 before zq)
    buffered_rate: float = 0.25
    retopic_rate: float = 0.12
    none_rate: float = 0.08  # the rest are silent questions
    stray_every: float = 14.0  # mean frames between the user's stray words while the model talks
    monologue_frames: tuple[int, int] = (30, 80)  # (30, 110) before zq
    reaction_frames: tuple[int, int] = (2, 3)  # pause before the model starts talking or answering
    quiet_frames: tuple[int, int] = (3, 18)  # pause before a silent question
    interrupt_after: tuple[int, int] = (6, 40)  # monologue frames spoken before an interruption
    zbb_subject_rate: float = 0.8  # questions about a ZBB subject (the rest: training-only subjects; 0.6 before zq)
    interruption_zbb_subject_rate: float | None = None  # the same for interruptions (None: zbb_subject_rate)
    variants: int = 18  # acoustic variants of every user utterance (8 training voices clean + 10 augmented)
    # share of the augmented variants also stored lossy (ogg Vorbis, as ZBB's renderings and shared recordings
    # are; `speech.augment.lossy_round_trip`): the speech bank's setting, kept here with the other variants'
    lossy_variants: float = 0.5  # 0 before zq
    # share of the augmented variants whose pauses between words are cut to 5-40 ms first (`speech.augment.
    # close_pauses`): festival runs "excuse me, Penguins" together; the speech bank's setting, as lossy_variants
    pause_variants: float = 0.5  # 0 before zq
    followup_rate: float = 0.7  # chance of another silent question after each answer, while there is room
    false_descriptions: int = FALSE_DESCRIPTIONS  # drawn per subject beside its ZBB false one (the fact table)
    # share of the user's speech frames whose codebook-0 tag is replaced by a class drawn uniformly (silence or
    # any word), from a generator of its own (0: episodes as before): the codec mistags a voice it never heard
    # (held out, 60% of the frames right against 90% in the training voices), and a model that heard only
    # clean tags does not learn to hear through that
    tag_noise: float = 0.0
    # the same, only for the user's speech frames while the model is talking (its own words on its stream):
    # a model that hears worse while it talks, its inertia made by the data (Moshi's is not: model card)
    tag_noise_while_talking: float = 0.0

    def kind_probabilities(self) -> dict[str, float]:
        p = {"zero_buffer": self.zero_buffer_rate, "buffered": self.buffered_rate, "retopic": self.retopic_rate,
             "none": self.none_rate}
        p["silent"] = 1.0 - sum(p.values())
        if p["silent"] < 0:
            raise ValueError("episode kind rates add up to more than 1")
        return p


@dataclass
class Episode:
    """Codes [17, frames] (text, 8 model, 8 user) and what happened where."""

    codes: torch.Tensor
    kind: str
    events: list[dict[str, Any]] = field(default_factory=list)


def draw_fact(world: World, rng: np.random.Generator, config: EpisodeConfig,
              candidates: dict[tuple[str, bool], tuple[list[str], list[str]]], interruption: bool = False) -> Fact:
    """A question's fact: a ZBB subject with probability `config.zbb_subject_rate` (for an interruption
    `config.interruption_zbb_subject_rate` when set), else a training-only one; half the questions true, from
    the subject's candidate descriptions (`World.candidate_descriptions` with `config.false_descriptions`,
    cached in `candidates`). One draw decides the pool either way, so the rates change no other draw."""
    rate = config.zbb_subject_rate
    if interruption and config.interruption_zbb_subject_rate is not None:
        rate = config.interruption_zbb_subject_rate
    pool = world.zbb_subjects if rng.random() < rate else world.extra_subjects
    subject = pool[rng.integers(len(pool))]
    key = (subject, interruption)
    if key not in candidates:
        candidates[key] = world.candidate_descriptions(subject, others=config.false_descriptions,
                                                       interruption=interruption)
    true, false = candidates[key]
    options = true if rng.random() < 0.5 else false  # half the questions are true
    return world.fact(subject, options[rng.integers(len(options))])


class EpisodeGenerator:
    """Draws episodes from a seeded generator; `world`, `bank` and `tokenizer` fix the vocabulary."""

    def __init__(self, world: World, bank: SpeechBank, config: EpisodeConfig | None = None, seed: int = 0):
        self.world, self.bank, self.config = world, bank, config or EpisodeConfig()
        self.rng = np.random.default_rng(seed)
        self.tag_rng = np.random.default_rng([seed, 17])  # the tag noises only: the episodes' draws stay the same
        self.tok = world.tokenizer()
        self._ids = {p[1:]: i for i, p in enumerate(self.tok.pieces) if i > 3}
        self._silence = bank.silence()
        self._candidates: dict[tuple[str, bool], tuple[list[str], list[str]]] = {}

    # --- building blocks --------------------------------------------------------------------------
    def _user(self, text: str):
        return self.bank.user(text, variant=int(self.rng.integers(self.config.variants)))

    def _question_fact(self, interruption: bool) -> Fact:
        return draw_fact(self.world, self.rng, self.config, self._candidates, interruption)

    def _stray_text(self) -> str:
        rng, w = self.rng, self.world
        r = rng.random()
        if r < 0.45:
            return BACKCHANNELS[rng.integers(len(BACKCHANNELS))].capitalize() + "."
        subjects = w.zbb_subjects + w.extra_subjects
        return subjects[rng.integers(len(subjects))].capitalize() + "."

    def _monologue_words(self, topic: str, frames: int) -> list[str]:
        sentences = self.world.monologue_sentences(topic)
        words: list[str] = []
        budget = frames
        while budget > 0:
            sentence = sentences[self.rng.integers(len(sentences))]
            words.extend(sentence)
            budget -= sum(self.bank.model_word(x).frames for x in sentence)
        return words

    def _noise_tags(self, tags: torch.Tensor, share: float, where: np.ndarray | None = None) -> None:
        """Replace about `share` of `tags` (in place; only where `where` is true) by uniformly drawn classes."""
        hit = torch.from_numpy(self.tag_rng.random(len(tags)) < share)
        if where is not None:
            hit &= torch.from_numpy(where)
        tags[hit] = torch.from_numpy(self.tag_rng.integers(0, len(self.bank.codec.labels), int(hit.sum())))

    # --- one episode ------------------------------------------------------------------------------
    def episode(self, kind: str | None = None) -> Episode:
        c, rng = self.config, self.rng
        if kind is None:
            probs = c.kind_probabilities()
            kind = list(probs)[rng.choice(len(probs), p=np.array(list(probs.values())))]
        T = c.frames
        text = torch.full((T,), PAD, dtype=torch.long)
        model = self._silence[:, None].repeat(1, T).clone()
        user = self._silence[:, None].repeat(1, T).clone()
        events: list[dict[str, Any]] = []
        user_busy = np.zeros(T + 256, bool)
        model_talking = np.zeros(T, bool)

        def put_user(utt, start: int, what: str, **info) -> int:
            end = min(T, start + utt.codes.shape[1])  # with the frames after it the codec still hears it in
            user[:, start:end] = utt.codes[:, : end - start]
            speech = slice(start, min(T, start + utt.speech_frames))
            if c.tag_noise > 0:
                self._noise_tags(user[0, speech], c.tag_noise)
            if c.tag_noise_while_talking > 0:  # the model's words are laid out before the user's overlapping ones
                self._noise_tags(user[0, speech], c.tag_noise_while_talking, where=model_talking[speech])
            user_busy[max(0, start - CONTEXT_FRAMES) : start + utt.frames + CONTEXT_FRAMES] = True
            events.append({"what": what, "start": start, "end": start + utt.frames - 1, "text": utt.text,
                           "variant": utt.variant, **info})
            return start + utt.frames - 1  # the post-frame is silence again

        def say(words: list[str], start: int, stop: int | None = None) -> int:
            """Model words from `start` (one silent frame between words); cut at `stop`. Returns the end."""
            t = start
            for word in words:
                utt = self.bank.model_word(word)
                if t >= T or (stop is not None and t >= stop):
                    break
                text[t] = self._ids[word]
                end = min(T, t + utt.frames, stop if stop is not None else T)
                model[:, t:end] = utt.codes[:, : end - t]
                model_talking[t:end] = True
                t += utt.frames
            return min(t, stop) if stop is not None else t

        topic = self.world.topics[rng.integers(len(self.world.topics))]
        t = int(rng.integers(0, 3))
        t = put_user(self._user(f"Tell me about {topic}."), t, "context", topic=topic)
        start = t + int(rng.integers(*c.reaction_frames, endpoint=True))
        length = int(rng.integers(*c.monologue_frames, endpoint=True))
        words = self._monologue_words(topic, length)
        stop = None
        question = None
        if kind in ("buffered", "zero_buffer"):
            onset = start + int(rng.integers(*c.interrupt_after, endpoint=True))
            fact = self._question_fact(interruption=True)
            utt = self._user(f"{BUFFER} {fact.question}" if kind == "buffered" else fact.question)
            # stop when the interruption is unmistakable: "excuse" (buffered) or the question's second word
            stop = onset + utt.word_frames[1] + 1
            question = (utt, onset, fact)
        end = say(words, start, stop)
        # stray words while the model talks (never overlapping another user utterance)
        pos = start + int(rng.exponential(c.stray_every))
        limit = (question[1] if question else end) - CONTEXT_FRAMES  # codes stay those of the utterance alone
        while pos < limit:
            utt = self._user(self._stray_text())
            if not user_busy[pos : pos + utt.frames + 1].any() and pos + utt.frames < limit:
                put_user(utt, pos, "stray")
            pos += utt.frames + 1 + int(rng.exponential(c.stray_every))
        if kind == "silent":
            fact = self._question_fact(interruption=False)
            onset = end + int(rng.integers(*c.quiet_frames, endpoint=True))
            question = (self._user(fact.question), onset, fact)
        if question is not None:
            utt, onset, fact = question
            if onset + utt.frames + 8 < T:
                q_end = put_user(utt, onset, kind, subject=fact.subject, truth=fact.truth, in_zbb=fact.in_zbb,
                                 model_stopped=stop)
                end = say(fact.answer, q_end + int(rng.integers(*c.reaction_frames, endpoint=True)))
                while rng.random() < c.followup_rate:  # follow-up questions while the model is silent
                    fact = self._question_fact(interruption=False)
                    utt = self._user(fact.question)
                    onset = end + int(rng.integers(*c.quiet_frames, endpoint=True))
                    if onset + utt.frames + 8 >= T:
                        break
                    q_end = put_user(utt, onset, "followup", subject=fact.subject, truth=fact.truth,
                                     in_zbb=fact.in_zbb)
                    end = say(fact.answer, q_end + int(rng.integers(*c.reaction_frames, endpoint=True)))
        elif kind == "retopic":
            onset = end + int(rng.integers(*c.quiet_frames, endpoint=True))
            topic2 = self.world.topics[rng.integers(len(self.world.topics))]
            utt = self._user(f"Tell me about {topic2}.")
            if onset + utt.frames + 8 < T:
                q_end = put_user(utt, onset, "context", topic=topic2)
                s2 = q_end + int(rng.integers(*c.reaction_frames, endpoint=True))
                say(self._monologue_words(topic2, T - s2), s2)
        codes = torch.cat([text[None], model, user], 0)
        return Episode(codes, kind, events)

    def batch(self, n: int) -> torch.Tensor:
        """[n, 17, frames] codes of n fresh episodes."""
        return torch.stack([self.episode().codes for _ in range(n)])


def dialogue_turns(world: World, n_dialogues: int = 16, seed: int = 0) -> list[list[str]]:
    """Turn-by-turn dialogues for fitting the perception vector: "Tell me about <topic>." (the model
    talks), a question while it is silent, another topic, another question. Questions use
    training-only subjects, so no ZBB subject is ever in the fitting data."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_dialogues):
        turns = []
        for _ in range(2):
            turns.append(f"Tell me about {world.topics[rng.integers(len(world.topics))]}.")
            subject = world.extra_subjects[rng.integers(len(world.extra_subjects))]
            true, false = world.candidate_descriptions(subject)
            options = true + false
            turns.append(world.fact(subject, options[rng.integers(len(options))]).question)
        out.append(turns)
    return out
