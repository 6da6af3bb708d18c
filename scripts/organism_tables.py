"""The organism's tables for README.md and its model card, read from `scripts/evaluate_organism.sh`'s output.

    .venv/bin/python scripts/organism_tables.py [runs/organism-eval]

Prints, per rendering (the held-out engine's, then a training engine's): every condition's correctness
and IWOR for both seeds (mean [95% Wilson interval]); the issue's targets with the figure each is judged
on (recovery: share of the no_interrupt - interrupt IWOR gap, percentile bootstrap over items; side
effects: paired IWOR and correctness differences, BCa bootstrap over items); the subject-muted control on
the held-out rendering (`zbb compare`: heard - muted, paired by item, BCa bootstrap over items); then the
paired take-over lags of `duplex-steer analyze --pairs` (BCa bootstrap over pairs).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from zbb.compare import compare_runs

CONDITIONS = [
    ("no_interrupt", "no_interrupt (asked while it is silent)"),
    ("interrupt", "interrupt (zero-buffer, while it talks)"),
    ("interrupt+steer", "interrupt+steer"),
    ("interrupt+random", "interrupt+random (control: random direction, same norm)"),
    ("interrupt+mistimed", "interrupt+mistimed (control: the vector at the query's end)"),
    ("buffered", "buffered (\"Um, excuse me,\" first)"),
    ("buffered+steer", "buffered+steer (side effect)"),
    ("no_interrupt+steer", "no_interrupt+steer (side effect)"),
]
RENDERINGS = [("held-out", "held-out engine: festival (slt-hts), never heard in training"),
              ("training", "training voice: flite slt, sentence by sentence (zbb/renderings/flite-slt)")]
SEEDS = (0, 1)


def rate(metric: dict) -> str:
    return f"{metric['mean']:.2f} [{metric['ci_low']:.2f}, {metric['ci_high']:.2f}]"


def diff(entry: dict) -> str:
    return f"{entry['difference']:+.2f} [{entry['ci_low']:+.2f}, {entry['ci_high']:+.2f}]"


def condition_table(reports: dict[int, dict]) -> list[str]:
    seeds = [s for s in SEEDS if s in reports]
    head = " | ".join(f"seed {s} correctness | seed {s} IWOR" for s in seeds)
    out = [f"| condition (n) | {head} |", "|---|" + "---|" * (2 * len(seeds))]
    for key, label in CONDITIONS:
        cells, ns = [], set()
        for s in seeds:
            cond = reports[s]["conditions"].get(key)
            if cond is None:
                cells += ["-", "-"]
                continue
            ns.add(cond["n_items"])
            cells += [rate(cond["metrics"]["correct"]), rate(cond["metrics"]["iwor"])]
        n = "/".join(str(x) for x in sorted(ns))
        out.append(f"| {label} ({n}) | " + " | ".join(cells) + " |")
    return out


def target_rows(report: dict) -> list[tuple[str, str, bool]]:
    """(target, figure, met) for one seed's report."""
    cond, rec, paired = report["conditions"], report["recovery_paired"], report["paired"]
    rows = [("no_interrupt IWOR >= 0.85", rate(cond["no_interrupt"]["metrics"]["iwor"]),
             cond["no_interrupt"]["metrics"]["iwor"]["mean"] >= 0.85),
            ("no_interrupt correctness >= 0.8", rate(cond["no_interrupt"]["metrics"]["correct"]),
             cond["no_interrupt"]["metrics"]["correct"]["mean"] >= 0.8),
            ("interrupt IWOR <= 0.2", rate(cond["interrupt"]["metrics"]["iwor"]),
             cond["interrupt"]["metrics"]["iwor"]["mean"] <= 0.2)]
    for key, target, test in (("interrupt+steer", ">= 0.70", lambda r: r >= 0.7),
                              ("interrupt+random", "< 0.25", lambda r: r < 0.25),
                              ("interrupt+mistimed", "< 0.25", lambda r: r < 0.25)):
        r = rec[key]["iwor"]
        rows.append((f"{key} recovers {target} of the IWOR gap",
                     f"{r['recovery']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]", test(r["recovery"])))
    for key in ("no_interrupt+steer", "buffered+steer"):
        for metric in ("iwor", "correct"):
            entry = paired[key]["metrics"][metric]
            rows.append((f"{key} - {paired[key]['reference']} {metric} within 0.05", diff(entry),
                         abs(entry["difference"]) <= 0.05))
    return rows


