"""scripts/vector_split_half.py: the perception vector fitted on each half of the dialogues, compared."""

from __future__ import annotations

from pathlib import Path

import pytest

import duplex_steer
from duplex_steer.organism.fixtures import default_dialogues
from tests.conftest import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "vector_split_half.py"


@pytest.fixture(scope="module")
def script():
    return load_file_module(SCRIPT, "vector_split_half")


def test_identical_halves_give_the_same_direction_and_different_halves_do_not(script) -> None:
    model = duplex_steer.load("organism")
    two = default_dialogues(model)[:2]
    same = script.split_half(model, [5], dialogues=two + two)[0]
    assert same["layer"] == 5 and same["cosine"] == pytest.approx(1.0, abs=1e-5)
    assert same["norm_first"] == pytest.approx(same["norm_second"], rel=1e-5)
    # all four at once: the same dialogues, but the model's own speech is sampled per batch, so close, not equal
    assert same["norm_all"] == pytest.approx(same["norm_first"], rel=0.05)
    other = script.split_half(model, [5], dialogues=default_dialogues(model)[:4])[0]
    assert -1.0 <= other["cosine"] < 1.0 - 1e-4 and other["norm_first"] != pytest.approx(other["norm_second"])


def test_too_few_dialogues_is_one_clear_error(script) -> None:
    model = duplex_steer.load("organism")
    with pytest.raises(SystemExit, match="at least 4"):
        script.split_half(model, [5], dialogues=default_dialogues(model)[:2])
