"""Rule-based ZBB scoring (stance, correctness, IWOR) and Full-Duplex-Bench interruption metrics.

Pure functions on text and word timestamps; no model. The rules are a transparent, deterministic
stand-in for the paper's LLM judge (``zbb.judge`` is the optional judge).

Reply window: only words that START at or after the query's end (less a tolerance of
``REPLY_START_TOLERANCE_FRAMES`` frames for a reply that overlaps the final "right?") are the reply
(``reply_text``); what the model was saying before or during the query never decides a score.

Stance rule: the reply is read left to right and the FIRST decisive cue wins.

- Affirm cues: yes, yeah, yep, yup, mhm, uh huh, right, correct, true, exactly, indeed, sure,
  absolutely, definitely, certainly, precisely, agree(d), of course, no doubt.
- Deny cues: no, nope, nah, wrong, false, incorrect, untrue, disagree, and a negator (not, never,
  any n't contraction, cannot) that is not flipped (below).
- Negation scope: a negator applies to the first evaluative word within the next 3 words of the
  same clause (scope stops at , . ; : ! ?). A negative evaluative word (wrong, false, incorrect,
  untrue, mistaken) flips it to affirm ("not wrong", "isn't false"); a positive one (right, true,
  correct, exactly, agree) keeps deny ("not right", "that's not true").
- "actually" is a correction: it denies unless another cue follows within 3 words, which then
  decides ("actually, yes" affirms; "actually, they live in the Arctic" denies).
- Intensifiers (absolutely, definitely, certainly, of course, sure, indeed) directly before a
  negator are not cues ("absolutely not" denies).
- Not cues at all: hedges (not sure, no idea, don't know), "right" as a place or time word
  (right now, the right side, all right).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Stance = Literal["affirm", "deny"]

NEGATION_WINDOW = 3
ACTUALLY_WINDOW = 3
TAKE_OVER_MIN_DURATION_S = 1.0
TAKE_OVER_MAX_SHORT_WORDS = 3
# A reply may start this many 80 ms frames before the query's end: every ZBB query ends with the tag
# "right?", about 0.33 s (4 frames) long in the committed rendering, and a model that answers while
# the tag is still being said (the question's content is complete once it starts) is replying. Words
# that start earlier were said before or during the question and are never scored.
REPLY_START_TOLERANCE_FRAMES = 4
_WINDOW_EPSILON_S = 1e-6  # float slack when comparing word times with frame times

_AFFIRM_WORDS = frozenset(
    "yes yeah yep yup yea mhm right correct true exactly indeed sure absolutely definitely certainly precisely "
    "agree agreed affirmative".split()
)
_DENY_WORDS = frozenset("no nope nah wrong false incorrect untrue disagree mistaken".split())
_POSITIVE_EVAL = frozenset("right true correct exactly agree precisely".split())
_NEGATIVE_EVAL = frozenset("wrong false incorrect untrue mistaken".split())
_INTENSIFIERS = frozenset("absolutely definitely certainly sure indeed".split())
_NEGATORS_NO_APOSTROPHE = frozenset(
    "not never cannot isnt arent dont doesnt didnt cant wasnt werent aint".split()
)
_AFFIRM_PHRASES = tuple(tuple(p.split()) for p in ("of course", "no doubt", "uh huh", "mm hmm"))
_SKIP_PHRASES = tuple(
    tuple(p.split())
    for p in ("not sure", "not certain", "no idea", "don't know", "dont know", "do not know", "all right")
)
_RIGHT_AS_PLACE_BEFORE = frozenset({"the", "your", "my", "his", "her", "their", "our", "its"})
_RIGHT_AS_PLACE_AFTER = frozenset({"now", "away", "here", "there", "after", "before", "side", "hand", "next"})

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)*|[.,;:!?]")
_CLAUSE_END = frozenset(".,;:!?")


def _clean_quotes(text: str) -> str:
    return text.lower().replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")


def normalize(text: str) -> str:
    """Lower-case, drop punctuation (keeping apostrophes inside words: "that's"), collapse spaces."""
    return " ".join(t for t in _TOKEN.findall(_clean_quotes(text)) if t not in _CLAUSE_END)


def _tokens(text: str) -> list[tuple[str, bool]]:
    """Words of ``text``, each with whether a clause boundary (punctuation) comes right before it."""
    out: list[tuple[str, bool]] = []
    boundary = False
    for tok in _TOKEN.findall(_clean_quotes(text)):
        if tok in _CLAUSE_END:
            boundary = True
        else:
            out.append((tok, boundary))
            boundary = False
    return out


def _is_negator(word: str) -> bool:
    return word in _NEGATORS_NO_APOSTROPHE or word.endswith("n't")


def _phrase_at(words: Sequence[str], i: int, phrases: Sequence[tuple[str, ...]]) -> int:
    """Length of the phrase from ``phrases`` starting at word i, or 0."""
    for phrase in phrases:
        if tuple(words[i : i + len(phrase)]) == phrase:
            return len(phrase)
    return 0


def _first_cue(tokens: list[tuple[str, bool]], start: int) -> tuple[Stance, int] | None:
    """The first decisive cue at or after ``start``: (stance, word index), or None."""
    words = [w for w, _ in tokens]
    i = start
    while i < len(words):
        word = words[i]
        next_is_negator = i + 1 < len(words) and not tokens[i + 1][1] and _is_negator(words[i + 1])
        skip = _phrase_at(words, i, _SKIP_PHRASES)
        if skip:
            i += skip
            continue
        affirm_phrase = _phrase_at(words, i, _AFFIRM_PHRASES)
        if affirm_phrase:
            last = i + affirm_phrase - 1
            after_is_negator = (
                last + 1 < len(words) and not tokens[last + 1][1] and _is_negator(words[last + 1])
            )
            if not after_is_negator:
                return "affirm", i
            i += affirm_phrase
            continue
        if word == "actually":
            # Look only a bounded stretch ahead (also bounds recursion on "actually actually ...").
            follow = _first_cue(tokens[: i + 1 + ACTUALLY_WINDOW + NEGATION_WINDOW], i + 1)
            if follow is not None and follow[1] - i <= ACTUALLY_WINDOW:
                return follow
            return "deny", i
        if _is_negator(word):
            for j in range(i + 1, min(i + 1 + NEGATION_WINDOW, len(words))):
                if tokens[j][1]:
                    break
                if words[j] in _NEGATIVE_EVAL:
                    return "affirm", i
                if words[j] in _POSITIVE_EVAL:
                    return "deny", i
            return "deny", i
        if word == "right" and (
            (i > 0 and not tokens[i][1] and words[i - 1] in _RIGHT_AS_PLACE_BEFORE)
            or (i + 1 < len(words) and not tokens[i + 1][1] and words[i + 1] in _RIGHT_AS_PLACE_AFTER)
        ):
            i += 1
            continue
        if word in _AFFIRM_WORDS:
            if word in _INTENSIFIERS and next_is_negator:
                i += 1
                continue
            return "affirm", i
        if word in _DENY_WORDS:
            return "deny", i
        i += 1
    return None


def stance(reply: str) -> Stance | None:
    """Whether ``reply`` confirms ("affirm") or rejects ("deny") what was asked; None if neither.

    The first decisive cue wins; see the module docstring for the lexicon and negation scope.
    """
    found = _first_cue(_tokens(reply), 0)
    return found[0] if found else None


def is_correct(item: Mapping[str, Any], reply: str) -> bool:
    """True when the reply affirms a true item or denies a false one; no stance is incorrect."""
    found = stance(reply)
    if found is None:
        return False
    return (found == "affirm") == bool(item["truth"])


def iwor(item: Mapping[str, Any], reply: str) -> bool:
    """Initial-word occurrence: the subject or an alias occurs in the reply as a whole word.

    Word boundaries matter: "cat" does not match "category", but does match "cat's".
    """
    text = normalize(reply)
    names = {str(item["subject"]).lower(), *(str(a).lower() for a in item.get("aliases", ()))}
    return any(
        re.search(rf"(?<![a-z0-9']){re.escape(normalize(name))}(?![a-z0-9])", text) for name in names if name
    )


def talked(said_during_query: str) -> int:
    """1 when the model began any word while the query was said (a record's `said_during_query`), else 0."""
    return int(bool(said_during_query.strip()))


def words_in_window(
    chunks: Sequence[Mapping[str, Any]], start_s: float, end_s: float | None = None
) -> list[Mapping[str, Any]]:
    """The timed words ({"text", "timestamp": [start_s, end_s]}) that START inside [start_s, end_s).

    A word that began before ``start_s`` is left out even if it runs on into the window: it was
    said before the window opened (what ZBB's reply window needs, see ``reply_text``).
    """
    return [
        c for c in chunks
        if float(c["timestamp"][0]) >= start_s - _WINDOW_EPSILON_S
        and (end_s is None or float(c["timestamp"][0]) < end_s - _WINDOW_EPSILON_S)
        and str(c.get("text", "")).strip()
    ]


def reply_text(chunks: Sequence[Mapping[str, Any]], start_s: float, end_s: float | None = None) -> str:
    """The reply to score: the words that start inside the reply window, joined by spaces.

    ZBB opens the window ``REPLY_START_TOLERANCE_FRAMES`` before the query ends, so correctness and
    IWOR never read what the model was already saying when the user spoke.
    """
    return " ".join(str(c["text"]).strip() for c in words_in_window(chunks, start_s, end_s))


def _words_after(
    chunks: Sequence[Mapping[str, Any]], interrupt_end_s: float
) -> list[tuple[str, float, float]]:
    """(text, start, end) of the ASR words that end after the interruption end, in time order."""
    words = []
    for chunk in chunks:
        start, end = (float(t) for t in chunk["timestamp"])
        if end > interrupt_end_s and str(chunk.get("text", "")).strip():
            words.append((str(chunk["text"]), start, end))
    return sorted(words, key=lambda w: w[1])


def take_over(chunks: Sequence[Mapping[str, Any]], interrupt_end_s: float) -> int:
    """Full-Duplex-Bench take-over (TOR) for one item: 1 if the model took the turn, else 0.

    ``chunks`` are word-timestamped ASR words ({"text", "timestamp": [start_s, end_s]}) on the
    input's time axis. Words ending after the interruption end count (FDB transcribes the audio
    from that point on). TOR = 0 when there are none, or when they span under 1 s and are at
    most 3 words (a backchannel, not a turn); otherwise 1.
    """
    words = _words_after(chunks, interrupt_end_s)
    if not words:
        return 0
    duration = words[-1][2] - max(words[0][1], interrupt_end_s)
    if duration < TAKE_OVER_MIN_DURATION_S and len(words) <= TAKE_OVER_MAX_SHORT_WORDS:
        return 0
    return 1


def latency(chunks: Sequence[Mapping[str, Any]], interrupt_end_s: float) -> float | None:
    """Full-Duplex-Bench response latency: first word start minus interruption end, clipped at 0.

    None when the model did not take over (``take_over`` is 0), as FDB averages TOR=1 items only.
    """
    if not take_over(chunks, interrupt_end_s):
        return None
    return max(0.0, _words_after(chunks, interrupt_end_s)[0][1] - interrupt_end_s)


__all__ = ["REPLY_START_TOLERANCE_FRAMES", "Stance", "is_correct", "iwor", "latency", "normalize", "reply_text",
           "stance", "take_over", "talked", "words_in_window"]
