"""scripts/facts_by_tagging.py: ZBB answers split by whether codebook 0 named every word of the description."""

from __future__ import annotations

from pathlib import Path

import pytest

from duplex_steer.engine.tag_codec import TagCodec
from duplex_steer.organism.checkpoint import WEIGHTS_DIR
from duplex_steer.speech.zbb_audio import read_items
from tests.conftest import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "facts_by_tagging.py"
FLITE = Path(__file__).resolve().parents[1] / "zbb" / "renderings" / "flite-slt"


@pytest.fixture(scope="module")
def script():
    return load_file_module(SCRIPT, "facts_by_tagging")


def test_a_word_outside_the_codecs_classes_is_never_named(script) -> None:
    codec = TagCodec.load(WEIGHTS_DIR)
    item = next(it for it in read_items() if it["id"] == "penguins-true")
    assert script.description_heard(codec, FLITE, [item]) == {"penguins-true": True}  # a training voice
    outside = script.description_heard(codec, FLITE, [dict(item, description=item["description"] + " zebu")])
    assert outside == {"penguins-true": False} and "zebu" not in codec.labels


def test_split_counts_only_questions_heard_in_silence(script) -> None:
    records = [
        {"id": "a", "condition": "no_interrupt", "correct": 1, "talked": 0},
        {"id": "a", "condition": "interrupt", "correct": 0, "talked": 1},  # another condition
        {"id": "b", "condition": "no_interrupt", "correct": 0, "talked": 0},
        {"id": "c", "condition": "no_interrupt", "correct": 1, "talked": 1},  # talked over: left out
        {"id": "d", "condition": "no_interrupt", "correct": 1, "talked": 0},
    ]
    parts = script.split_correctness(records, {"a": True, "b": True, "c": True, "d": False})
    assert parts == {True: (1, 2), False: (1, 1)}
    assert script.cell(1, 2).startswith("0.50 [") and script.cell(0, 0) == "n/a"
