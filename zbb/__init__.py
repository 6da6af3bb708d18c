"""The Zero-Buffer Benchmark (ZBB): yes/no questions whose key word is the very first word.

The item bank is ``zbb/items.jsonl``: 50 subjects x 2 descriptions (one true, one false) = 100
queries, one JSON object per line. Every line carries its own ``"version"`` (``"zbb-1"`` for this
bank), so lines stay self-describing when filtered or copied into result files; a bank mixing
versions is rejected. Fields of a line:

- ``version``: item-bank version, ``ITEM_BANK_VERSION``.
- ``id``: ``"<subject>-true"`` or ``"<subject>-false"``.
- ``subject``: one lower-case word, exactly the first word of ``text`` (bare plural or mass noun).
- ``truth``: whether the description is true of the subject.
- ``description``: 3-6 words, e.g. "they live in the desert"; never contains the subject itself.
- ``text``: ``f"{subject.capitalize()}, {description}, right?"`` -- no filler before the subject.
- ``aliases``: lower-case words that show the subject was heard (singular, plural, close synonyms);
  the subject is one of them.
- ``topic``: one word the model is asked to talk about first; never the subject or an alias. Both
  items of a subject share it, so true and false items differ only in the description.
- ``context``: ``f"Tell me about {topic}."``, the prompt that makes the model talk about something else.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import TypedDict

ITEMS_PATH = Path(__file__).with_name("items.jsonl")
ITEM_BANK_VERSION = "zbb-1"
N_SUBJECTS = 50

_REQUIRED_FIELDS: dict[str, type] = {
    "version": str,
    "id": str,
    "subject": str,
    "truth": bool,
    "description": str,
    "text": str,
    "aliases": list,
    "topic": str,
    "context": str,
}
_WORD = re.compile(r"[a-z]+")


class ZBBItem(TypedDict):
    """One ZBB query, as stored on a line of the item bank."""

    version: str
    id: str
    subject: str
    truth: bool
    description: str
    text: str
    aliases: list[str]
    topic: str
    context: str


def _check_item(obj: object) -> str | None:
    """Return why one parsed line is not a valid item, or None when it is."""
    if not isinstance(obj, dict):
        return "not a JSON object"
    for name, kind in _REQUIRED_FIELDS.items():
        if name not in obj:
            return f"missing field {name!r}"
        if not isinstance(obj[name], kind):
            return f"field {name!r} should be {kind.__name__}, got {type(obj[name]).__name__}"
    subject, aliases, topic = obj["subject"], obj["aliases"], obj["topic"]
    if obj["version"] != ITEM_BANK_VERSION:
        return f"version {obj['version']!r}, expected {ITEM_BANK_VERSION!r}"
    if not _WORD.fullmatch(subject):
        return f"subject {subject!r} is not one lower-case word"
    expected_id = f"{subject}-{'true' if obj['truth'] else 'false'}"
    if obj["id"] != expected_id:
        return f"id {obj['id']!r} should be {expected_id!r}"
    if not all(isinstance(a, str) and a == a.lower() and a.strip() for a in aliases):
        return "aliases must be non-empty lower-case strings"
    if subject not in aliases:
        return f"subject {subject!r} missing from its aliases"
    expected_text = f"{subject.capitalize()}, {obj['description']}, right?"
    if obj["text"] != expected_text:
        return f"text should be {expected_text!r} (subject first, no filler)"
    if set(re.findall(r"[a-z']+", obj["description"].lower())) & set(aliases):
        return "description repeats the subject or an alias"
    if not _WORD.fullmatch(topic) or topic in aliases:
        return f"topic {topic!r} must be one lower-case word other than the subject and its aliases"
    if obj["context"] != f"Tell me about {topic}.":
        return f"context should be 'Tell me about {topic}.'"
    return None


def load_items(path: str | Path = ITEMS_PATH, expected_subjects: int | None = N_SUBJECTS) -> list[ZBBItem]:
    """Read and validate an item bank; raise ValueError naming the first bad line.

    Checks every line (fields, types, version, id/text/context built from subject and description),
    unique ids, and that each subject has exactly one true and one false item. ``expected_subjects``
    (default 50) is the required number of subjects; pass None for a custom bank of any size.
    """
    path = Path(path)
    items: list[ZBBItem] = []
    first_line: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    truths: dict[str, list[bool]] = defaultdict(list)
    with path.open(encoding="utf-8") as handle:
        for lineno, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
            problem = _check_item(obj)
            if problem:
                raise ValueError(f"{path}:{lineno}: {problem}")
            if obj["id"] in seen_ids:
                raise ValueError(
                    f"{path}:{lineno}: duplicate id {obj['id']!r} (first on line {seen_ids[obj['id']]})"
                )
            seen_ids[obj["id"]] = lineno
            first_line.setdefault(obj["subject"], lineno)
            truths[obj["subject"]].append(obj["truth"])
            items.append(obj)
    for subject, values in truths.items():
        if sorted(values) != [False, True]:
            raise ValueError(
                f"{path}:{first_line[subject]}: subject {subject!r} needs exactly one true and one false item"
            )
    if expected_subjects is not None and len(truths) != expected_subjects:
        raise ValueError(f"{path}: {len(truths)} subjects, expected {expected_subjects}")
    return items


def load_bank(path: str | Path | None = None) -> list[ZBBItem]:
    """ZBB's 100 items (None), or those of another bank in ZBB's format (any number of subjects, e.g.
    development items for choosing steering settings without touching ZBB); a bad file is one ValueError
    that names the option."""
    if path is None:
        return load_items()
    if not Path(path).is_file():
        raise ValueError(f"--item-bank {path}: file not found (an items.jsonl in ZBB's format, docs/zbb.md)")
    try:
        return load_items(path, expected_subjects=None)
    except ValueError as err:
        raise ValueError(f"--item-bank: {err}") from None


__all__ = ["ITEMS_PATH", "ITEM_BANK_VERSION", "N_SUBJECTS", "ZBBItem", "load_bank", "load_items"]
