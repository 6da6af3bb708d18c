"""Why a model misses the subject of a question asked in a pause: it talked over the question, or it heard wrong.

    .venv/bin/python scripts/no_interrupt_misses.py RUN [RUN ...]

For each ZBB run folder, the `no_interrupt` records the report scores (`zbb.condition_check`: the model was
silent at the onset) are split by whether the model began words while the question was said
(`zbb.talk_split.talked_over`: the record's `talked`, else its `said_during_query`, so older runs read the same
way; `zbb talk-split` splits every condition so) and by IWOR. A miss while silent is a miss of hearing (or of
answering); a miss while talking is a turn-taking miss: the model resumed its monologue as the user began, or
ZBB's wait ran out (`max_wait_frames`, the run's config) while it paused between sentences. Prints one markdown row per run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from zbb.condition_check import scored_records
from zbb.results import read_run_records
from zbb.scenario import ScenarioRules
from zbb.talk_split import talked_over

HEADER = ("| run | n | IWOR | talked over the question | their IWOR | at ZBB's wait limit | misses: while talking "
          "/ while silent | IWOR had it not talked (silent runs only) |")


def split_misses(run: str | Path) -> dict[str, Any]:
    """Counts of one run's scored no_interrupt records: talked, missed, both, at the wait limit."""
    run = Path(run)
    config = json.loads((run / "config.json").read_text()).get("config", {})
    max_wait = ScenarioRules(**config.get("rules", {})).max_wait_frames
    rows = [r for r in scored_records(read_run_records(run)) if r["condition"] == "no_interrupt"]
    if not rows:
        raise SystemExit(f"{run}: no scored no_interrupt records (is it a ZBB run folder?)")
    over = [r for r in rows if talked_over(r)]
    silent = [r for r in rows if r not in over]
    return {"run": str(run), "n": len(rows), "iwor": sum(r["iwor"] for r in rows) / len(rows),
            "talked": len(over), "talked_iwor": sum(r["iwor"] for r in over),
            "at_wait_limit": sum(r["waited_frames"] >= max_wait for r in over),
            "missed_talking": sum(not r["iwor"] for r in over), "missed_silent": sum(not r["iwor"] for r in silent),
            "silent_iwor": sum(r["iwor"] for r in silent) / len(silent) if silent else None}


def render(counts: dict[str, Any]) -> str:
    silent = "n/a" if counts["silent_iwor"] is None else f"{counts['silent_iwor']:.2f}"
    return (f"| {counts['run']} | {counts['n']} | {counts['iwor']:.2f} | {counts['talked']} | {counts['talked_iwor']} "
            f"of {counts['talked']} | {counts['at_wait_limit']} | {counts['missed_talking']} / "
            f"{counts['missed_silent']} | {silent} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="ZBB run folders (zbb main / zbb run --out)")
    args = parser.parse_args()
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|")
    for run in args.runs:
        print(render(split_misses(run)))


if __name__ == "__main__":
    main()
