"""Paired take-over lags of the paired scenarios: speaking - listening and steered - unsteered, with intervals.

Each ZBB query is played after a short and a long gap following its context turn ("Tell me about X"), so
that the model is in a different state at the query's onset. Roles are MEASURED (the onset's label from
the model's text stream, `probes.activity`), not assumed from the gap: a model that starts talking at
once is speaking after the short gap and may be done (listening) after a long one. A query whose
scenarios were measured in both states is its own control: the comparison is the paired difference of
its two lags, with the paired BCa bootstrap over queries that ZBB's reports use
(`duplex_steer.stats.difference_interval`, seeded); queries measured in one state only are listed and
left out. A steered rerun of every scenario measured speaking pairs with its unsteered run scenario by
scenario (same recording, same keyed sampling noise).

Censoring: a lag is censored when no take-over happens within `max_frames` of the onset. The main
difference uses the pairs where both lags were observed (`n_used`; `censored_pairs` counts the others); a
second difference over every pair counts a censored lag as `max_frames` (`censored_as_max_frames`): it
bounds the effect of the censored pairs (a censored lag is at least max_frames - k + 1 frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..audio import FRAME_RATE
from ..stats import DEFAULT_CONFIDENCE, DEFAULT_N_BOOT, DEFAULT_SEED, difference_interval
from .inertia import InertiaReport, OnsetInertia, OnsetIntervention, OnsetWindows, Scenario, run_scenarios
from .options import K_CONSECUTIVE, MAX_FRAMES

SPEAKING_MINUS_LISTENING = "speaking - listening"
STEERED_MINUS_UNSTEERED = "steered - unsteered (speaking)"
LISTENING, SPEAKING, STEERED = "listening", "speaking", "speaking + steered"  # the figures' conditions
ROLES = ("roles are measured: a scenario is 'speaking' when the model's text stream shows speech in the frames "
         "before the onset, else 'listening'; a query pairs its shortest-gap scenario of each state, and queries "
         "measured in one state only are listed in 'same_state_queries'; the steered rerun repeats every "
         "scenario measured speaking")
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


def scenario_lags(report: InertiaReport, n: int) -> list[int | None]:
    """The lag of each scenario (one onset per scenario, in scenario order)."""
    return [x.frames for x in scenario_onsets(report, n)]


def scenario_onsets(report: InertiaReport, n: int) -> list[OnsetInertia]:
    if len(report.inertias) != n:
        raise ValueError(f"expected one onset per scenario ({n}), the report has {len(report.inertias)}")
    return sorted(report.inertias, key=lambda x: x.item)


def role_rows(scenarios: Sequence[Scenario], conditions: Sequence[str]) -> tuple[list[tuple[str, int, int]], list[dict]]:
    """Per query: (pair id, a row measured 'listening', a row measured 'speaking'), the shortest gap of each;
    and the queries whose scenarios were all measured in one state (left out of the comparison)."""
    rows: dict[str, list[int]] = {}
    for i, s in enumerate(scenarios):
        rows.setdefault(s.pair_id or s.id, []).append(i)
    pairs, same = [], []
    for pair_id, idx in rows.items():
        by_gap = sorted(idx, key=lambda i: scenarios[i].gap_s)
        listening = [i for i in by_gap if conditions[i] == LISTENING]
        speaking = [i for i in by_gap if conditions[i] == SPEAKING]
        if listening and speaking:
            pairs.append((pair_id, listening[0], speaking[0]))
        else:
            same.append({"pair": pair_id, "measured": {f"gap {scenarios[i].gap_s:g} s": conditions[i] for i in by_gap}})
    return pairs, same


def speaking_rows(report: InertiaReport, n: int) -> list[int]:
    """The scenarios measured 'speaking' at their onset (the ones a steered rerun repeats)."""
    return [i for i, x in enumerate(scenario_onsets(report, n)) if x.condition == SPEAKING]


def listening_rows(report: InertiaReport, n: int) -> list[int]:
    return [i for i, x in enumerate(scenario_onsets(report, n)) if x.condition == LISTENING]


def inertia_comparisons(scenarios: Sequence[Scenario], report: InertiaReport,
                        steered: InertiaReport | None = None, n_boot: int = DEFAULT_N_BOOT,
                        seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """{SPEAKING_MINUS_LISTENING: paired_lags + pairs, STEERED_MINUS_UNSTEERED: ... (with `steered`)}.

    `steered` is the rerun of the scenarios measured speaking (`speaking_rows`), in their order.
    """
    onsets = scenario_onsets(report, len(scenarios))
    lags, conditions = [x.frames for x in onsets], [x.condition for x in onsets]
    pairs, same = role_rows(scenarios, conditions)
    listening, speaking = [lags[li] for _, li, _ in pairs], [lags[si] for _, _, si in pairs]
    entry = paired_lags(speaking, listening, report.max_frames, n_boot, seed)
    if not pairs:
        entry["note"] = "no query was measured both listening and speaking (see same_state_queries; try other --gaps)"
    entry["queries"] = len({s.pair_id or s.id for s in scenarios})
    entry["same_state_queries"] = same
    entry["pairs"] = [{"pair": p, "listening": lags[li], "speaking": lags[si],
                       "gaps_s": [scenarios[li].gap_s, scenarios[si].gap_s]} for p, li, si in pairs]
    out = {SPEAKING_MINUS_LISTENING: entry}
    if steered is not None:
        rows = speaking_rows(report, len(scenarios))
        steered_lags = scenario_lags(steered, len(rows))
        s_entry = paired_lags(steered_lags, [lags[i] for i in rows], report.max_frames, n_boot, seed)
        s_entry["pairs"] = [{"scenario": scenarios[i].id, "unsteered": lags[i], "steered": lag}
                            for i, lag in zip(rows, steered_lags, strict=True)]
        out[STEERED_MINUS_UNSTEERED] = s_entry
    return out


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
        """Condition -> (onset windows, lags) of the scenarios measured listening, measured speaking and (when
        steered) their steered rerun; conditions without a scenario are left out."""
        n = len(self.scenarios)
        lags = scenario_lags(self.report, n)
        windows = self.report.windows
        if windows is None:
            raise ValueError("the scenario report has no onset windows (no scenario was run)")
        out = {name: (windows.subset(rows), [lags[i] for i in rows])
               for name, rows in ((LISTENING, listening_rows(self.report, n)), (SPEAKING, speaking_rows(self.report, n)))
               if rows}
        if self.steered is not None and self.steered.windows is not None:
            out[STEERED] = (self.steered.windows, [x.frames for x in sorted(self.steered.inertias, key=lambda x: x.item)])
        return out

    def to_json(self) -> dict[str, Any]:
        groups = self.groups()
        offsets = next(iter(groups.values()))[0].offsets
        return {"comparisons": self.comparisons, "censoring": CENSORING,
                "roles": ROLES,
                "timelines": {"offsets_frames": offsets.tolist(),
                              **{name: mean_timeline(w) for name, (w, _) in groups.items()}},
                "steered_onsets": [asdict(x) for x in self.steered.inertias] if self.steered else None}

    def lines(self) -> list[str]:
        return [comparison_line(name, entry) for name, entry in self.comparisons.items()]


def run_pairs(model, scenarios: Sequence[Scenario], batch_size: int = 8, k: int = K_CONSECUTIVE, max_frames: int = MAX_FRAMES,
              intervention: OnsetIntervention | None = None, n_boot: int = DEFAULT_N_BOOT,
              stats_seed: int = DEFAULT_SEED, **affinity_kwargs: Any) -> PairedInertia:
    """Run every scenario, then (with `intervention`, e.g. steering from the onset) the ones measured speaking
    again with the same keyed noise; compare the lags pairwise."""
    scenarios = list(scenarios)
    report = run_scenarios(model, scenarios, batch_size, k, max_frames, **affinity_kwargs)
    steered = None
    rows = speaking_rows(report, len(scenarios))
    if intervention is not None and rows:
        steered = run_scenarios(model, [scenarios[i] for i in rows], batch_size, k, max_frames,
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


__all__ = ["CENSORING", "LISTENING", "ROLES", "SPEAKING", "SPEAKING_MINUS_LISTENING", "STEERED",
           "STEERED_MINUS_UNSTEERED", "PairedInertia", "comparison_line", "inertia_comparisons", "listening_rows",
           "mean_timeline", "paired_lags", "role_rows", "run_pairs", "scenario_lags", "scenario_onsets",
           "speaking_rows"]
