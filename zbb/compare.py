"""Two ZBB runs on the same items, condition by condition: `zbb compare RUN --against REFERENCE`.

The main use is the subject-muted control (`zbb build --mute-subject`, `zbb.muting`): the same model run
on a rendering and on its muted copy. The difference is the part of correctness and IWOR that comes from
hearing the subject; what is left in the muted run is what the rest of the question gives away. Also
two models, two voices, or two vectors on one rendering. Pairs are (item, repetition) units scored in
both runs (each run's own condition check, as in its report); intervals as within a run (`zbb.paired`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from duplex_steer.errors import DuplexSteerError

from .condition_check import scored_records
from .paired import LABELS, paired_across_runs
from .results import read_run_records
from .stats import DEFAULT_CONFIDENCE


def read_run(run_dir: str | Path, keep_unmet: bool = False) -> list[Any]:
    """The scored records of a finished run folder (one clear error when it has none)."""
    records = read_run_records(run_dir)
    if not records:
        raise DuplexSteerError(f"no results in {run_dir}: give the --out folder of a `zbb run` or `zbb main`")
    return scored_records(records, keep_unmet)


def compare_runs(run_dir: str | Path, reference_dir: str | Path, keep_unmet: bool = False) -> dict[str, Any]:
    """{condition: {metric: {"difference", "ci_low", "ci_high", "n", "mcnemar", ...}}}: run minus reference."""
    records, reference = read_run(run_dir, keep_unmet), read_run(reference_dir, keep_unmet)
    common = {r["id"] for r in records} & {r["id"] for r in reference}
    if not common:
        raise DuplexSteerError(f"{run_dir} and {reference_dir} share no item: compare runs of the same items")
    return paired_across_runs(records, reference)


def render_compare_markdown(comparison: dict[str, Any], run_name: str, reference_name: str,
                            confidence: float = DEFAULT_CONFIDENCE) -> str:
    """A markdown table: per condition and metric, the paired difference, its interval and McNemar's p."""
    level = round(100 * confidence)
    lines = [f"{run_name} - {reference_name}, paired by item ({level}% BCa bootstrap over items, exact McNemar p)",
             "", "| condition | metric | n items | difference | interval | gained / lost pairs | McNemar p |",
             "|---|---|---|---|---|---|---|"]
    for condition, metrics in comparison.items():
        for metric, e in metrics.items():
            interval = "n/a" if e["ci_low"] is None else f"[{e['ci_low']:+.2f}, {e['ci_high']:+.2f}]"
            m = e["mcnemar"]
            p = "n/a" if m.get("p_value") is None else f"{m['p_value']:.3g}"
            lines.append(f"| {condition} | {LABELS.get(metric, metric)} | {e['n']} | {e['difference']:+.2f} | "
                         f"{interval} | {m.get('gained', '?')} / {m.get('lost', '?')} | {p} |")
    return "\n".join(lines) + "\n"
