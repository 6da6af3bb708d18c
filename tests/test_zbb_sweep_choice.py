"""`zbb choose`: steering settings from sweeps by the rule fixed in advance (zbb.sweep_choice)."""

from __future__ import annotations

import json

import pytest

from zbb.cli import main as zbb_main
from zbb.run_folder import RunError
from zbb.sweep_choice import choose_settings, render_choice


def _cell(layer: int, alpha: float, recovery: float | None, effect: tuple[float, float] | None = (0.0, 0.0),
          random: float | None = None, buffered: tuple[float, float] | None = None) -> dict:
    conditions = {"interrupt+steer": {"recovery": {"iwor": recovery}}}
    if random is not None:
        conditions["interrupt+random"] = {"recovery": {"iwor": random}}
    if effect is not None:
        conditions["no_interrupt+steer"] = {"correct": {"mean": 0.6 + effect[0]}, "iwor": {"mean": 0.8 + effect[1]}}
    if buffered is not None:
        conditions["buffered+steer"] = {"correct": {"mean": 0.5 + buffered[0]}, "iwor": {"mean": 0.7 + buffered[1]}}
    return {"layer": layer, "alpha": alpha, "span": 3, "onset_delay_frames": 0, "conditions": conditions}


def _summary(cells: list[dict], bank: str | None = "dev.jsonl") -> dict:
    return {"model": "m", "n_items": 48, "base": {"item_bank": bank}, "cells": cells,
            "baselines": {"no_interrupt": {"correct": {"mean": 0.6}, "iwor": {"mean": 0.8}},
                          "buffered": {"correct": {"mean": 0.5}, "iwor": {"mean": 0.7}}}}


def test_the_highest_mean_recovery_among_cells_without_side_effects_in_every_sweep() -> None:
    a = _summary([_cell(2, 1, 0.6), _cell(4, 1, 0.9, effect=(0.0, 0.08)), _cell(5, 2, 0.7), _cell(3, 1, 0.1)])
    b = _summary([_cell(2, 1, 0.8), _cell(4, 1, 0.9), _cell(5, 2, 0.8), _cell(0, 1, 1.0)])
    choice = choose_settings([a, b])
    # layer 4 recovers most but moves IWOR by 0.08 in the first sweep; layer 3 and 0 are not in both sweeps
    assert [(c["layer"], c["eligible"]) for c in choice["cells"]] == [(2, True), (4, False), (5, True)]
    assert choice["chosen"] == {"layer": 5, "alpha": 2.0, "span": 3, "onset_delay_frames": 0,
                                "mean_recovery_iwor": pytest.approx(0.75)}
    assert choose_settings([a, b], tolerance=0.1)["chosen"]["layer"] == 4  # within a looser bound
    md = render_choice(choice, ["s0", "s1"])
    assert "**Chosen:** layer 5, alpha 2, span 3" in md and "| 4 | 1 | 3 | 0 | 0.90 | not run | +0.00, +0.08 |" in md


def test_a_cell_whose_random_direction_also_recovers_is_not_chosen() -> None:
    a = _summary([_cell(2, 1, 0.8, random=0.05), _cell(1, 2, 1.0, random=0.36)])
    b = _summary([_cell(2, 1, 0.7, random=0.20), _cell(1, 2, 1.1, random=0.10)])
    choice = choose_settings([a, b])
    assert [c["eligible"] for c in choice["cells"]] == [False, True]  # layer 1: 0.36 >= 0.25 in the first sweep
    assert choice["chosen"]["layer"] == 2 and choice["cells"][1]["random_recovery_iwor"] == [0.05, 0.20]
    assert choose_settings([a, b], control_bound=0.4)["chosen"]["layer"] == 1
    assert "| 2 | 1 | 3 | 0 | 0.80 | 0.05 | +0.00, +0.00 | 0.70 | 0.20 |" in render_choice(choice, ["a", "b"])
    assert "random control's IWOR recovery below 0.25" in choice["rule"]


