"""The organism's tables for README.md and its model card, read from `scripts/evaluate_organism.sh`'s output.

    .venv/bin/python scripts/organism_tables.py [runs/organism-eval] [--write]

Prints, per rendering (the held-out engine's, then a training engine's): every condition's correctness
and IWOR for both seeds (mean [95% Wilson interval]); the issue's targets with the figure each is judged
on (recovery: share of the no_interrupt - interrupt IWOR gap, percentile bootstrap over items; side
effects: paired IWOR and correctness differences, BCa bootstrap over items); the subject-muted control on
the held-out rendering (`zbb compare`: heard - muted, paired by item, BCa bootstrap over items); then the
paired take-over lags of `duplex-steer analyze --pairs` (BCa bootstrap over pairs). `--write` also puts
them into README.md and the model card, each table under its fixed heading there (the tables they hold
are replaced; the text around them is left to be edited by hand).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zbb.compare import compare_runs

CONDITIONS = [
    ("no_interrupt", "no_interrupt (asked while it is silent)"),
    ("interrupt", "interrupt (zero-buffer, while it talks)"),
    ("interrupt+steer", "interrupt+steer"),
    ("interrupt+random", "interrupt+random (control: a random direction per item, same norm)"),
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


# figures are ratios of counts computed in floating point (14 / 56 reads 0.2499999999999999): a figure within
# TOLERANCE of a bound is at the bound, so "< 0.25" refuses it and ">= 0.7" takes it
TOLERANCE = 1e-9
NOT_RUN = "not in the run (`zbb main` runs every condition)"


def target_rows(report: dict) -> list[tuple[str, str, bool]]:
    """(target, figure, met) for one seed's report. A target whose condition the run lacks (`zbb run` without
    the controls in --conditions; `zbb main` runs them all) reads "not in the run" and is not met."""
    cond, rec, paired = report["conditions"], report.get("recovery_paired", {}), report.get("paired", {})
    rows = []
    for key, metric, name, test in (("no_interrupt", "iwor", "no_interrupt IWOR >= 0.85", lambda m: m >= 0.85 - TOLERANCE),
                                    ("no_interrupt", "correct", "no_interrupt correctness >= 0.8",
                                     lambda m: m >= 0.8 - TOLERANCE),
                                    ("interrupt", "iwor", "interrupt IWOR <= 0.2", lambda m: m <= 0.2 + TOLERANCE)):
        if key not in cond:
            rows.append((name, NOT_RUN, False))
            continue
        rows.append((name, rate(cond[key]["metrics"][metric]), test(cond[key]["metrics"][metric]["mean"])))
    for key, target, test in (("interrupt+steer", ">= 0.70", lambda r: r >= 0.7 - TOLERANCE),
                              ("interrupt+random", "< 0.25", lambda r: r < 0.25 - TOLERANCE),
                              ("interrupt+mistimed", "< 0.25", lambda r: r < 0.25 - TOLERANCE)):
        name = f"{key} recovers {target} of the IWOR gap"
        if key not in rec:
            rows.append((name, NOT_RUN, False))
            continue
        r = rec[key]["iwor"]
        rows.append((name, f"{r['recovery']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]", test(r["recovery"])))
    for key, reference in (("no_interrupt+steer", "no_interrupt"), ("buffered+steer", "buffered")):
        for metric in ("iwor", "correct"):
            name = f"{key} - {reference} {metric} within 0.05"
            if key not in paired:
                rows.append((name, NOT_RUN, False))
                continue
            entry = paired[key]["metrics"][metric]
            rows.append((name, diff(entry), abs(entry["difference"]) <= 0.05 + TOLERANCE))
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


SECTIONS = {  # section -> its heading in README.md, in the model card (the section's tables follow it)
    "held-out": ("**Held-out engine (festival):**", "**Held-out engine** (`zbb/renderings/festival-slt-hts`):"),
    "training": ("**Training voice (flite slt, whole sentences, as in training):**",
                 "**Training voice** (`zbb/renderings/flite-slt`, whole sentences as in training):"),
    "muted": ("**The subject-muted control** (held-out", "**The subject-muted control** (held-out"),
    "lags": ("**The layer picture**", "**Layer picture**"),
}
DOCS = (Path("README.md"), Path("duplex_steer/organism/weights/MODEL_CARD.md"))


def sections(root: Path) -> dict[str, list[str]]:
    """Every table block, keyed as in SECTIONS (a block: tables separated by one empty line)."""
    out: dict[str, list[str]] = {}
    for key, _ in RENDERINGS:
        reports = {s: json.loads(p.read_text()) for s in SEEDS
                   if (p := root / f"zbb-{key}-seed{s}" / "report.json").is_file()}
        if reports:
            out[key] = condition_table(reports) + [""] + targets_table(reports)
    if muted := muted_table(root):
        out["muted"] = muted
    if lags := lag_lines(root):
        out["lags"] = lags
    return out


def splice(text: str, heading: str, block: list[str]) -> str:
    """`text` with the tables after the paragraph starting with `heading` replaced by `block`."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.startswith(heading)), None)
    if start is None:
        raise SystemExit(f"no paragraph starting with {heading!r} to put the table under")
    first = next(i for i in range(start, len(lines)) if lines[i].startswith("|"))
    last = first
    while last + 1 < len(lines) and (lines[last + 1].startswith("|") or
                                    (not lines[last + 1].strip() and last + 2 < len(lines)
                                     and lines[last + 2].startswith("|"))):
        last += 1
    return "\n".join(lines[:first] + block + lines[last + 1 :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("root", nargs="?", default="runs/organism-eval", help="evaluate_organism.sh's OUT folder")
    ap.add_argument("--write", action="store_true", help="replace the tables in README.md and the model card")
    args = ap.parse_args()
    blocks = sections(Path(args.root))
    titles = {"held-out": RENDERINGS[0][1], "training": RENDERINGS[1][1],
              "muted": "The subject-muted control (held-out rendering, every question's subject silenced)",
              "lags": "Take-over lags (band S_perc overtakes S_gen), paired ZBB scenarios, held-out rendering"}
    for key, block in blocks.items():
        print(f"\n#### {titles[key]}\n")
        print("\n".join(block))
    if args.write:
        for which, path in enumerate(DOCS):
            text = path.read_text(encoding="utf-8")
            for key, block in blocks.items():
                text = splice(text, SECTIONS[key][which], block)
            path.write_text(text, encoding="utf-8")
            print(f"wrote the tables into {path}")


if __name__ == "__main__":
    main()
