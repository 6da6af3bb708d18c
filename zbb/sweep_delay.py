"""What lateness costs: a sweep's cells along the onset delay axis (`zbb sweep --onset-delays`).

Each cell steers N frames (80 ms each) after the oracle onset, the query's first speech; the baselines
(no_interrupt, interrupt) do not depend on N. Per series (layer, alpha, span) this module tabulates and
plots, against N, the recovery of the correctness and IWOR gaps, (steered - interrupt) / (no_interrupt -
interrupt), with the paired bootstrap interval `zbb.sweep` stores per cell (`zbb.stats.recovery_interval`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .report import INTERRUPT, NO_INTERRUPT, STEER

FRAME_MS = 80
METRIC_NAMES = {"correct": "correctness", "iwor": "IWOR"}
PLOTTED = ("iwor", "correct")  # left panel: the IWOR gap (the paper's measure), right: correctness


def delay_of(entry: Mapping[str, Any]) -> int:
    """A cell's (or run config's) oracle onset delay in frames; 0 for folders made before the option."""
    return int(entry.get("onset_delay_frames") or 0)


def series(summary: Mapping[str, Any], condition: str = STEER) -> dict[tuple[int, float, int], list[Mapping[str, Any]]]:
    """{(layer, alpha, span): that series' cells holding `condition`, by increasing delay}."""
    out: dict[tuple[int, float, int], list[Mapping[str, Any]]] = {}
    for cell in summary["cells"]:
        if condition in cell["conditions"]:
            out.setdefault((cell["layer"], cell["alpha"], cell["span"]), []).append(cell)
    return {key: sorted(cells, key=delay_of) for key, cells in sorted(out.items())}


def _recovery_text(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("recovery") is None:
        return "n/a"
    text = f"{entry['recovery']:.2f}"
    return text + (f" [{entry['ci_low']:.2f}, {entry['ci_high']:.2f}]" if entry.get("ci_low") is not None else "")


def render_delay_table(summary: Mapping[str, Any], condition: str = STEER) -> str:
    """Markdown: per series and delay, the steered rates and the recovered share of each gap [95% paired CI]."""
    lines = ["## What lateness costs", "",
             f"{condition} steered N frames after the query's first speech (oracle onset + N x {FRAME_MS} ms). "
             "Recovery = (steered - interrupt) / (no_interrupt - interrupt), with a paired bootstrap interval over "
             "items; 1 = the whole gap, 0 = no better than not steering.", "",
             "| layer | alpha | span | onset delay (frames) | delay (ms) | n items | correctness | IWOR | "
             "recovery of correctness | recovery of IWOR |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (layer, alpha, span), cells in series(summary, condition).items():
        for cell in cells:
            s, delay = cell["conditions"][condition], delay_of(cell)
            rates = " | ".join("n/a" if s.get(m) is None else f"{s[m]['mean']:.2f}" for m in ("correct", "iwor"))
            gains = " | ".join(_recovery_text((s.get("recovery_paired") or {}).get(m)) for m in ("correct", "iwor"))
            lines.append(f"| {layer} | {alpha:g} | {span} | {delay} | {delay * FRAME_MS} | {s['n_items']} | {rates} | "
                         f"{gains} |")
    return "\n".join(lines) + "\n"


def plot_delay_sweep(summary: Mapping[str, Any], path: str | Path, condition: str = STEER,
                     metrics: Sequence[str] = PLOTTED) -> None:
    """Recovery of each gap vs onset delay, one line per series (span; layer and alpha named if several), PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = series(summary, condition)
    several = len({(layer, alpha) for layer, alpha, _ in lines}) > 1
    fig, axes = plt.subplots(1, len(metrics), squeeze=False, figsize=(5.2 * len(metrics), 4.6), dpi=120,
                             layout="constrained")
    for col, metric in enumerate(metrics):
        ax = axes[0][col]
        ax.axhline(1.0, color="#999", lw=0.8, ls="--")
        ax.axhline(0.0, color="#999", lw=0.8)
        for k, ((layer, alpha, span), cells) in enumerate(lines.items()):
            shift = (k - (len(lines) - 1) / 2) * 0.08  # keeps the intervals of neighbouring lines apart
            xs, ys, lows, highs = [], [], [], []
            for cell in cells:
                entry = (cell["conditions"][condition].get("recovery_paired") or {}).get(metric) or {}
                if entry.get("recovery") is None:
                    continue
                xs.append(delay_of(cell) + shift)
                ys.append(entry["recovery"])
                has_ci = entry.get("ci_low") is not None
                lows.append(entry["recovery"] - entry["ci_low"] if has_ci else 0.0)
                highs.append(entry["ci_high"] - entry["recovery"] if has_ci else 0.0)
            label = f"span {span}" + (f", layer {layer}, alpha {alpha:g}" if several else "")
            ax.errorbar(xs, ys, yerr=[lows, highs], marker="o", ms=4, capsize=3, lw=1.4, label=label)
        delays = sorted({delay_of(c) for cells in lines.values() for c in cells})
        ax.set_xticks(delays, [f"{d}\n{d * FRAME_MS}" for d in delays])
        ax.set_xlabel("onset delay after the query's first speech (frames / ms)")
        ax.set_ylabel(f"recovery of the {METRIC_NAMES[metric]} gap")
        ax.set_title(f"{METRIC_NAMES[metric]}: 1 = no_interrupt, 0 = interrupt", fontsize=10)
        ax.legend(fontsize=8)
    refs = []
    for cond in (NO_INTERRUPT, INTERRUPT):
        b = summary["baselines"].get(cond)
        if b:
            refs.append(f"{cond}: " + ", ".join(f"{METRIC_NAMES[m]} {b[m]['mean']:.2f}" for m in metrics if b.get(m)))
    n = summary["n_items"]
    model = str(summary["model"]).split(" - ")[0]  # the label without its caveat, printed below in full
    fig.suptitle(f"What lateness costs ({condition}): {model}\n{n} item{'s' if n != 1 else ''}, oracle onset "
                 f"+ delay; bars: 95% paired bootstrap over items\n" + "; ".join(refs), fontsize=10)
    if summary.get("caveat"):
        fig.supxlabel(f"Caveat: {summary['caveat']}", fontsize=8, color="#a33")
    fig.savefig(path)
    plt.close(fig)


__all__ = ["FRAME_MS", "delay_of", "plot_delay_sweep", "render_delay_table", "series"]
