"""Paired take-over lags of the paired scenarios: speaking - listening and steered - unsteered, with intervals.

Each ZBB query is played after a short gap (the model is still listening) and a long one (it is talking);
the same query is its own control, so the comparison is the paired difference of its two lags, with the
paired BCa bootstrap over queries that ZBB's reports use (`duplex_steer.stats.difference_interval`,
seeded). A steered rerun of the speaking scenarios pairs with the unsteered run scenario by scenario
(same recording, same keyed sampling noise).

Censoring: a lag is censored when no take-over happens within `max_frames` of the onset. The main
difference uses the pairs where both lags were observed (`n_used`; `censored_pairs` counts the others); a
second difference over every pair counts a censored lag as `max_frames` (`censored_as_max_frames`): it
bounds the effect of the censored pairs (a censored lag is at least max_frames - k + 1 frames).
Roles come from the gaps; `measured_as_intended` counts the pairs whose MEASURED activity agrees (the
short-gap onset measured 'listening', the long-gap one 'speaking').
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..audio import FRAME_RATE
from ..stats import DEFAULT_CONFIDENCE, DEFAULT_N_BOOT, DEFAULT_SEED, difference_interval
from .inertia import InertiaReport, OnsetIntervention, OnsetWindows, Scenario, run_scenarios
from .options import K_CONSECUTIVE, MAX_FRAMES

SPEAKING_MINUS_LISTENING = "speaking - listening"
STEERED_MINUS_UNSTEERED = "steered - unsteered (speaking)"
LISTENING, SPEAKING, STEERED = "listening", "speaking", "speaking + steered"  # the figures' conditions
CENSORING = ("a lag is censored when no take-over happens within max_frames of the onset; 'difference' uses the "
             "pairs with both lags observed (n_used), 'censored_pairs' counts the others, and "
             "'censored_as_max_frames' repeats the difference over all pairs with censored lags set to max_frames")


def paired_lags(values: Sequence[int | None], reference: Sequence[int | None], max_frames: int,
                n_boot: int = DEFAULT_N_BOOT, seed: int = DEFAULT_SEED,
                confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """Paired difference values - reference of take-over lags (frames; None = censored), see the module doc.

    Returns {"n_pairs", "n_used", "censored_pairs", "censored_values", "censored_reference", "difference",
    "ci_low", "ci_high", "method", "note", "censored_as_max_frames": {"difference", "ci_low", "ci_high",
    "note"}, "frame_s"}.
    """
    if len(values) != len(reference):
        raise ValueError(f"paired lags must have the same length, got {len(values)} and {len(reference)}")
    used = [(a, b) for a, b in zip(values, reference, strict=True) if a is not None and b is not None]
    out: dict[str, Any] = {"n_pairs": len(values), "n_used": len(used), "censored_pairs": len(values) - len(used),
                           "censored_values": sum(a is None for a in values),
                           "censored_reference": sum(b is None for b in reference),
                           "difference": None, "ci_low": None, "ci_high": None, "method": None,
                           "note": "no pair with both take-overs observed" if not used else None,
                           "censored_as_max_frames": None, "frame_s": 1 / FRAME_RATE}
    kw = {"paired": True, "n_boot": n_boot, "seed": seed, "confidence": confidence}
    if used:
        entry = difference_interval([a for a, _ in used], [b for _, b in used], **kw)
        out.update({key: entry[key] for key in ("difference", "ci_low", "ci_high", "method", "note")})
    if values:
        def filled(xs: Sequence[int | None]) -> list[int]:
            return [max_frames if x is None else x for x in xs]

        bound = difference_interval(filled(values), filled(reference), **kw)
        out["censored_as_max_frames"] = {key: bound[key] for key in ("difference", "ci_low", "ci_high", "note")}
    return out


def pair_rows(scenarios: Sequence[Scenario]) -> list[tuple[str, int, int]]:
    """(pair id, row of the shortest gap = listening, row of the longest gap = speaking) per pair, in order."""
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(scenarios):
        rows.setdefault(s.pair_id or s.id, []).append(i)
    out = []
    for pair_id, idx in rows.items():
        if len(idx) < 2:
            continue
        by_gap = sorted(idx, key=lambda i: scenarios[i].gap_s)
        out.append((pair_id, by_gap[0], by_gap[-1]))
    return out


def scenario_lags(report: InertiaReport, n: int) -> list[int | None]:
    """The lag of each scenario (one onset per scenario, in scenario order)."""
    if len(report.inertias) != n:
        raise ValueError(f"expected one onset per scenario ({n}), the report has {len(report.inertias)}")
    return [x.frames for x in sorted(report.inertias, key=lambda x: x.item)]


def inertia_comparisons(scenarios: Sequence[Scenario], report: InertiaReport,
                        steered: InertiaReport | None = None, n_boot: int = DEFAULT_N_BOOT,
                        seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """{SPEAKING_MINUS_LISTENING: paired_lags + pairs, STEERED_MINUS_UNSTEERED: ... (with `steered`)}.

    `steered` is the rerun of the speaking scenarios (`speaking_scenarios`), in their order.
    """
    lags = scenario_lags(report, len(scenarios))
    condition = [x.condition for x in sorted(report.inertias, key=lambda x: x.item)]
    pairs = pair_rows(scenarios)
    listening, speaking = [lags[li] for _, li, _ in pairs], [lags[si] for _, _, si in pairs]
    entry = paired_lags(speaking, listening, report.max_frames, n_boot, seed)
    entry["measured_as_intended"] = sum(condition[li] == "listening" and condition[si] == "speaking"
                                        for _, li, si in pairs)
    entry["pairs"] = [{"pair": p, "listening": lags[li], "speaking": lags[si],
                       "measured": [condition[li], condition[si]]} for p, li, si in pairs]
    out = {SPEAKING_MINUS_LISTENING: entry}
    if steered is not None:
        steered_lags = scenario_lags(steered, len(pairs))
        s_entry = paired_lags(steered_lags, speaking, report.max_frames, n_boot, seed)
        s_entry["pairs"] = [{"pair": p, "unsteered": u, "steered": s}
                            for (p, _, _), u, s in zip(pairs, speaking, steered_lags, strict=True)]
        out[STEERED_MINUS_UNSTEERED] = s_entry
    return out


def speaking_scenarios(scenarios: Sequence[Scenario]) -> list[Scenario]:
    """The long-gap member of each pair (the model should be talking at its onset), in pair order."""
    return [scenarios[si] for _, _, si in pair_rows(scenarios)]


def listening_rows(scenarios: Sequence[Scenario]) -> list[int]:
    return [li for _, li, _ in pair_rows(scenarios)]


def speaking_rows(scenarios: Sequence[Scenario]) -> list[int]:
    return [si for _, _, si in pair_rows(scenarios)]


def mean_timeline(windows: OnsetWindows) -> dict[str, Any]:
    """Band S_gen / S_perc averaged over scenarios at each frame from the onset (NaN-aware), as JSON lists."""
    def mean(values: np.ndarray) -> list[float | None]:
        band = windows.band_average(values)  # [N, W]
        with np.errstate(invalid="ignore"):
            counts = np.isfinite(band).sum(0)
            m = np.where(counts > 0, np.where(np.isfinite(band), band, 0).sum(0) / np.maximum(counts, 1), np.nan)
        return [None if not np.isfinite(v) else round(float(v), 6) for v in m]

    return {"n": int(windows.S_gen.shape[0]), "band_S_gen": mean(windows.S_gen), "band_S_perc": mean(windows.S_perc)}


@dataclass
class PairedInertia:
    """The paired scenarios' runs (plain and, optionally, steered from each speaking onset) and their comparisons."""

    scenarios: list[Scenario]
    report: InertiaReport
    steered: InertiaReport | None
    comparisons: dict[str, Any]

    def groups(self) -> dict[str, tuple[OnsetWindows, list[int | None]]]:
        """Condition -> (onset windows, lags): listening, speaking and (when steered) speaking + steered."""
        lags = scenario_lags(self.report, len(self.scenarios))
        windows = self.report.windows
        if windows is None:
            raise ValueError("the scenario report has no onset windows (no scenario was run)")
        out = {name: (windows.subset(rows), [lags[i] for i in rows])
               for name, rows in ((LISTENING, listening_rows(self.scenarios)), (SPEAKING, speaking_rows(self.scenarios)))}
        if self.steered is not None and self.steered.windows is not None:
            out[STEERED] = (self.steered.windows, scenario_lags(self.steered, len(out[SPEAKING][1])))
        return out

    def to_json(self) -> dict[str, Any]:
        groups = self.groups()
        offsets = next(iter(groups.values()))[0].offsets
        return {"comparisons": self.comparisons, "censoring": CENSORING,
                "roles": "listening = the shortest gap of a pair, speaking = the longest (measured labels in 'pairs')",
                "timelines": {"offsets_frames": offsets.tolist(),
                              **{name: mean_timeline(w) for name, (w, _) in groups.items()}},
                "steered_onsets": [asdict(x) for x in self.steered.inertias] if self.steered else None}

    def lines(self) -> list[str]:
        return [comparison_line(name, entry) for name, entry in self.comparisons.items()]


