"""Steering settings chosen from sweeps by a rule stated before looking: a development protocol.

Run `zbb sweep` on development items (`--item-bank`, never ZBB's), one sweep per model (e.g. per
training seed), then `zbb choose SWEEP...` applies one rule to all of them:

1. keep the cells (layer, alpha, span, onset delay) present in every sweep;
2. drop a cell when, in any sweep that ran `no_interrupt+steer` (or `buffered+steer`), steering a turn
   where nothing is missed moves correctness or IWOR by more than `tolerance` (difference of the
   condition means, against `no_interrupt` or `buffered`; the buffered check added 2026-12-04 before
   its first use, after a recipe whose choice, checked on no_interrupt alone, cost ZBB's buffered
   questions' first words with four of four seeds: model card, "A buffered row in the protocol");
   and when, in any sweep that ran `interrupt+random`, a random direction of the vector's norm
   recovers `control_bound` (0.25) of the IWOR gap or more: the setting must be specific to the vector
   (added 2026-12-03 after the rule without it chose alpha 2, whose random control recovered 0.36 on
   ZBB's held-out rendering: model card, "Steering settings");
3. choose the highest IWOR recovery of `interrupt+steer`, averaged over the sweeps; ties go to the
   smaller alpha, then the earlier layer, then the shorter span (less intervention first).

ZBB's figures measured at the chosen settings are then measured at settings fixed before any ZBB run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import BUFFERED, NO_INTERRUPT, STEER
from .run_folder import RunError
from .sweep_delay import delay_of

SIDE_EFFECTS = {"no_interrupt+steer": NO_INTERRUPT, "buffered+steer": BUFFERED}  # steered: its unsteered baseline
CONTROL = "interrupt+random"
TOLERANCE = 0.05
CONTROL_BOUND = 0.25  # the bound on a control's recovery
RULE = ("cells in every sweep; side effects (no_interrupt+steer - no_interrupt and buffered+steer - buffered, "
        "correctness and IWOR) within "
        "{tol:g} and the random control's IWOR recovery below {bound:g} in every sweep that ran them; the highest "
        "mean IWOR recovery of interrupt+steer; ties: smaller alpha, earlier layer, shorter span")


def _key(cell: Mapping[str, Any]) -> tuple[int, float, int, int]:
    return int(cell["layer"]), float(cell["alpha"]), int(cell["span"]), delay_of(cell)


def _mean(stats: Mapping[str, Any] | None, metric: str) -> float | None:
    entry = (stats or {}).get(metric)
    return None if entry is None else float(entry["mean"])


def side_effects(summary: Mapping[str, Any], cell: Mapping[str, Any]) -> dict[str, dict[str, float]] | None:
    """{condition: {correct, iwor}}: each side-effect condition minus its unsteered baseline in one sweep, for
    the conditions that sweep ran with their baselines; None when it ran none."""
    out: dict[str, dict[str, float]] = {}
    for condition, baseline in SIDE_EFFECTS.items():
        steered, base = cell["conditions"].get(condition), summary["baselines"].get(baseline)
        if steered is None or base is None:
            continue
        diffs = {}
        for metric in ("correct", "iwor"):
            a, b = _mean(steered, metric), _mean(base, metric)
            if a is not None and b is not None:
                diffs[metric] = a - b
        out[condition] = diffs
    return out or None


def control_recovery(cell: Mapping[str, Any]) -> float | None:
    """The random control's IWOR recovery in one sweep's cell, None when it did not run (or no gap)."""
    control = cell["conditions"].get(CONTROL)
    return None if control is None else control["recovery"]["iwor"]


def choose_settings(summaries: Sequence[Mapping[str, Any]], tolerance: float = TOLERANCE,
                    control_bound: float = CONTROL_BOUND) -> dict[str, Any]:
    """Apply the module's rule to sweep summaries (`sweep.json`); return the choice and every cell's figures."""
    if not summaries:
        raise RunError("choose needs at least one sweep folder")
    by_sweep = [{_key(c): c for c in s["cells"] if STEER in c["conditions"]} for s in summaries]
    common = sorted(set.intersection(*(set(cells) for cells in by_sweep)))
    if not common:
        raise RunError("no cell with interrupt+steer is in every sweep: sweep the same grid on each model")
    rows = []
    for key in common:
        recoveries = [cells[key]["conditions"][STEER]["recovery"]["iwor"] for cells in by_sweep]
        effects = [side_effects(s, cells[key]) for s, cells in zip(summaries, by_sweep, strict=True)]
        controls = [control_recovery(cells[key]) for cells in by_sweep]
        beyond = sorted({condition for e in effects if e for condition, d in e.items()
                         if any(abs(v) > tolerance + 1e-9 for v in d.values())})
        specific = all(c < control_bound - 1e-9 for c in controls if c is not None)  # 14 / 56 is at the bound
        known = [r for r in recoveries if r is not None]
        failed = [f"{c} side effect" for c in beyond] + ([] if specific else ["random control"]) + \
            ([] if len(known) == len(recoveries) else ["recovery missing"])
        rows.append({"layer": key[0], "alpha": key[1], "span": key[2], "onset_delay_frames": key[3],
                     "recovery_iwor": recoveries, "mean_recovery_iwor": sum(known) / len(known) if known else None,
                     "side_effects": effects, "random_recovery_iwor": controls,
                     "eligible": not failed, "failed": failed})
    eligible = [r for r in rows if r["eligible"]]
    chosen = None
    if eligible:
        best = max(r["mean_recovery_iwor"] for r in eligible)
        ties = [r for r in eligible if r["mean_recovery_iwor"] >= best - 1e-9]
        top = min(ties, key=lambda r: (r["alpha"], r["layer"], r["span"], r["onset_delay_frames"]))
        chosen = {k: top[k] for k in ("layer", "alpha", "span", "onset_delay_frames", "mean_recovery_iwor")}
    return {"rule": RULE.format(tol=tolerance, bound=control_bound), "tolerance": tolerance,
            "control_bound": control_bound, "chosen": chosen, "cells": rows,
            "sweeps": [{"model": s["model"], "n_items": s["n_items"], "item_bank": s["base"].get("item_bank")}
                       for s in summaries]}


def load_summaries(folders: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Each folder's sweep.json (written by `zbb sweep`); one clear error for a folder without one."""
    out = []
    for folder in folders:
        path = Path(folder) / "sweep.json"
        if not path.is_file():
            raise RunError(f"{folder}: no sweep.json; run `zbb sweep --out {folder} ...` first")
        out.append(json.loads(path.read_text(encoding="utf-8")))
    return out


