"""Did each item's condition really happen? Interruptions must land while the model speaks, normal turns
while it is silent.

The runner places the query causally and records `model_speaking_at_onset` (the model's text rule,
`duplex_steer.probes.activity`, at the frame before the onset). An `interrupt` (or `buffered`) item whose
query landed in a pause, or a `no_interrupt` item whose query landed while the model still talked (the
wait cap places the query anyway), did not test its condition. Every report shows, per condition, the
share of items where it happened; the others are listed and, by default, left out of that condition's
score (`keep_unmet=True` keeps them). Records without the field (replies scored from a file,
Full-Duplex-Bench imports) are not checked and always scored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

SPEAKING_FIELD = "model_speaking_at_onset"
# scenario -> whether the model must be speaking at the query's onset for the condition to have happened
EXPECTED_SPEAKING = {"interrupt": True, "buffered": True, "no_interrupt": False}


def expected_speaking(condition: str) -> bool | None:
    """True / False: the model must be speaking / silent at the onset; None: nothing expected."""
    scenario = condition.partition("@")[0].partition("+")[0]
    return EXPECTED_SPEAKING.get(scenario)


def condition_met(record: Mapping[str, Any]) -> bool | None:
    """Whether the record's condition happened; None when it cannot be told (no expectation or no field)."""
    expected = expected_speaking(str(record["condition"]))
    speaking = record.get(SPEAKING_FIELD)
    if expected is None or speaking is None:
        return None
    return bool(speaking) == expected


def check_conditions(records: Sequence[Mapping[str, Any]], keep_unmet: bool = False) -> dict[str, Any]:
    """Per condition: the share of checked records whose condition happened, and those where it did not.

    Shape: {"keep_unmet", "n_excluded", "conditions": {cond: {"expected": "speaking" | "silent",
    "n_checked", "n_met", "share_met", "unmet": [{"id", "repetition", "onset_frame"}]}}}. Only
    conditions with at least one checkable record appear.
    """
    out: dict[str, Any] = {}
    for record in records:
        met = condition_met(record)
        if met is None:
            continue
        entry = out.setdefault(str(record["condition"]), {
            "expected": "speaking" if expected_speaking(str(record["condition"])) else "silent",
            "n_checked": 0, "n_met": 0, "unmet": []})
        entry["n_checked"] += 1
        entry["n_met"] += int(met)
        if not met:
            entry["unmet"].append({"id": record["id"], "repetition": record.get("repetition"),
                                   "onset_frame": record.get("onset_frame")})
    for entry in out.values():
        entry["share_met"] = entry["n_met"] / entry["n_checked"]
    n_unmet = sum(len(e["unmet"]) for e in out.values())
    return {"keep_unmet": keep_unmet, "n_excluded": 0 if keep_unmet else n_unmet, "conditions": out}


def scored_records(records: Sequence[Mapping[str, Any]], keep_unmet: bool = False) -> list[Mapping[str, Any]]:
    """The records that count in the score: all with `keep_unmet`, else those whose condition did not fail."""
    return list(records) if keep_unmet else [r for r in records if condition_met(r) is not False]


def mark_records(records: Sequence[Mapping[str, Any]], keep_unmet: bool = False) -> list[dict[str, Any]]:
    """Copies of the records with `condition_met` (1 / 0 / None) and `scored` (1 / 0), for items.csv."""
    marked = []
    for record in records:
        met = condition_met(record)
        marked.append({**record, "condition_met": None if met is None else int(met),
                       "scored": int(keep_unmet or met is not False)})
    return marked


def render_condition_check(check: Mapping[str, Any], limit: int = 20) -> str:
    """The report's markdown section: share per condition, what was left out, the unmet items."""
    conditions = check["conditions"]
    if not conditions:
        return ""
    lines = ["", "## Did the condition happen?", "",
             "Whether the model was speaking at the query's onset (its text stream): interruptions need it "
             "speaking, normal turns silent.", "",
             "| condition | expected at onset | happened | share |", "|---|---|---|---|"]
    for condition, entry in conditions.items():
        lines.append(f"| {condition} | {entry['expected']} | {entry['n_met']} of {entry['n_checked']} | "
                     f"{entry['share_met']:.2f} |")
    n_unmet = sum(len(e["unmet"]) for e in conditions.values())
    if check["keep_unmet"]:
        lines += ["", f"{n_unmet} record(s) where the condition did not happen are KEPT in the scores (--keep-unmet)."]
    else:
        lines += ["", f"{check['n_excluded']} record(s) where the condition did not happen are left out of the "
                  "scores above (--keep-unmet keeps them)."]
    for condition, entry in conditions.items():
        if entry["unmet"]:
            shown = ", ".join(f"{u['id']} (rep {u['repetition']})" for u in entry["unmet"][:limit])
            more = f", and {len(entry['unmet']) - limit} more" if len(entry["unmet"]) > limit else ""
            lines.append(f"- {condition}, not {entry['expected']} at the onset: {shown}{more}")
    return "\n".join(lines) + "\n"


__all__ = ["EXPECTED_SPEAKING", "SPEAKING_FIELD", "check_conditions", "condition_met",
           "expected_speaking", "mark_records", "render_condition_check", "scored_records"]
