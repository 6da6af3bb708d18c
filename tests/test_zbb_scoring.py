"""Rule-based scoring: each stance rule, correctness, IWOR word boundaries, and FDB TOR/latency."""

import json
from pathlib import Path

import pytest

from zbb.scoring import (
    REPLY_START_TOLERANCE_FRAMES,
    is_correct,
    iwor,
    latency,
    normalize,
    reply_text,
    stance,
    take_over,
    words_in_window,
)

_REPO = Path(__file__).resolve().parents[1]
# The real Full-Duplex-Bench item lives in shared/ (inside the checkout, or beside it).
FDB_ITEM = next(
    (
        base / "shared/fixtures/fdb-user-interruption-example/1"
        for base in (_REPO, _REPO.parent)
        if (base / "shared/fixtures/fdb-user-interruption-example/1/output.json").is_file()
    ),
    None,
)

PENGUIN_FALSE = {
    "id": "penguins-false",
    "subject": "penguins",
    "aliases": ["penguin", "penguins"],
    "truth": False,
}
PENGUIN_TRUE = {**PENGUIN_FALSE, "id": "penguins-true", "truth": True}
CATS = {"id": "cats-true", "subject": "cats", "aliases": ["cat", "cats", "kitten", "kittens"], "truth": True}


def test_normalize():
    assert normalize("  That's   RIGHT!  Penguins, yes. ") == "that's right penguins yes"
    assert normalize("\u2018Isn\u2019t\u2019 it -- well-known?") == "isn't it well known"


@pytest.mark.parametrize(
    "reply",
    [
        "Yes.",
        "yeah they do",
        "Right!",
        "That's correct.",
        "True",
        "Exactly.",
        "That's right, they do.",
        "Yep",
        "uh-huh",
        "Of course!",
        "Absolutely.",
        "You're right about that",
        "I agree",
    ],
)
def test_affirmations(reply):
    assert stance(reply) == "affirm"


@pytest.mark.parametrize(
    "reply",
    [
        "No.",
        "Nope!",
        "not at all",
        "False.",
        "Wrong.",
        "That's incorrect",
        "That's not right.",
        "That is not true",
        "No, it swims.",
        "They don't live there",
        "Nah",
        "That isn\u2019t true",
        "Not exactly.",
        "Never.",
    ],
)
def test_denials(reply):
    assert stance(reply) == "deny"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("That's not wrong.", "affirm"),
        ("It isn't false", "affirm"),
        ("not incorrect", "affirm"),
        ("You are not mistaken", "affirm"),
        ("I don't think that's wrong", "affirm"),
        # The negator binds to the FIRST evaluative word in its window: "right" here, so deny.
        ("That's not right, it's wrong", "deny"),
        # Scope stops at punctuation: "No," is a denial of its own.
        ("No, that's wrong", "deny"),
        # Window is 3 words: "wrong" is the 4th word after "not".
        ("not in the desert wrong", "deny"),
        ("Absolutely not.", "deny"),
        ("Of course not", "deny"),
    ],
)
def test_negation_scope(reply, expected):
    assert stance(reply) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Actually, they live in the Antarctic.", "deny"),
        ("Actually, yes.", "affirm"),
        ("actually that's right", "affirm"),
        ("Actually no", "deny"),
        ("Actually, they live where it is cold, yes", "deny"),  # the "yes" is beyond the 3-word window
        ("Actually it is not wrong", "affirm"),  # "not" is within the window and decides
        (" ".join(["actually"] * 5000), "deny"),  # degenerate repetition: no recursion blow-up
    ],
)
def test_actually_is_a_correction_unless_a_cue_follows(reply, expected):
    assert stance(reply) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Yes, they do not live in the desert", "affirm"),
        ("No, yes, I mean yes", "deny"),
        ("So music is great. Yes.", "affirm"),
        ("Right now I'm talking about music, so no.", "deny"),
    ],
)
def test_first_decisive_cue_wins(reply, expected):
    assert stance(reply) == expected


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "Music has a long history.",
        "I'm not sure, maybe",
        "I have no idea",
        "Right now I love jazz",
        "on the right side",
        "Penguins? They live in Antarctica.",
        "all right, let me think",
    ],
)
def test_no_stance(reply):
    assert stance(reply) is None