def _fmt(value: float | None, signed: bool = False) -> str:
    return "n/a" if value is None else (f"{value:+.2f}" if signed else f"{value:.2f}")


def _effects_text(effects: Mapping[str, Mapping[str, float]] | None) -> str:
    """"+0.00, +0.08" (no_interrupt's correctness, IWOR), then "; buffered -0.02, -0.10" where it ran."""
    if not effects:
        return "not run"
    parts = []
    for condition in SIDE_EFFECTS:
        if condition in effects:
            d = effects[condition]
            label = "" if condition == "no_interrupt+steer" else f"{SIDE_EFFECTS[condition]} "
            parts.append(f"{label}{_fmt(d.get('correct'), True)}, {_fmt(d.get('iwor'), True)}")
    return "; ".join(parts)


def render_choice(choice: Mapping[str, Any], names: Sequence[str]) -> str:
    """Markdown: the rule, one row per cell (recovery and side effects per sweep), the choice."""
    lines = [f"# Steering settings chosen on {len(names)} sweep{'s' if len(names) != 1 else ''}", "",
             f"Rule, fixed in advance: {choice['rule']}.", ""]
    for name, sweep in zip(names, choice["sweeps"], strict=True):
        bank = f"items `{sweep['item_bank']}`" if sweep["item_bank"] else "**ZBB's items** (not a development set)"
        lines.append(f"- `{name}`: {sweep['model']}, {sweep['n_items']} items, {bank}")
    heads = " | ".join(f"recovery {i + 1} | random {i + 1} | side effects {i + 1} (corr, IWOR)"
                       for i in range(len(names)))
    lines.append("Side effects: steered minus unsteered, no_interrupt first, then `buffered` where the sweep ran it.")
    lines += ["", f"| layer | alpha | span | delay | {heads} | mean recovery | eligible |",
              "|" + "---|" * (6 + 3 * len(names))]
    for r in choice["cells"]:
        per = " | ".join(f"{_fmt(rec)} | {_fmt(ctl) if ctl is not None else 'not run'} | "
                         + _effects_text(e) for rec, ctl, e in zip(r["recovery_iwor"], r["random_recovery_iwor"],
                                                                   r["side_effects"], strict=True))
        verdict = "yes" if r["eligible"] else "no: " + ", ".join(r.get("failed") or ["bounds"])
        lines.append(f"| {r['layer']} | {r['alpha']:g} | {r['span']} | {r['onset_delay_frames']} | {per} | "
                     f"{_fmt(r['mean_recovery_iwor'])} | {verdict} |")
    c = choice["chosen"]
    lines += ["", f"**Chosen:** layer {c['layer']}, alpha {c['alpha']:g}, span {c['span']}, onset delay "
              f"{c['onset_delay_frames']} (mean IWOR recovery {c['mean_recovery_iwor']:.2f})." if c else
              "**No cell is eligible**: every cell's side effects or random control exceed their bounds somewhere."]
    return "\n".join(lines) + "\n"


__all__ = ["CONTROL", "CONTROL_BOUND", "RULE", "SIDE_EFFECTS", "TOLERANCE", "choose_settings", "control_recovery",
           "load_summaries", "render_choice", "side_effects"]
