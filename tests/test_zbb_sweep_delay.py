"""zbb.sweep_delay: a sweep's cells along the onset delay axis, tabulated and plotted (synthetic summaries)."""

from __future__ import annotations

from zbb.sweep_delay import delay_of, plot_delay_sweep, render_delay_table, series


def _cell(span: int, delay: int | None, iwor_recovery: float | None, layer: int = 2, alpha: float = 1.0) -> dict:
    paired = None if iwor_recovery is None else {"recovery": iwor_recovery, "ci_low": iwor_recovery - 0.1,
                                                 "ci_high": iwor_recovery + 0.1, "note": None}
    stats = {"n_items": 10, "correct": {"mean": 0.5}, "iwor": {"mean": 0.25},
             "recovery_paired": {"correct": None, "iwor": paired}}
    cell = {"layer": layer, "alpha": alpha, "span": span, "folder": "x", "conditions": {"interrupt+steer": stats}}
    if delay is not None:  # folders made before the option have no delay: 0
        cell["onset_delay_frames"] = delay
    return cell


SUMMARY = {"model": "organism", "n_items": 10, "caveat": "a toy", "baselines": {
    "no_interrupt": {"n_items": 10, "correct": {"mean": 0.6}, "iwor": {"mean": 1.0}},
    "interrupt": {"n_items": 10, "correct": {"mean": 0.3}, "iwor": {"mean": 0.0}}},
    "cells": [_cell(3, 4, 0.2), _cell(3, None, 0.9), _cell(1, 4, None), _cell(1, 0, 0.8)]}


def test_series_order_cells_by_delay_and_a_missing_delay_is_zero():
    assert delay_of({}) == 0 and delay_of({"onset_delay_frames": 6}) == 6
    lines = series(SUMMARY)
    assert list(lines) == [(2, 1.0, 1), (2, 1.0, 3)]
    assert [[delay_of(c) for c in cells] for cells in lines.values()] == [[0, 4], [0, 4]]


def test_table_gives_rates_and_paired_recovery_per_series_and_delay():
    table = render_delay_table(SUMMARY)
    assert "| 2 | 1 | 3 | 4 | 320 | 10 | 0.50 | 0.25 | n/a | 0.20 [0.10, 0.30] |" in table
    assert "| 2 | 1 | 1 | 4 | 320 | 10 | 0.50 | 0.25 | n/a | n/a |" in table  # no gap to recover: n/a, no number
    assert table.index("| 1 | 0 | 0 |") < table.index("| 1 | 4 | 320 |") < table.index("| 3 | 0 | 0 |")


def test_plot_draws_every_series_even_with_missing_points(tmp_path):
    summary = {**SUMMARY, "cells": [*SUMMARY["cells"], _cell(3, 0, 0.5, layer=1, alpha=5.5)]}
    plot_delay_sweep(summary, tmp_path / "delay.png")
    png = (tmp_path / "delay.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