def test_a_cell_that_costs_the_buffered_questions_is_not_chosen() -> None:
    """The buffered side effect (buffered+steer - buffered) is bounded as no_interrupt's is, in every sweep that ran it."""
    a = _summary([_cell(5, 1, 0.9, buffered=(0.0, -0.08)), _cell(3, 1, 0.7, buffered=(0.02, -0.05)),
                  _cell(2, 1, 0.8, buffered=(-0.06, 0.0))])
    b = _summary([_cell(5, 1, 0.9, buffered=(0.0, -0.02)), _cell(3, 1, 0.7), _cell(2, 1, 0.8, buffered=(0.0, 0.0))])
    choice = choose_settings([a, b])
    assert [(c["layer"], c["eligible"]) for c in choice["cells"]] == [(2, False), (3, True), (5, False)]
    assert choice["chosen"]["layer"] == 3  # -0.05 is at the bound, allowed; b did not run buffered+steer at layer 3
    assert choice["cells"][2]["failed"] == ["buffered+steer side effect"]
    assert choice["cells"][2]["side_effects"][0] == {"no_interrupt+steer": {"correct": 0.0, "iwor": 0.0},
                                                     "buffered+steer": {"correct": 0.0, "iwor": pytest.approx(-0.08)}}
    assert choose_settings([a, b], tolerance=0.1)["chosen"]["layer"] == 5
    md = render_choice(choice, ["s0", "s1"])
    assert "| 5 | 1 | 3 | 0 | 0.90 | not run | +0.00, +0.00; buffered +0.00, -0.08 |" in md
    assert "| no: buffered+steer side effect |" in md and "buffered+steer - buffered" in choice["rule"]


def test_ties_go_to_less_intervention_and_missing_figures_are_not_chosen() -> None:
    s = _summary([_cell(3, 2, 0.5), _cell(4, 1, 0.5), _cell(2, 1, 0.5), _cell(1, 0.5, None)])
    chosen = choose_settings([s])["chosen"]
    assert (chosen["layer"], chosen["alpha"]) == (2, 1.0)  # alpha 1 before 2, then layer 2 before 4
    unrun = _summary([_cell(2, 1, 0.5, effect=None)])  # no side-effect condition: the bound cannot be checked, kept
    assert choose_settings([unrun])["chosen"]["layer"] == 2
    assert "not run" in render_choice(choose_settings([unrun]), ["x"])


def test_nothing_eligible_and_bad_input() -> None:
    s = _summary([_cell(2, 1, 0.9, effect=(-0.2, 0.0))])
    choice = choose_settings([s])
    assert choice["chosen"] is None and "No cell is eligible" in render_choice(choice, ["x"])
    with pytest.raises(RunError, match="every sweep"):
        choose_settings([_summary([_cell(2, 1, 0.5)]), _summary([_cell(3, 1, 0.5)])])


def test_cli_writes_the_choice_and_says_when_a_sweep_ran_on_zbb(tmp_path, capsys) -> None:
    for name, bank in (("dev", "dev.jsonl"), ("zbb", None)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sweep.json").write_text(json.dumps(_summary([_cell(2, 1, 0.7)], bank)))
    assert zbb_main(["choose", str(tmp_path / "dev"), str(tmp_path / "zbb"), "--out", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "items `dev.jsonl`" in out and "**ZBB's items** (not a development set)" in out
    assert json.loads((tmp_path / "c.json").read_text())["chosen"]["layer"] == 2
    assert (tmp_path / "c.md").read_text().startswith("# Steering settings chosen on 2 sweeps")
    assert zbb_main(["choose", str(tmp_path / "none")]) == 2
    assert "no sweep.json" in capsys.readouterr().err
    assert zbb_main(["choose", str(tmp_path / "dev"), "--control-bound", "-0.1"]) == 2
    assert "--tolerance and --control-bound are bounds: 0 or more" in capsys.readouterr().err
    none_eligible = tmp_path / "bad"
    none_eligible.mkdir()
    (none_eligible / "sweep.json").write_text(json.dumps(_summary([_cell(2, 1, 0.7, random=0.5)])))
    assert zbb_main(["choose", str(none_eligible)]) == 1  # ran, but nothing may be chosen
    assert "No cell is eligible" in capsys.readouterr().out


def test_a_random_control_at_the_bound_in_floating_point_is_at_the_bound() -> None:
    """14 of a 56-point gap is 0.25, which floating point computes as 0.2499999999999999: not below the bound."""
    at_bound = (0.57 - 0.43) / (0.99 - 0.43)  # a real run: the control 0.57, interrupt 0.43, no_interrupt 0.99
    assert at_bound < 0.25
    s = _summary([_cell(2, 1, 0.9, random=at_bound), _cell(3, 1, 0.8, random=0.2)])
    choice = choose_settings([s])
    assert [c["eligible"] for c in choice["cells"]] == [False, True] and choice["chosen"]["layer"] == 3
