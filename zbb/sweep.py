"""`zbb sweep`: a grid over steering layer x strength (alpha) x span (x onset delay) on a subset of ZBB items.

A sweep folder holds ordinary run folders, each made by `zbb.runner.run` (so each resumes, shards
and reports on its own):

    baselines/                     the unsteered conditions (no_interrupt, interrupt), run ONCE
    cells/layer23_alpha5.5_span3/  the steered condition(s) (interrupt+steer) of one grid cell
    cells/layer23_alpha5.5_span3_delay2/  the same, steering 2 frames after the oracle onset (--onset-delays)
    sweep.json, sweep.md, sweep.png (heatmaps), sweep_delay.png (recovery vs onset delay, with several delays)

Rerunning a sweep redoes only what is missing; a grown grid only adds cells. Baselines and cells put
the same items in the same batches with the same seeds, so an item of a cell draws the same sampling
noise as that item's interrupt baseline: until the onset they are the same stream, and the comparison
is paired, as within one run. The summary (sweep.json, sweep.md) covers every cell found in the folder,
with each cell's recovery and its paired bootstrap interval (`zbb.paired`); the heatmaps (sweep.png)
the cells at the smallest onset delay, and `zbb.sweep_delay` what lateness costs.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from duplex_steer import PIPELINE_CHECK_NOTE
from duplex_steer.model_args import torch_dtype

from .condition_check import scored_records
from .header import run_caveat
from .paired import paired_recovery
from .report import INTERRUPT, NO_INTERRUPT, RATE_METRICS, STEER, recovery
from .results import read_results
from .run_config import STEERED, RunConfig, run_work
from .run_folder import RunError, merge_and_report
from .sweep_delay import delay_of, plot_delay_sweep, render_delay_table
from .work import launcher_shard

DEFAULT_ALPHAS = (1.0, 3.0, 5.5, 8.0)
DEFAULT_SPANS = (1, 3, 6)
DEFAULT_LIMIT = 20
BASELINES = "baselines"
CELLS = "cells"


def cell_name(layer: int, alpha: float, span: int, delay: int = 0) -> str:
    """Folder name of a grid cell, e.g. layer23_alpha5.5_span3 (onset delay 0) or layer23_alpha5.5_span3_delay2."""
    return f"layer{layer}_alpha{alpha:g}_span{span}" + (f"_delay{delay}" if delay else "")


def split_conditions(conditions: Sequence[str]) -> tuple[list[str], list[str]]:
    """(unsteered baselines run once, steered conditions run per cell)."""
    return [c for c in conditions if c not in STEERED], [c for c in conditions if c in STEERED]


def plan(base: RunConfig, layers: Sequence[int], alphas: Sequence[float], spans: Sequence[int],
         delays: Sequence[int] | None = None) -> tuple[RunConfig, dict[str, RunConfig]]:
    """The baseline run's config and each cell's, batched alike (see the module docstring); `delays`:
    the oracle onset delays in frames (default: the base's one)."""
    baselines, steered = split_conditions(base.conditions)
    if not steered or INTERRUPT not in baselines:
        raise RunError("a sweep needs a steered condition (interrupt+steer) and the interrupt baseline among "
                       "--conditions (add no_interrupt for recovery)")
    per_batch = max(1, base.batch_size // max(1, len(baselines)))  # items (x repetitions) per batch
    unsteered = RunConfig()  # the baselines depend on no steering setting: keep them out of their config
    baseline = dataclasses.replace(base, conditions=baselines, batch_size=per_batch * max(1, len(baselines)),
                                   layer=None, alpha=unsteered.alpha, span=unsteered.span, onset_delay_frames=0)
    delays = list(delays) if delays is not None else [base.onset_delay_frames]
    cells = {cell_name(layer, float(alpha), span, delay): dataclasses.replace(
        base, conditions=steered, layer=layer, alpha=float(alpha), span=span, onset_delay_frames=delay,
        batch_size=per_batch * len(steered))
        for layer in layers for alpha in alphas for span in spans for delay in delays}
    return baseline, cells


def _pending(config: RunConfig, out: Path) -> int:
    """How many (item, condition, repetition) of a run are not in its results yet."""
    done = {(r["id"], r["condition"], int(r["repetition"])) for f in out.glob("results*.jsonl") for r in read_results(f)}
    return sum((it["id"], c, r) not in done for it, c, r in run_work(config))


def sweep(base: RunConfig, out_dir: str | Path, layers: Sequence[int] | None = None,
          alphas: Sequence[float] = DEFAULT_ALPHAS, spans: Sequence[int] = DEFAULT_SPANS,
          delays: Sequence[int] | None = None, model=None, progress: bool = True,
          report: bool = True, workers: int | None = 1) -> dict[str, Any] | None:
    """Run (or resume) the baselines and every cell; return the summary (None when sharded or report=False).

    `base` gives everything but the grid (model, vector, items or limit, rules, seed, batch size...);
    `layers` defaults to the vector's layers, `delays` (oracle onset delays, frames) to the base's one.
    The model is loaded once, and only if work remains. `workers` local processes share each folder's
    items (`zbb.workers`; None: one per core for a small model on the CPU), outside torchrun.
    Under torchrun every process runs its shard of each folder; rerun without torchrun (or call
    `summarize_sweep`) to write the summary.
    """
    from duplex_steer import load
    from duplex_steer.steering import PerceptionVector

    from .workers import run_in_workers

    if not base.vector:
        raise RunError("a sweep needs --vector FILE (make one with `duplex-steer fit-vector`)")
    base.validate()
    vector_layers = PerceptionVector.load(base.vector).layers
    layers = list(layers) if layers else vector_layers
    missing = [layer for layer in layers if layer not in vector_layers]
    if missing:
        raise RunError(f"the vector has layers {vector_layers}, not {missing}; refit it with those layers "
                       "(`duplex-steer fit-vector --layers ...`) or sweep --layers among its own")
    if not alphas or not spans or (delays is not None and not delays):
        raise RunError("a sweep needs at least one alpha, one span and one onset delay")
    for delay in sorted(set(delays or [])):  # negative, or with a detector: refused before any model loads
        dataclasses.replace(base, onset_delay_frames=delay).validate()
    out = Path(out_dir)
    baseline, cells = plan(base, layers, alphas, spans, delays)
    runs = [(out / BASELINES, baseline)] + [(out / CELLS / name, cfg) for name, cfg in cells.items()]
    if model is None and any(_pending(cfg, folder) for folder, cfg in runs):
        model = load(base.model, device=base.device, dtype=torch_dtype(base.dtype))
    for k, (folder, cfg) in enumerate(runs):
        if progress:
            print(f"[{k + 1}/{len(runs)}] {folder.relative_to(out)}", flush=True)
        run_in_workers(cfg, folder, workers=workers, progress=progress, model=model)  # torchrun: each rank its shard
    if not report or launcher_shard()[1] > 1:
        return None
    if model is not None:
        label, is_random = model.label.replace(f" - {PIPELINE_CHECK_NOTE}", ""), bool(model.is_random)
    else:  # nothing ran: keep what the last summary said about the model
        previous = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else {}
        label = previous.get("model", base.model)
        is_random = previous.get("is_random", base.model.startswith(("tiny", "mid", "full")))
    return summarize_sweep(out, label=label, is_random=is_random)


def _metric(stats: Mapping[str, Any], metric: str) -> dict[str, Any] | None:
    m = stats["metrics"].get(metric)
    return None if m is None else {k: m[k] for k in ("mean", "se", "ci_low", "ci_high")}


def summarize_sweep(out_dir: str | Path, label: str | None = None, is_random: bool = False) -> dict[str, Any]:
    """Report every run folder of a sweep, then write sweep.json, sweep.md and the heatmaps sweep.png."""
    out = Path(out_dir)
    base_cfg = out / BASELINES / "config.json"  # the caveat the model declared when the baselines ran
    caveat = PIPELINE_CHECK_NOTE if is_random else run_caveat(json.loads(base_cfg.read_text()) if base_cfg.is_file() else {})
    if not any((out / BASELINES).glob("results*.jsonl")):
        raise RunError(f"no baseline results in {out / BASELINES}; run `zbb sweep --out {out}` first")
    base_report = merge_and_report(out / BASELINES, caveat=caveat)
    base_records = _records(out / BASELINES)
    baselines = {c: {"n_items": s["n_items"], **{m: _metric(s, m) for m in RATE_METRICS}}
                 for c, s in base_report["conditions"].items()}
    cells = []
    for folder in sorted((out / CELLS).glob("*/")):
        if not any(folder.glob("results*.jsonl")):
            continue
        cfg = json.loads((folder / "config.json").read_text())["config"]
        report = merge_and_report(folder, caveat=caveat)
        conditions = {**base_report["conditions"], **report["conditions"]}
        gains = recovery(conditions)
        paired = paired_recovery(scored_records(base_records + _records(folder)))  # unmet items left out, as in reports
        cells.append({
            "layer": cfg["layer"], "alpha": cfg["alpha"], "span": cfg["span"], "onset_delay_frames": delay_of(cfg),
            "folder": str(folder.relative_to(out)),
            "conditions": {c: {"n_items": s["n_items"], **{m: _metric(s, m) for m in RATE_METRICS},
                               "recovery": {m: gains.get(c, {}).get(m) for m in RATE_METRICS},
                               "recovery_paired": {m: _interval(paired.get(c, {}).get(m)) for m in RATE_METRICS}}
                           for c, s in report["conditions"].items()},
        })
    cells.sort(key=lambda c: (c["span"], c["layer"], c["alpha"], delay_of(c)))
    config = json.loads((out / BASELINES / "config.json").read_text())["config"]
    summary = {
        "model": label or config["model"], "is_random": is_random, "caveat": caveat,
        "n_items": max((b["n_items"] for b in baselines.values()), default=0),
        "base": {k: config.get(k) for k in ("model", "vector", "schedule", "onset", "greedy", "seed", "repetitions",
                                            "items", "limit", "item_bank", "rules")},  # item_bank: None before the option
        "baselines": baselines, "cells": cells, "best": best_cell(cells),
    }
    (out / "sweep.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out / "sweep.md").write_text(render_sweep(summary))
    plot_sweep(summary, out / "sweep.png")
    if len({delay_of(c) for c in cells}) > 1:
        plot_delay_sweep(summary, out / "sweep_delay.png")
    return summary


def _records(folder: Path) -> list[dict[str, Any]]:
    """Every record of a run folder (all shards), the last of duplicates kept."""
    records = {(r["id"], r["condition"], int(r["repetition"])): r
               for f in sorted(folder.glob("results*.jsonl")) for r in read_results(f)}
    return list(records.values())


def _interval(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A paired recovery interval's point, bounds and note (None when there is no gap to recover)."""
    return None if entry is None else {k: entry.get(k) for k in ("recovery", "ci_low", "ci_high", "note")}


def best_cell(cells: Sequence[Mapping[str, Any]], condition: str = STEER) -> dict[str, Any] | None:
    """The cell with the highest correctness of `condition` (ties: IWOR), or None."""
    def score(cell: Mapping[str, Any]) -> tuple[float, float]:
        stats = cell["conditions"].get(condition) or {}
        correct, heard = ((stats.get(m) or {}).get("mean", -1.0) for m in RATE_METRICS)
        return correct, heard

    ranked = [c for c in cells if condition in c["conditions"]]
    if not ranked:
        return None
    top = max(ranked, key=score)
    return {**{k: top[k] for k in ("layer", "alpha", "span", "folder")}, "onset_delay_frames": delay_of(top)}


def _cell_text(m: Mapping[str, Any] | None) -> str:
    if m is None:
        return "n/a"
    return f"{m['mean']:.2f}" + (f" +- {m['se']:.2f}" if m.get("se") is not None else "")


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def render_sweep(summary: Mapping[str, Any]) -> str:
    """sweep.md: the baselines, one row per cell and condition, the best cell, the heatmaps."""
    lines = [f"# ZBB steering sweep: {summary['model']}", ""]
    if summary["caveat"]:
        lines += [f"**Caveat:** {summary['caveat']}", ""]
    base = summary["base"]
    n = summary["n_items"]
    if base.get("item_bank"):
        lines += [f"Items from `{base['item_bank']}`, not ZBB's item bank.", ""]
    lines += [f"{n} item{'s' if n != 1 else ''}; schedule {base['schedule']}, onset {base['onset']}, "
              f"{'greedy' if base['greedy'] else 'sampled'}, seed {base['seed']}. Mean +- standard error over "
              "items. Recovery = (steered - interrupt) / (no_interrupt - interrupt).", "",
              "| baseline | n items | correctness | IWOR |", "|---|---|---|---|"]
    for cond, b in summary["baselines"].items():
        lines.append(f"| {cond} | {b['n_items']} | {_cell_text(b['correct'])} | {_cell_text(b['iwor'])} |")
    lines += ["", "| layer | alpha | span | onset delay | condition | n items | correctness | IWOR | "
              "recovery (correctness) | recovery (IWOR) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for cell in summary["cells"]:
        for cond, s in cell["conditions"].items():
            lines.append(f"| {cell['layer']} | {cell['alpha']:g} | {cell['span']} | {delay_of(cell)} | {cond} | "
                         f"{s['n_items']} | "
                         f"{_cell_text(s['correct'])} | {_cell_text(s['iwor'])} | {_ratio(s['recovery']['correct'])} | "
                         f"{_ratio(s['recovery']['iwor'])} |")
    best = summary["best"]
    if best:
        lines += ["", f"Highest {STEER} correctness (ties: IWOR): layer {best['layer']}, alpha {best['alpha']:g}, "
                  f"span {best['span']}, onset delay {delay_of(best)} ({best['folder']}). With few items, "
                  "neighbouring cells are within noise."]
    lines += ["", "![correctness and IWOR per layer and alpha, one row per span](sweep.png)", ""]
    if len({delay_of(c) for c in summary["cells"]}) > 1:
        lines += [render_delay_table(summary), "![recovery vs onset delay, one line per span](sweep_delay.png)", ""]
    return "\n".join(lines)


def plot_sweep(summary: Mapping[str, Any], path: str | Path, condition: str = STEER) -> None:
    """Heatmaps of `condition`'s correctness and IWOR over (layer, alpha), one row per span (PNG), at the
    smallest onset delay swept (`zbb.sweep_delay` plots the delays)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in summary["cells"] if condition in c["conditions"]]
    first_delay = min((delay_of(c) for c in cells), default=0)
    cells = [c for c in cells if delay_of(c) == first_delay]
    spans = sorted({c["span"] for c in cells}) or [None]
    layers = sorted({c["layer"] for c in cells})
    alphas = sorted({c["alpha"] for c in cells})
    names = {"correct": "correctness", "iwor": "IWOR"}
    fig, axes = plt.subplots(len(spans), 2, squeeze=False, dpi=120, layout="constrained",
                             figsize=(max(9.0, 3.0 + 2.0 * len(alphas)), 1.4 + max(3.0, 0.6 * len(layers) + 1.4) * len(spans)))
    image = {}
    for row, span in enumerate(spans):
        for col, metric in enumerate(RATE_METRICS):
            ax = axes[row][col]
            grid = np.full((len(layers), len(alphas)), np.nan)
            for c in cells:
                m = c["conditions"][condition][metric]
                if c["span"] == span and m is not None:
                    grid[layers.index(c["layer"]), alphas.index(c["alpha"])] = m["mean"]
            image[metric] = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto", origin="lower")
            ref = (summary["baselines"].get(INTERRUPT, {}).get(metric) or {}).get("mean")
            for i in range(len(layers)):
                for j in range(len(alphas)):
                    value = grid[i, j]
                    text = "not run" if math.isnan(value) else f"{value:.2f}"
                    if ref is not None and not math.isnan(value):
                        text += f"\n({value - ref:+.2f})"
                    ax.text(j, i, text, ha="center", va="center", fontsize=9,
                            color="#777" if math.isnan(value) else "black" if value > 0.6 else "white")
            ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
            ax.set_yticks(range(len(layers)), [str(layer) for layer in layers])
            ax.set_xlabel("alpha (steering strength)")
            ax.set_ylabel("layer")
            delay = f", onset delay {first_delay}" if first_delay else ""
            ax.set_title(f"{names[metric]}, span {span} frame{'s' if span != 1 else ''}{delay}", fontsize=10)
    for col, metric in enumerate(RATE_METRICS):
        if metric in image:
            bar = fig.colorbar(image[metric], ax=[axes[r][col] for r in range(len(spans))], shrink=0.9)
            bar.set_label(f"{names[metric]} (share of items)")
    refs = []
    for cond in (INTERRUPT, NO_INTERRUPT):
        b = summary["baselines"].get(cond)
        if b:
            refs.append(f"{cond}: " + ", ".join(f"{names[m]} {b[m]['mean']:.2f}" for m in RATE_METRICS if b[m]))
    n = summary["n_items"]
    fig.suptitle(f"ZBB sweep of {condition}: {summary['model']}\n{n} item{'s' if n != 1 else ''}; in brackets: difference to the "
                 f"interrupt baseline\n" + "; ".join(refs), fontsize=10)
    if summary.get("caveat"):
        fig.supxlabel(f"Caveat: {summary['caveat']}", fontsize=9, color="#a33")
    fig.savefig(path)
    plt.close(fig)


__all__ = ["BASELINES", "CELLS", "DEFAULT_ALPHAS", "DEFAULT_LIMIT", "DEFAULT_SPANS", "best_cell", "cell_name", "plan",
           "plot_sweep", "render_sweep", "split_conditions", "summarize_sweep", "sweep"]
