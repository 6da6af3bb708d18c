"""scripts/organism_tables.py --write: tables go under their headings, the text around them stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "organism_tables.py"


@pytest.fixture(scope="module")
def tables():
    return load_file_module(SCRIPT, "organism_tables")


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


def _report(no_interrupt_iwor: float, mistimed: float, steer: float = 0.8, side: float = 0.0) -> dict:
    rate = {"mean": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    metrics = {"iwor": dict(rate, mean=no_interrupt_iwor), "correct": dict(rate, mean=0.9)}
    recovery = {"recovery": 0.0, "ci_low": 0.0, "ci_high": 0.0}
    difference = {"difference": side, "ci_low": side, "ci_high": side}
    return {"conditions": {"no_interrupt": {"metrics": metrics},
                           "interrupt": {"metrics": {"iwor": dict(rate, mean=0.1), "correct": dict(rate, mean=0.5)}}},
            "recovery_paired": {"interrupt+steer": {"iwor": dict(recovery, recovery=steer)},
                                "interrupt+random": {"iwor": dict(recovery, recovery=0.0)},
                                "interrupt+mistimed": {"iwor": dict(recovery, recovery=mistimed)}},
            "paired": {key: {"reference": ref, "metrics": {"iwor": difference, "correct": difference}}
                       for key, ref in (("no_interrupt+steer", "no_interrupt"), ("buffered+steer", "buffered"))}}


def test_a_figure_at_a_bound_in_floating_point_is_judged_at_the_bound(tables):
    """Ratios of counts land a hair off their value (14 / 56 -> 0.2499999999999999, 0.85 - 1e-16): a control
    at 0.25 is not below 0.25, a hearing rate of 0.85 meets 0.85, a recovery of 0.7 meets 0.7."""
    at_bound = (0.57 - 0.43) / (0.99 - 0.43)
    assert at_bound < 0.25  # what a plain comparison would take as met
    met = {name: ok for name, _, ok in tables.target_rows(_report(0.85 - 1e-16, at_bound, steer=0.7 - 1e-16))}
    assert not met["interrupt+mistimed recovers < 0.25 of the IWOR gap"]
    assert met["no_interrupt IWOR >= 0.85"] and met["interrupt+steer recovers >= 0.70 of the IWOR gap"]
    met = {name: ok for name, _, ok in tables.target_rows(_report(0.84, 0.24, steer=0.69, side=0.05 + 1e-16))}
    assert not met["no_interrupt IWOR >= 0.85"] and met["interrupt+mistimed recovers < 0.25 of the IWOR gap"]
    assert not met["interrupt+steer recovers >= 0.70 of the IWOR gap"]
    assert met["no_interrupt+steer - no_interrupt iwor within 0.05"]


def test_a_run_without_the_controls_says_so_instead_of_failing(tables):
    """`zbb run` without the controls in --conditions: the targets it cannot judge read "not in the run" and
    are not met; the ones it can are judged as before."""
    report = _report(0.9, 0.0, steer=0.8)
    del report["recovery_paired"]["interrupt+random"], report["recovery_paired"]["interrupt+mistimed"]
    del report["paired"]["buffered+steer"]
    rows = {name: (figure, ok) for name, figure, ok in tables.target_rows(report)}
    assert len(rows) == 10
    for name in ("interrupt+random recovers < 0.25 of the IWOR gap", "interrupt+mistimed recovers < 0.25 of the IWOR gap",
                 "buffered+steer - buffered iwor within 0.05", "buffered+steer - buffered correct within 0.05"):
        assert rows[name] == (tables.NOT_RUN, False)
    assert rows["no_interrupt IWOR >= 0.85"][1] and rows["interrupt+steer recovers >= 0.70 of the IWOR gap"][1]
    assert rows["no_interrupt+steer - no_interrupt iwor within 0.05"][1]
    del report["conditions"]["interrupt"]
    rows = {name: (figure, ok) for name, figure, ok in tables.target_rows(report)}
    assert rows["interrupt IWOR <= 0.2"] == (tables.NOT_RUN, False)
