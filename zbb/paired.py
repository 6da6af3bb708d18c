"""Paired comparisons for ZBB reports: each condition against its reference, item by item.

References: the side-effect conditions `buffered+steer` and `no_interrupt+steer` are compared with
`buffered` and `no_interrupt`; every other condition (steered, controls, buffered, no_interrupt: the
gap) with `interrupt`. Only items scored in both conditions enter a pair. Differences and recovery
resample items (repetitions averaged per item first); McNemar counts (item, repetition) pairs of 0/1
outcomes (the statistics are in `zbb.stats`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_N_BOOT,
    DEFAULT_SEED,
    difference_interval,
    mcnemar_exact,
    recovery_interval,
)

PAIRED_METRICS = ("correct", "iwor", "talked", "stopped", "tor")  # tor: FDB imports only
RECOVERY_METRICS = ("correct", "iwor")
INTERRUPT, NO_INTERRUPT = "interrupt", "no_interrupt"
LABELS = {"correct": "correctness", "iwor": "IWOR", "talked": "talked during the query",
          "stopped": "stopped after onset", "tor": "take-over (FDB)"}


def reference_of(condition: str) -> str | None:
    """The condition a condition is compared with (None for `interrupt` itself)."""
    base = condition.partition("@")[0]
    if base == INTERRUPT:
        return None
    scenario, _, injected = base.partition("+")
    return scenario if injected and scenario in ("buffered", NO_INTERRUPT) else INTERRUPT


def unit_values(records: Iterable[Mapping[str, Any]], condition: str, metric: str) -> dict[tuple[str, int], float]:
    """(item id, repetition) -> value of `metric` in `condition` (missing and None values left out)."""
    out = {}
    for r in records:
        if r["condition"] == condition and r.get(metric) is not None and r.get(metric) != "":
            out[(str(r["id"]), int(r.get("repetition", 0)))] = float(r[metric])
    return out


def _item_means(units: Mapping[tuple[str, int], float], keep: set[tuple[str, int]]) -> dict[str, float]:
    sums: dict[str, list[float]] = {}
    for key in sorted(keep):
        sums.setdefault(key[0], []).append(units[key])
    return {item: sum(v) / len(v) for item, v in sums.items()}


def _aligned(records: Sequence[Mapping[str, Any]], conditions: Sequence[str], metric: str) -> tuple[list[list[float]], list[list[float]]]:
    """Per-item means (aligned by item) and per-unit values (aligned by unit) over units scored in all."""
    return _aligned_units([unit_values(records, c, metric) for c in conditions])


def _aligned_units(units: Sequence[Mapping[tuple[str, int], float]]) -> tuple[list[list[float]], list[list[float]]]:
    common = set(units[0]).intersection(*units[1:])
    means = [_item_means(u, common) for u in units]
    items = sorted(means[0])
    return [[m[i] for i in items] for m in means], [[u[k] for k in sorted(common)] for u in units]


def paired_comparisons(records: Sequence[Mapping[str, Any]], n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED,
                       confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """{condition: {"reference", "metrics": {metric: difference_interval(...) + {"mcnemar": ...}}}}."""
    present = {str(r["condition"]) for r in records}
    out: dict[str, Any] = {}
    for condition in sorted(present):
        ref = reference_of(condition)
        if ref is None or ref not in present:
            continue
        metrics: dict[str, Any] = {}
        for metric in PAIRED_METRICS:
            (values, reference), (unit_a, unit_b) = _aligned(records, [condition, ref], metric)
            if not values:
                continue
            entry = difference_interval(values, reference, paired=True, n_boot=n_boot, seed=seed, confidence=confidence)
            try:
                entry["mcnemar"] = mcnemar_exact(unit_a, unit_b)
            except ValueError as err:  # e.g. a judge's graded scores: no exact test on them
                entry["mcnemar"] = {"p_value": None, "note": str(err)}
            metrics[metric] = entry
        if metrics:
            out[condition] = {"reference": ref, "metrics": metrics}
    return out


def paired_across_runs(records: Sequence[Mapping[str, Any]], reference: Sequence[Mapping[str, Any]],
                       metrics: Sequence[str] = RECOVERY_METRICS, n_boot: int = DEFAULT_N_BOOT,
                       seed: int = DEFAULT_SEED, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """{condition: {metric: difference_interval(...) + {"mcnemar": ...}}}: each condition of one run against
    the same condition of a `reference` run on the same items (e.g. the subject-muted rendering, `zbb.muting`),
    paired by (item, repetition) as within a run."""
    out: dict[str, Any] = {}
    for condition in sorted({str(r["condition"]) for r in records} & {str(r["condition"]) for r in reference}):
        entry = {}
        for metric in metrics:
            units = [unit_values(records, condition, metric), unit_values(reference, condition, metric)]
            (values, base), (unit_a, unit_b) = _aligned_units(units)
            if values:
                entry[metric] = difference_interval(values, base, paired=True, n_boot=n_boot, seed=seed,
                                                    confidence=confidence)
                entry[metric]["mcnemar"] = mcnemar_exact(unit_a, unit_b)
        if entry:
            out[condition] = entry
    return out


def paired_recovery(records: Sequence[Mapping[str, Any]], n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED,
                    confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """{condition: {metric: recovery_interval(...)}} for each condition compared with `interrupt`."""
    present = {str(r["condition"]) for r in records}
    if INTERRUPT not in present or NO_INTERRUPT not in present:
        return {}
    out: dict[str, Any] = {}
    for condition in sorted(present):
        if condition == NO_INTERRUPT or reference_of(condition) != INTERRUPT:
            continue
        entry = {}
        for metric in RECOVERY_METRICS:
            (c, i, n), _ = _aligned(records, [condition, INTERRUPT, NO_INTERRUPT], metric)
            if c:
                entry[metric] = recovery_interval(c, i, n, n_boot=n_boot, seed=seed, confidence=confidence)
        if entry:
            out[condition] = entry
    return out


def _interval(entry: Mapping[str, Any]) -> str:
    if entry.get("ci_low") is None:
        return "n/a"
    return f"[{entry['ci_low']:+.2f}, {entry['ci_high']:+.2f}]"


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def render_paired_markdown(paired: Mapping[str, Any], recovery: Mapping[str, Any], order: Sequence[str],
                           confidence: float = DEFAULT_CONFIDENCE) -> str:
    """The paired-difference table, the recovery table with intervals, and their notes (markdown)."""
    if not paired:
        return ""
    level = round(100 * confidence)
    lines = ["", f"## Paired differences (condition - reference, same items; {level}% BCa bootstrap over items, "
                 "exact McNemar p)", "",
             "| condition | reference | metric | n items | difference | interval | gained / lost pairs | McNemar p |",
             "|---|---|---|---|---|---|---|---|"]
    notes = []
    for condition in [c for c in order if c in paired]:
        entry = paired[condition]
        for metric, m in entry["metrics"].items():
            mc = m["mcnemar"]
            counts = f"{mc['gained']} / {mc['lost']}" if "gained" in mc else "n/a"
            lines.append(f"| {condition} | {entry['reference']} | {LABELS[metric]} | {m['n']} | "
                         f"{m['difference']:+.2f} | {_interval(m)} | {counts} | {_p(mc['p_value'])} |")
            for note in (m.get("note"), mc.get("note")):
                if note:
                    notes.append(f"- {condition} vs {entry['reference']}, {LABELS[metric]}: {note}")
    if recovery:
        lines += ["", "## Recovery = (condition - interrupt) / (no_interrupt - interrupt)", "",
                  "| condition | metric | n items | gap | recovery | interval |", "|---|---|---|---|---|---|"]
        for condition in [c for c in order if c in recovery]:
            for metric, r in recovery[condition].items():
                lines.append(f"| {condition} | {LABELS[metric]} | {r['n']} | {r['gap']:.2f} | "
                             f"{'n/a' if r['recovery'] is None else format(r['recovery'], '.2f')} | {_interval(r)} |")
                if r.get("note"):
                    notes.append(f"- recovery of {condition}, {LABELS[metric]}: {r['note']}")
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"


__all__ = ["PAIRED_METRICS", "RECOVERY_METRICS", "paired_comparisons", "paired_recovery", "reference_of",
           "render_paired_markdown", "render_reading_notes", "unit_values"]


def render_reading_notes(n_items: int, confidence: float = DEFAULT_CONFIDENCE) -> str:
    """How to read the report, and what its figures cannot show (markdown)."""
    level = round(100 * confidence)
    return "\n".join([
        "", "## Reading these numbers", "",
        f"- n = {n_items} items at most per condition (fewer where an item was not scored in both members of a "
        "pair); repetitions of an item are averaged first, so they do not narrow the intervals.",
        f"- Single rates: {level}% Wilson score intervals over items; other measures (latency, frames to stop): "
        f"{level}% percentile bootstrap over items. Differences: {level}% BCa bootstrap over items, resampling "
        "both conditions of an item together; McNemar: exact two-sided binomial test on the discordant "
        "(item, repetition) pairs. Recovery: percentile bootstrap of the ratio over the same item resamples.",
        "- Not shown: no correction for the many comparisons in one report; the intervals cover item sampling "
        "within this item bank, not other wordings, voices, recordings or models; the rule-based scorer reads "
        "the model's text (or an ASR transcript), not what a listener understood; a difference of rates says "
        "nothing about why; a model with random or toy weights checks the pipeline, never the method.",
    ]) + "\n"
