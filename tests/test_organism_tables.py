"""scripts/organism_tables.py --write: tables go under their headings, the text around them stays."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "organism_tables.py"


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("organism_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DOC = """# doc

**Held-out engine (festival):**

| old | table |
|---|---|
| 1 | 2 |

| second | old table |
|---|---|

**Training voice** prose that stays.

| a |
|---|
"""


def test_splice_replaces_both_tables_under_the_heading_and_nothing_else(tables):
    out = tables.splice(DOC, "**Held-out engine (festival):**", ["| new |", "|---|", "", "| targets |", "|---|"])
    assert out == DOC.replace("| old | table |\n|---|---|\n| 1 | 2 |\n\n| second | old table |\n|---|---|",
                              "| new |\n|---|\n\n| targets |\n|---|")
    assert tables.splice(out, "**Held-out engine (festival):**", ["| new |", "|---|", "", "| targets |", "|---|"]) == out


def test_splice_without_the_heading_says_which(tables):
    with pytest.raises(SystemExit, match="Layer picture"):
        tables.splice(DOC, "**Layer picture**", ["| x |"])


def test_the_committed_docs_have_every_heading(tables):
    root = SCRIPT.parents[1]
    for which, path in enumerate(tables.DOCS):
        text = (root / path).read_text(encoding="utf-8")
        for key, headings in tables.SECTIONS.items():
            assert any(line.startswith(headings[which]) for line in text.split("\n")), (path, key)
