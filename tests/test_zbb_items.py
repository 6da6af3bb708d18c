"""The ZBB item bank: format, balance, and that load_items rejects bad banks by line."""

import json
from pathlib import Path

import pytest

from zbb import ITEM_BANK_VERSION, ITEMS_PATH, load_items
from zbb.scoring import iwor, stance


@pytest.fixture(scope="module")
def items():
    return load_items()


def test_bank_has_50_subjects_each_true_and_false(items):
    assert len(items) == 100
    assert len({i["id"] for i in items}) == 100
    subjects = {i["subject"] for i in items}
    assert len(subjects) == 50
    for subject in subjects:
        assert sorted(i["truth"] for i in items if i["subject"] == subject) == [False, True]


def test_every_item_is_zero_buffer(items):
    for item in items:
        assert item["version"] == ITEM_BANK_VERSION == "zbb-1"
        first_word = item["text"].split(",")[0]
        assert first_word == item["subject"].capitalize()
        assert item["text"] == f"{item['subject'].capitalize()}, {item['description']}, right?"
        assert 3 <= len(item["description"].split()) <= 6
        assert item["subject"] in item["aliases"]


def test_contexts_talk_about_something_else(items):
    topics = {i["topic"] for i in items}
    assert 20 <= len(topics) <= 30
    all_aliases = {a for i in items for a in i["aliases"]}
    for item in items:
        assert item["context"] == f"Tell me about {item['topic']}."
        assert item["topic"] not in all_aliases
        assert not iwor(item, item["context"])


def test_pairs_share_context_and_have_similar_length(items):
    by_subject = {}
    for item in items:
        by_subject.setdefault(item["subject"], []).append(item)
    for pair in by_subject.values():
        assert pair[0]["context"] == pair[1]["context"]
        assert abs(len(pair[0]["description"].split()) - len(pair[1]["description"].split())) <= 1


def test_descriptions_carry_no_stance_cue(items):
    # Otherwise a reply that just echoes the question would be scored as an answer.
    for item in items:
        assert stance(item["description"]) is None, item["id"]


def test_known_example_line(items):
    by_id = {i["id"]: i for i in items}
    assert by_id["penguins-false"]["text"] == "Penguins, they live in the desert, right?"
    assert by_id["penguins-false"]["truth"] is False
    assert by_id["penguins-true"]["truth"] is True


def _write(tmp_path: Path, lines: list[dict]) -> Path:
    path = tmp_path / "bank.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _lines() -> list[dict]:
    return [json.loads(line) for line in ITEMS_PATH.read_text().splitlines()]


def test_custom_bank_of_any_size_when_not_checking_count(tmp_path):
    assert len(load_items(_write(tmp_path, _lines()[:4]), expected_subjects=None)) == 4
    with pytest.raises(ValueError, match="2 subjects, expected 50"):
        load_items(_write(tmp_path, _lines()[:4]))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(text="Well, " + d["text"]), r"bank.jsonl:3: text should be"),
        (lambda d: d.update(version="zbb-0"), r"bank.jsonl:3: version 'zbb-0'"),
        (lambda d: d.pop("aliases"), r"bank.jsonl:3: missing field 'aliases'"),
        (lambda d: d.update(truth="yes"), r"bank.jsonl:3: field 'truth' should be bool"),
        (lambda d: d.update(id="x-true"), r"bank.jsonl:3: id 'x-true' should be"),
        (
            lambda d: d.update(topic=d["subject"], context=f"Tell me about {d['subject']}."),
            r"bank.jsonl:3: topic",
        ),
    ],
)
def test_bad_line_is_named(tmp_path, edit, message):
    lines = _lines()
    edit(lines[2])
    with pytest.raises(ValueError, match=message):
        load_items(_write(tmp_path, lines))


def test_duplicate_and_unpaired_items_are_rejected(tmp_path):
    lines = _lines()
    with pytest.raises(ValueError, match=r"bank.jsonl:3: duplicate id 'penguins-true' \(first on line 1\)"):
        load_items(_write(tmp_path, [lines[0], lines[1], lines[0]]))
    with pytest.raises(
        ValueError, match=r"bank.jsonl:1: subject 'penguins' needs exactly one true and one false"
    ):
        load_items(_write(tmp_path, [lines[0], *lines[2:]]))
    path = tmp_path / "broken.jsonl"
    path.write_text(ITEMS_PATH.read_text() + "{not json\n")
    with pytest.raises(ValueError, match=r"broken.jsonl:101: not valid JSON"):
        load_items(path)