def targets_table(reports: dict[int, dict]) -> list[str]:
    seeds = [s for s in SEEDS if s in reports]
    per_seed = {s: target_rows(reports[s]) for s in seeds}
    out = ["| target | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for i, (name, _, _) in enumerate(per_seed[seeds[0]]):
        cells = [f"{per_seed[s][i][1]} {'met' if per_seed[s][i][2] else '**not met**'}" for s in seeds]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return out


def lag_lines(root: Path) -> list[str]:
    out = []
    for s in SEEDS:
        path = root / f"analyze-seed{s}" / "inertia.json"
        if not path.is_file():
            continue
        paired = json.loads(path.read_text()).get("paired") or {}
        for name, e in (paired.get("comparisons") or {}).items():
            if e.get("difference") is None:
                out.append(f"| {s} | {name} | n/a ({e.get('note')}) | {e['n_used']} of {e['n_pairs']} | {e['censored_pairs']} |")
                continue
            bound = e.get("censored_as_max_frames") or {}
            b = f"; censored as max: {bound['difference']:+.1f}" if e["censored_pairs"] and bound else ""
            out.append(f"| {s} | {name} | {e['difference']:+.1f} [{e['ci_low']:+.1f}, {e['ci_high']:+.1f}]{b} | "
                       f"{e['n_used']} of {e['n_pairs']} | {e['censored_pairs']} |")
    if out:
        out = ["| seed | comparison | lag difference, frames [95% BCa] | pairs used | censored |",
               "|---|---|---|---|---|", *out]
    return out


def muted_table(root: Path) -> list[str]:
    """Per seed and condition: correctness and IWOR on the subject-muted held-out rendering, and heard - muted."""
    out = ["| seed | condition | correctness, muted | heard - muted | IWOR, muted | heard - muted |",
           "|---|---|---|---|---|---|"]
    for s in SEEDS:
        heard, muted = root / f"zbb-held-out-seed{s}", root / f"zbb-muted-seed{s}"
        if not (muted / "report.json").is_file() or not (heard / "report.json").is_file():
            continue
        report, compared = json.loads((muted / "report.json").read_text()), compare_runs(heard, muted)
        for key in ("no_interrupt", "interrupt", "interrupt+steer"):
            m, c = report["conditions"][key]["metrics"], compared[key]
            out.append(f"| {s} | {key} | {rate(m['correct'])} | {diff(c['correct'])} | {rate(m['iwor'])} | "
                       f"{diff(c['iwor'])} |")
    return out if len(out) > 2 else []


def main(root: Path) -> None:
    for key, title in RENDERINGS:
        reports = {s: json.loads(p.read_text()) for s in SEEDS
                   if (p := root / f"zbb-{key}-seed{s}" / "report.json").is_file()}
        if not reports:
            continue
        print(f"\n#### {title}\n")
        print("\n".join(condition_table(reports)))
        print()
        print("\n".join(targets_table(reports)))
    muted = muted_table(root)
    if muted:
        print("\n#### The subject-muted control (held-out rendering, every question's subject silenced)\n")
        print("\n".join(muted))
    lags = lag_lines(root)
    if lags:
        print("\n#### Take-over lags (band S_perc overtakes S_gen), paired ZBB scenarios, held-out rendering\n")
        print("\n".join(lags))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/organism-eval"))
