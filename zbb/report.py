"""Aggregate per-item ZBB records into statistics, a recovery ratio, and report files.

A record is a dict with at least ``id``, ``condition``, ``correct`` and ``iwor`` (0/1 or bool),
optionally ``tor`` (0/1), ``latency`` (seconds or None) and any extra fields (seed, repetition...).

Statistics are per condition and per metric, over ITEMS: the records of one item in one condition
(several seeds or repetitions) are first averaged, so n is the number of items and repeated runs
do not shrink the error bars. Mean +- standard error (ddof=1) as in the paper's Table 2, plus a
Wilson score interval for rates (a percentile bootstrap for other measures); see `zbb.stats`.
Conditions are compared with their reference item by item (`zbb.paired`): paired BCa bootstrap
intervals of the difference and exact McNemar p-values.

Recovery = (steered - interrupt) / (no_interrupt - interrupt): the share of the gap that
interruption opens which a condition closes (1 = back to the no-interrupt upper bound), with a
paired bootstrap interval. ZBB's turn measure is `stopped` / `stop_frames` (`zbb.stopping`); FDB's
take-over rate (`tor`) is kept for `zbb import-fdb`.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .condition_check import check_conditions, mark_records, render_condition_check, scored_records
from .header import render_header
from .paired import paired_comparisons, paired_recovery, render_paired_markdown, render_reading_notes
from .stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_SEED,
    bootstrap_interval,
    mean_se,
    wilson_interval,
)
from .talk_split import render_talk_split

NO_INTERRUPT = "no_interrupt"
INTERRUPT = "interrupt"
STEER = "interrupt+steer"
BUFFERED = "buffered"
KNOWN_CONDITIONS = (NO_INTERRUPT, INTERRUPT, STEER, "interrupt+random", "interrupt+mistimed", BUFFERED,
                    "buffered+steer", "no_interrupt+steer")
METRICS = ("correct", "iwor", "talked", "stopped", "stop_frames", "tor", "latency")
METRIC_LABELS = {"correct": "correctness", "iwor": "IWOR", "talked": "talked during the query",
                 "stopped": "stopped after onset", "stop_frames": "frames to stop", "tor": "take-over rate (FDB)",
                 "latency": "latency (s)"}
RATE_METRICS = ("correct", "iwor")
BINARY_METRICS = ("correct", "iwor", "talked", "stopped", "tor")  # rates: Wilson intervals
_VARIANT_LABEL = re.compile(r"[A-Za-z0-9_.=,:+-]+")


def check_condition(name: str) -> str:
    """Return ``name`` if it is a known condition or a labelled variant ``<known>@<label>``.

    Known: no_interrupt, interrupt, interrupt+steer, interrupt+random (random direction control),
    interrupt+mistimed (right vector, wrong time), buffered ("um, excuse me," before the query),
    buffered+steer and no_interrupt+steer (side effects of steering where nothing is missed). A variant such as "interrupt+steer@alpha=3"
    keeps sweeps apart. Raises ValueError otherwise, so typos do not create a new condition.
    """
    base, sep, label = name.partition("@")
    if base in KNOWN_CONDITIONS and (not sep or _VARIANT_LABEL.fullmatch(label)):
        return name
    raise ValueError(
        f"unknown condition {name!r}; expected one of {', '.join(KNOWN_CONDITIONS)} or '<one of them>@<label>'"
    )


def condition_order(conditions: Iterable[str]) -> list[str]:
    """Known conditions in their canonical order, then variants and others alphabetically."""

    def key(name: str) -> tuple[int, str]:
        base = name.partition("@")[0]
        rank = KNOWN_CONDITIONS.index(base) if base in KNOWN_CONDITIONS else len(KNOWN_CONDITIONS)
        return (rank, name)

    return sorted(set(conditions), key=key)


def _as_number(value: Any) -> float | None:
    """0/1/bool/float -> float; None, "" and NaN -> None (a missing measurement)."""
    if value is None or value == "":
        return None
    number = float(value)
    return None if math.isnan(number) else number


def item_means(records: Iterable[Mapping[str, Any]], condition: str, metric: str) -> dict[str, float]:
    """Per-item mean of ``metric`` in ``condition`` over its records (repetitions); items lacking it are left out."""
    sums: dict[str, list[float]] = {}
    for record in records:
        if record["condition"] != condition or metric not in record:
            continue
        value = _as_number(record[metric])
        if value is not None:
            sums.setdefault(str(record["id"]), []).append(value)
    return {item: sum(vals) / len(vals) for item, vals in sums.items()}


def summarize(
    records: Sequence[Mapping[str, Any]],
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    """Per-condition statistics and recovery, as a JSON-ready dict.

    Shape: {"conditions": {cond: {"n_items", "n_records", "metrics": {metric: {"n", "mean", "se",
    "ci_low", "ci_high"}}}}, "recovery": {cond: {metric: value-or-None, ...}}, "bootstrap": {...}}.
    Metrics without any value in a condition are omitted there.
    """
    if not records:
        raise ValueError("no records to summarize")
    conditions: dict[str, Any] = {}
    for condition in condition_order(r["condition"] for r in records):
        rows = [r for r in records if r["condition"] == condition]
        metrics: dict[str, Any] = {}
        for metric in METRICS:
            per_item = item_means(rows, condition, metric)
            if not per_item:
                continue
            values = [per_item[k] for k in sorted(per_item)]
            mean, se = mean_se(values)
            if metric in BINARY_METRICS:
                (low, high), method = wilson_interval(sum(values), len(values), confidence), "wilson"
            else:
                low, high = bootstrap_interval(values, n_boot=n_boot, seed=seed, confidence=confidence)
                method = "percentile bootstrap"
            metrics[metric] = {"n": len(values), "mean": mean, "se": se, "ci_low": low, "ci_high": high,
                               "ci_method": method}
        conditions[condition] = {
            "n_items": len({str(r["id"]) for r in rows}),
            "n_records": len(rows),
            "metrics": metrics,
        }
    summary: dict[str, Any] = {
        "conditions": conditions,
        "recovery": recovery(conditions),
        "recovery_gap": recovery_gap(conditions),
        "bootstrap": {"n_boot": n_boot, "seed": seed, "confidence": confidence, "resampled": "items",
                      "rates": "Wilson score interval", "differences": "paired BCa bootstrap",
                      "tests": "exact McNemar (binomial on discordant pairs)"},
        "paired": paired_comparisons(records, n_boot=n_boot, seed=seed, confidence=confidence),
        "recovery_paired": paired_recovery(records, n_boot=n_boot, seed=seed, confidence=confidence),
    }
    return summary


def recovery(conditions: Mapping[str, Any]) -> dict[str, Any]:
    """Recovery of correctness and IWOR for every condition other than the two references.

    Needs "no_interrupt" and "interrupt" in ``conditions`` (a summarize() "conditions" dict);
    otherwise returns {}. A metric whose denominator (no_interrupt - interrupt) is 0 gets None and
    a "<metric>_reason" entry.
    """
    if NO_INTERRUPT not in conditions or INTERRUPT not in conditions:
        return {}
    out: dict[str, Any] = {}
    for condition in conditions:
        if condition in (NO_INTERRUPT, INTERRUPT):
            continue
        entry: dict[str, Any] = {}
        for metric in RATE_METRICS:
            try:
                upper = conditions[NO_INTERRUPT]["metrics"][metric]["mean"]
                lower = conditions[INTERRUPT]["metrics"][metric]["mean"]
                steered = conditions[condition]["metrics"][metric]["mean"]
            except KeyError:
                entry[metric] = None
                entry[f"{metric}_reason"] = "metric missing in a condition"
                continue
            gap = upper - lower
            if gap == 0:
                entry[metric] = None
                entry[f"{metric}_reason"] = "no_interrupt equals interrupt: no gap to recover"
            else:
                entry[metric] = (steered - lower) / gap
        out[condition] = entry
    return out


def recovery_gap(conditions: Mapping[str, Any]) -> dict[str, float]:
    """The recovery denominator, no_interrupt - interrupt, per rate metric present in both ({} if not)."""
    try:
        upper, lower = conditions[NO_INTERRUPT]["metrics"], conditions[INTERRUPT]["metrics"]
    except KeyError:
        return {}
    return {m: upper[m]["mean"] - lower[m]["mean"] for m in RATE_METRICS if m in upper and m in lower}


def write_items_csv(records: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """One row per record: id, condition, correct, iwor first, then the other scalar fields."""
    leading = ["id", "condition", "correct", "iwor"]
    columns = list(leading)
    for record in records:
        for key, value in record.items():
            if key not in columns and not isinstance(value, (list, dict)):
                columns.append(key)

    def cell(value: Any) -> Any:
        if isinstance(value, bool):
            return int(value)
        return "" if value is None else value

    with Path(path).open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for record in records:
            writer.writerow([cell(record.get(col)) for col in columns])


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_markdown(summary: Mapping[str, Any], caveat: str | None = None, title: str = "ZBB report",
                    header: Mapping[str, Any] | None = None) -> str:
    """A readable markdown report: settings, one table per metric group, paired differences, recovery,
    how to read them, and the caveat line."""
    boot = summary["bootstrap"]
    level = round(100 * boot["confidence"])
    lines = [f"# {title}", ""]
    if header:
        lines += [render_header(header)]
    if caveat:
        lines += [f"**Caveat:** {caveat}", ""]
    lines += [
        f"Mean +- standard error over items; [{level}% Wilson interval for rates, else percentile bootstrap "
        f"({boot['n_boot']} item resamples, seed {boot['seed']})]. Repetitions of an item are averaged first.",
        "",
    ]
    present = [m for m in METRICS if any(m in c["metrics"] for c in summary["conditions"].values())]
    header = "| condition | n items | " + " | ".join(METRIC_LABELS[m] for m in present) + " |"
    lines += [header, "|" + "---|" * (2 + len(present))]
    for condition, stats in summary["conditions"].items():
        cells = []
        for metric in present:
            m = stats["metrics"].get(metric)
            if m is None:
                cells.append("n/a")
                continue
            suffix = f" (n={m['n']})" if m["n"] != stats["n_items"] else ""
            cells.append(
                f"{_fmt(m['mean'])} +- {_fmt(m['se'])} [{_fmt(m['ci_low'])}, {_fmt(m['ci_high'])}]{suffix}"
            )
        lines.append(f"| {condition} | {stats['n_items']} | " + " | ".join(cells) + " |")
    order = list(summary["conditions"])
    if summary.get("paired"):
        lines.append(render_paired_markdown(summary["paired"], summary.get("recovery_paired", {}), order,
                                            boot["confidence"]))
    n_items = max((c["n_items"] for c in summary["conditions"].values()), default=0)
    lines.append(render_reading_notes(n_items, boot["confidence"]))
    return "\n".join(lines) + "\n"


def plot_report(
    summary: Mapping[str, Any], path: str | Path, title: str = "ZBB", caveat: str | None = None
) -> None:
    """Bar chart of correctness and IWOR per condition with Wilson-interval error bars (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conditions = list(summary["conditions"])
    level = round(100 * summary["bootstrap"]["confidence"])
    colors = {"correct": "#3b6ea5", "iwor": "#e08a2c"}
    width = 0.38
    x = np.arange(len(conditions))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(conditions) + 2.5), 4.6), dpi=120)
    for offset, metric in zip((-width / 2, width / 2), RATE_METRICS, strict=True):
        means, lows, highs = [], [], []
        for condition in conditions:
            m = summary["conditions"][condition]["metrics"].get(metric)
            means.append(m["mean"] if m else np.nan)
            lows.append(m["mean"] - m["ci_low"] if m else 0.0)
            highs.append(m["ci_high"] - m["mean"] if m else 0.0)
        bars = ax.bar(
            x + offset,
            means,
            width,
            yerr=[lows, highs],
            capsize=4,
            color=colors[metric],
            label=METRIC_LABELS[metric],
            error_kw={"elinewidth": 1.2, "ecolor": "#222222"},
        )
        for bar, value in zip(bars, means, strict=True):
            if not np.isnan(value):  # inside the bar's foot; dark above a bar too short to hold it
                inside = value >= 0.07
                ax.text(
                    bar.get_x() + bar.get_width() / 2,
                    0.015 if inside else value + 0.015,
                    f"{value:.2f}",
                    ha="center",
                    va="bottom",
                    fontsize=9,
                    color="white" if inside else "#222222",
                    fontweight="bold",
                )
    ax.set_xticks(
        x, [f"{c.replace('@', chr(10) + '@')}\n(n={summary['conditions'][c]['n_items']})" for c in conditions]
    )
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("rate (share of items)")
    ax.set_xlabel("condition")
    ax.set_title(
        f"{title}: correctness and IWOR per condition\n(error bars: {level}% Wilson interval over items)",
        fontsize=11,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    if caveat:
        fig.text(0.01, 0.01, f"Caveat: {caveat}", fontsize=8, color="#a33", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.04 if caveat else 0, 1, 1))
    fig.savefig(path)
    plt.close(fig)