def run_pairs(model, scenarios: Sequence[Scenario], batch_size: int = 8, k: int = K_CONSECUTIVE, max_frames: int = MAX_FRAMES,
              intervention: OnsetIntervention | None = None, n_boot: int = DEFAULT_N_BOOT,
              stats_seed: int = DEFAULT_SEED, **affinity_kwargs: Any) -> PairedInertia:
    """Run every scenario, then (with `intervention`, e.g. steering from the onset) the speaking ones again
    with the same keyed noise; compare the lags pairwise."""
    scenarios = list(scenarios)
    report = run_scenarios(model, scenarios, batch_size, k, max_frames, **affinity_kwargs)
    steered = None
    if intervention is not None:
        steered = run_scenarios(model, speaking_scenarios(scenarios), batch_size, k, max_frames,
                                intervention=intervention, **affinity_kwargs)
    return PairedInertia(scenarios, report, steered, inertia_comparisons(scenarios, report, steered, n_boot, stats_seed))


def comparison_line(name: str, entry: dict[str, Any]) -> str:
    """'speaking - listening: +3.2 frames [+1.1, +5.0], n=46 of 48 pairs (2 censored); censored as max_frames: ...'."""
    def interval(e: dict[str, Any]) -> str:
        return "[n/a]" if e.get("ci_low") is None else f"[{e['ci_low']:+.1f}, {e['ci_high']:+.1f}]"

    cens = f"n={entry['n_used']} of {entry['n_pairs']} pairs ({entry['censored_pairs']} censored)"
    if entry["difference"] is None:
        head = f"{name}: n/a ({entry['note']}), {cens}"
    else:
        head = f"{name}: {entry['difference']:+.1f} frames {interval(entry)}, {cens}"
    bound = entry.get("censored_as_max_frames")
    if entry["censored_pairs"] and bound is not None:
        head += f"; censored as max_frames: {bound['difference']:+.1f} {interval(bound)}"
    return head


__all__ = ["CENSORING", "LISTENING", "SPEAKING", "SPEAKING_MINUS_LISTENING", "STEERED", "STEERED_MINUS_UNSTEERED",
           "PairedInertia", "comparison_line", "inertia_comparisons", "listening_rows", "mean_timeline", "pair_rows",
           "paired_lags", "run_pairs", "scenario_lags", "speaking_rows", "speaking_scenarios"]