def test_is_correct_combines_stance_and_truth():
    assert is_correct(PENGUIN_FALSE, "No, they live in Antarctica.") is True
    assert is_correct(PENGUIN_FALSE, "Yes, they do.") is False
    assert is_correct(PENGUIN_TRUE, "Yes, they do.") is True
    assert is_correct(PENGUIN_TRUE, "That's not true.") is False
    assert is_correct(PENGUIN_FALSE, "That's not right.") is True
    assert is_correct(PENGUIN_TRUE, "That's not wrong.") is True
    # Neither affirmation nor denial is never correct, whatever the truth.
    assert is_correct(PENGUIN_TRUE, "Music is lovely.") is False
    assert is_correct(PENGUIN_FALSE, "Music is lovely.") is False


def test_iwor_subject_aliases_and_word_boundaries():
    assert iwor(PENGUIN_FALSE, "No, penguins live in Antarctica.") is True
    assert iwor(PENGUIN_FALSE, "A penguin? No.") is True
    assert iwor(PENGUIN_FALSE, "PENGUINS!") is True
    assert iwor(PENGUIN_FALSE, "No, they live in Antarctica.") is False
    assert iwor(CATS, "That category is wrong.") is False
    assert iwor(CATS, "Concatenate the lists") is False
    assert iwor(CATS, "Yes, a cat's purr is lovely") is True
    assert iwor(CATS, "Yes, kittens purr.") is True
    assert iwor(CATS, "Yes, they purr") is False


def _chunk(text, start, end):
    return {"text": text, "timestamp": [start, end]}


@pytest.mark.skipif(FDB_ITEM is None, reason="shared/fixtures/fdb-user-interruption-example not found")
def test_fdb_fixture_take_over_and_latency():
    output = json.loads((FDB_ITEM / "output.json").read_text())
    interrupt = json.loads((FDB_ITEM / "interrupt.json").read_text())
    end_s = interrupt[0]["timestamp"][1]
    assert end_s == 13.144
    assert take_over(output["chunks"], end_s) == 1
    assert latency(output["chunks"], end_s) == pytest.approx(17.224 - 13.144, abs=1e-9)


def test_take_over_rules():
    end = 10.0
    assert take_over([], end) == 0
    assert latency([], end) is None
    # Words only before the interruption end do not count.
    assert take_over([_chunk("so", 8.0, 8.5), _chunk("music", 8.5, 9.9)], end) == 0
    # Short (< 1 s) and <= 3 words: a backchannel, not a take-over.
    short = [_chunk("yes", 10.2, 10.4), _chunk("I", 10.4, 10.5), _chunk("see", 10.5, 10.9)]
    assert take_over(short, end) == 0
    assert latency(short, end) is None
    # Short but 4 words: take-over.
    four = [*short, _chunk("ok", 10.9, 11.1)]
    assert take_over(four, end) == 1
    assert latency(four, end) == pytest.approx(0.2, abs=1e-12)
    # 1 s or longer with one word: take-over.
    assert take_over([_chunk("noooo", 11.0, 12.0)], end) == 1
    assert latency([_chunk("noooo", 11.0, 12.0)], end) == pytest.approx(1.0, abs=1e-12)


def test_latency_is_clipped_at_zero_for_a_word_spanning_the_end():
    chunks = [_chunk("well", 9.8, 10.3), _chunk("no", 10.3, 10.6), _chunk("penguins", 10.6, 11.2)]
    assert take_over(chunks, 10.0) == 1
    assert latency(chunks, 10.0) == 0.0


def _word(text, start):
    return {"text": text, "timestamp": [start, start + 0.08]}


def test_reply_text_reads_only_words_starting_in_the_window():
    # a monologue with cue words and the subject before the window, then the reply
    chunks = [_word(w, 0.08 * k) for k, w in enumerate("music is not boring and yes penguins do".split())]
    chunks += [_word("yes", 1.0), _word("they", 1.08), _word("do", 1.16), _word("later", 3.0)]
    reply = reply_text(chunks, 1.0, 2.0)
    assert reply == "yes they do"  # starts at the window's first frame: in; after its end: out
    assert is_correct(PENGUIN_TRUE, reply) and not iwor(PENGUIN_TRUE, reply)
    assert not is_correct(PENGUIN_TRUE, " ".join(c["text"] for c in chunks))  # read from the onset: "not" denies
    # a word that began before the window stays out even though it runs on into it
    assert words_in_window([{"text": "penguins", "timestamp": [0.9, 1.3]}], 1.0) == []
    assert reply_text([], 0.0) == "" and REPLY_START_TOLERANCE_FRAMES == 4