def summarize_scored(records: Sequence[Mapping[str, Any]], keep_unmet: bool = False, **kwargs: Any) -> dict[str, Any]:
    """`summarize` over the records whose condition happened (all with ``keep_unmet``), plus the check.

    A condition whose every record was left out stays in the table with 0 items and no metrics;
    ``summary["condition_check"]`` holds the shares and the unmet items (``zbb.condition_check``).
    """
    scored = scored_records(records, keep_unmet)
    summary = summarize(scored, **kwargs) if scored else {**summarize(records, **kwargs), "conditions": {},
                                                          "recovery": {}, "recovery_gap": {}}
    conditions = summary["conditions"]
    for condition in condition_order(str(r["condition"]) for r in records):
        conditions.setdefault(condition, {"n_items": 0, "n_records": 0, "metrics": {}})
    summary["conditions"] = {c: conditions[c] for c in condition_order(conditions)}
    summary["condition_check"] = check_conditions(records, keep_unmet)
    return summary


def write_report(
    records: Sequence[Mapping[str, Any]],
    out_dir: str | Path,
    caveat: str | None = None,
    title: str = "ZBB report",
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = DEFAULT_SEED,
    extra: Mapping[str, Any] | None = None,
    keep_unmet: bool = False,
    header: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write items.csv, report.json, report.md and report.png into ``out_dir``; return report.json's content.

    ``extra`` is merged into report.json (e.g. which scorer or model produced the replies). Records whose
    condition did not happen (``zbb.condition_check``) are listed and left out of the scores unless
    ``keep_unmet``. ``header`` holds the run's settings (`zbb.header.run_header`): report.json's
    "settings" and the top of report.md.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize_scored(records, keep_unmet, n_boot=n_boot, seed=seed)
    report: dict[str, Any] = {"title": title, "caveat": caveat, "settings": dict(header or {}), **summary,
                              **dict(extra or {})}
    write_items_csv(mark_records(records, keep_unmet), out / "items.csv")
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    markdown = render_markdown(summary, caveat=caveat, title=title, header=header) + render_condition_check(summary["condition_check"])
    split = render_talk_split("## Stopped, or heard through? (`zbb talk-split`)", scored_records(records, keep_unmet))
    markdown += "\n" + split if split else ""
    (out / "report.md").write_text(markdown, encoding="utf-8")
    plot_report(summary, out / "report.png", title=title, caveat=caveat)
    return report


__all__ = [
    "INTERRUPT",
    "KNOWN_CONDITIONS",
    "METRICS",
    "NO_INTERRUPT",
    "STEER",
    "bootstrap_interval",
    "check_condition",
    "condition_order",
    "item_means",
    "mean_se",
    "plot_report",
    "recovery",
    "recovery_gap",
    "render_markdown",
    "summarize",
    "summarize_scored",
    "write_items_csv",
    "write_report",
]
