"""Are two checkpoint folders the same weights? Tensor by tensor, for every safetensors file in either folder.

    .venv/bin/python scripts/compare_weights.py duplex_steer/organism/weights runs/retrain-check/retrained

Prints one markdown row per file: tensors compared, how many differ, the largest absolute difference and the
relative one (largest difference over the largest magnitude of that tensor). Says "identical" when every
tensor matches bit for bit, so a retraining that reproduces a committed checkpoint is shown, not assumed.
A file or tensor present on one side only, or a tensor whose shape or dtype differs, is named. Exit status:
0 when every file is identical, 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

HEADER = "| file | tensors | differing | max abs difference | max relative difference | notes |\n|---|---|---|---|---|---|"


def compare_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> dict[str, Any]:
    """How two state dicts differ: counts, the largest differences, and the names present on one side only."""
    shared = sorted(set(a) & set(b))
    notes = [f"only in the first: {name}" for name in sorted(set(a) - set(b))]
    notes += [f"only in the second: {name}" for name in sorted(set(b) - set(a))]
    differing, max_abs, max_rel = 0, 0.0, 0.0
    for name in shared:
        x, y = a[name], b[name]
        if x.shape != y.shape or x.dtype != y.dtype:
            notes.append(f"{name}: {tuple(x.shape)} {x.dtype} against {tuple(y.shape)} {y.dtype}")
            differing += 1
            continue
        if torch.equal(x, y):
            continue
        differing += 1
        diff = (x.double() - y.double()).abs().max().item()
        scale = max(x.double().abs().max().item(), y.double().abs().max().item())
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / scale if scale > 0 else float("inf"))
    identical = differing == 0 and not notes
    return {"tensors": len(shared), "differing": differing, "max_abs": max_abs, "max_rel": max_rel,
            "notes": notes, "identical": identical}


def compare_folders(first: str | Path, second: str | Path) -> list[dict[str, Any]]:
    """One comparison per safetensors file name found in either folder."""
    first, second = Path(first), Path(second)
    for folder in (first, second):
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not a folder (give two checkpoint folders holding .safetensors files)")
    names = sorted({p.name for p in first.glob("*.safetensors")} | {p.name for p in second.glob("*.safetensors")})
    if not names:
        raise SystemExit(f"no .safetensors file in {first} or {second}")
    rows = []
    for name in names:
        missing = [str(folder) for folder in (first, second) if not (folder / name).is_file()]
        if missing:
            rows.append({"file": name, "tensors": 0, "differing": 0, "max_abs": 0.0, "max_rel": 0.0,
                         "notes": [f"missing in {', '.join(missing)}"], "identical": False})
            continue
        rows.append({"file": name, **compare_tensors(load_file(first / name), load_file(second / name))})
    return rows


def format_row(row: dict[str, Any]) -> str:
    notes = "identical" if row["identical"] else "; ".join(row["notes"][:5]) + (" ..." if len(row["notes"]) > 5 else "")
    return (f"| {row['file']} | {row['tensors']} | {row['differing']} | {row['max_abs']:.3g} | {row['max_rel']:.3g} "
            f"| {notes} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", help="a checkpoint folder (e.g. duplex_steer/organism/weights)")
    parser.add_argument("second", help="another checkpoint folder (e.g. a retraining's --out)")
    args = parser.parse_args(argv)
    rows = compare_folders(args.first, args.second)
    print(HEADER)
    for row in rows:
        print(format_row(row))
    return 0 if all(row["identical"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
