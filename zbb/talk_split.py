"""Did the model stop talking, or hear while it talked? IWOR split by `talked`: `zbb talk-split RUN`.

A zero-buffer interruption is said while the model talks. A reply can name the question's first word in
two ways: the model stops before the question's words (so it hears them as it would in a pause), or it
talks on over them and still catches them. The split tells a steering vector that repairs by stopping the
model from one that repairs its hearing while it talks, and a model that hears through an interruption
(no inertia) from one that stops for it:
- per condition: the share of scored records where the model began words while the question was said
  (`talked`, from `said_during_query`, so older runs read the same way), and the IWOR of each part; the
  condition's IWOR is their mix (share x IWOR, summed);
- per steered or control condition against the unsteered one (`interrupt+steer` against `interrupt`),
  paired by (item, repetition): of the units where the model talked unsteered, in how many it was made to
  stop and how many of those named the first word; and the reverse (silent unsteered, made to talk).

Counts are exact (k of n); the units are those each run's report scores (`zbb.condition_check`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .scoring import talked


def talked_over(record: Mapping[str, Any]) -> bool:
    """Whether the model began words while the record's question was said (False when not recorded)."""
    if record.get("talked") is not None:
        return bool(record["talked"])
    return bool(talked(str(record.get("said_during_query") or "")))


def knows_talking(record: Mapping[str, Any]) -> bool:
    """Whether the record says what the model said during the question (replies scored from a file do not)."""
    return record.get("talked") is not None or record.get("said_during_query") is not None


@dataclass(frozen=True)
class TalkSplit:
    """One condition's scored records split by whether the model talked over the question."""

    condition: str
    n: int
    n_talked: int
    iwor_talked: int  # records that talked and named the first word
    iwor_silent: int  # records that stayed silent and named it

    @property
    def n_silent(self) -> int:
        return self.n - self.n_talked

    @property
    def iwor(self) -> float:
        return (self.iwor_talked + self.iwor_silent) / self.n


@dataclass(frozen=True)
class Transitions:
    """A steered or control condition paired with the unsteered one, unit by unit."""

    condition: str
    against: str
    n_pairs: int
    talked_before: int  # units where the model talked over the question unsteered
    made_to_stop: int  # of those, units where it was silent under this condition
    stopped_named: int  # of those made to stop, units whose reply named the first word
    silent_before: int
    made_to_talk: int  # units silent unsteered that talked under this condition


def split_by_talking(records: Sequence[Mapping[str, Any]], condition: str) -> TalkSplit | None:
    """The condition's records split by `talked_over`; None when the run has no record of it."""
    rows = [r for r in records if r["condition"] == condition and r.get("iwor") is not None and knows_talking(r)]
    if not rows:
        return None
    over = [r for r in rows if talked_over(r)]
    return TalkSplit(condition, len(rows), len(over), sum(int(r["iwor"]) for r in over),
                     sum(int(r["iwor"]) for r in rows if not talked_over(r)))


def unsteered_condition(condition: str) -> str:
    """The condition a steered or control one is paired with: `interrupt+steer` -> `interrupt`."""
    return condition.partition("+")[0]


def transitions(records: Sequence[Mapping[str, Any]], condition: str) -> Transitions | None:
    """`condition` against its unsteered condition, paired by (item, repetition); None without pairs."""
    against = unsteered_condition(condition)
    if against == condition:
        return None
    known = [r for r in records if knows_talking(r)]
    base = {(r["id"], r.get("repetition", 0)): r for r in known if r["condition"] == against}
    pairs = [(base[(r["id"], r.get("repetition", 0))], r) for r in known
             if r["condition"] == condition and (r["id"], r.get("repetition", 0)) in base]
    if not pairs:
        return None
    talked_pairs = [(b, r) for b, r in pairs if talked_over(b)]
    stopped = [r for _, r in talked_pairs if not talked_over(r)]
    silent_pairs = [(b, r) for b, r in pairs if not talked_over(b)]
    return Transitions(condition, against, len(pairs), len(talked_pairs), len(stopped),
                       sum(int(r.get("iwor") or 0) for r in stopped), len(silent_pairs),
                       sum(talked_over(r) for _, r in silent_pairs))


def conditions_in(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The run's conditions, unsteered ones first, in a stable order."""
    names = {str(r["condition"]) for r in records}
    return sorted(names, key=lambda c: (c.partition("+")[0], "+" in c, c))


def _share(k: int, n: int) -> str:
    return f"{k / n:.2f} ({k} of {n})" if n else "n/a"


def render_talk_split(heading: str, records: Sequence[Mapping[str, Any]]) -> str:
    """The markdown tables of one run under `heading` (a markdown heading line): the split per condition, then
    the paired transitions; "" when no record says what the model said during the question."""
    if not any(knows_talking(r) for r in records):
        return ""
    lines = [heading, "",
             "| condition | n | IWOR | talked over the question | IWOR when it talked | IWOR when silent |",
             "|---|---|---|---|---|---|"]
    conditions = conditions_in(records)
    for condition in conditions:
        split = split_by_talking(records, condition)
        if split is None:
            continue
        lines.append(f"| {condition} | {split.n} | {split.iwor:.2f} | {_share(split.n_talked, split.n)} | "
                     f"{_share(split.iwor_talked, split.n_talked)} | {_share(split.iwor_silent, split.n_silent)} |")
    rows = [t for t in (transitions(records, c) for c in conditions) if t is not None]
    if rows:
        lines += ["", "| condition, paired with | pairs | talked unsteered | made to stop | of those, named the "
                  "first word | silent unsteered | made to talk |", "|---|---|---|---|---|---|---|"]
        for t in rows:
            lines.append(f"| {t.condition} vs {t.against} | {t.n_pairs} | {t.talked_before} | "
                         f"{_share(t.made_to_stop, t.talked_before)} | {_share(t.stopped_named, t.made_to_stop)} | "
                         f"{t.silent_before} | {_share(t.made_to_talk, t.silent_before)} |")
    return "\n".join(lines) + "\n"


__all__ = ["TalkSplit", "Transitions", "conditions_in", "knows_talking", "render_talk_split", "split_by_talking",
           "talked_over", "transitions", "unsteered_condition"]
