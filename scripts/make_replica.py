"""Write a random-weight replica of the real Moshi or PersonaPlex repository (see duplex_steer.engine.replica).

    .venv/bin/python scripts/make_replica.py --kind moshi --size full --out /tmp/moshiko-replica
    .venv/bin/python scripts/make_replica.py --kind personaplex --size small --out /tmp/personaplex-small

The full size writes 15.4 GB (LM, bfloat16) + 385 MB (Mimi) one tensor at a time (about 1 GB of memory).
Replicas are never committed: they prove the loading path, their outputs mean nothing.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from duplex_steer.engine.replica import write_replica


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=["moshi", "personaplex"], default="moshi")
    ap.add_argument("--size", choices=["full", "small"], default="small")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    need = 16.5e9 if args.size == "full" else 0.5e9
    free = shutil.disk_usage(args.out.parent if args.out.parent.exists() else Path.cwd()).free
    if free < need:
        raise SystemExit(f"error: {args.out.parent} has {free / 1e9:.1f} GB free; the {args.size} replica needs "
                         f"{need / 1e9:.1f} GB")
    start = time.perf_counter()
    folder = write_replica(args.out, kind=args.kind, size=args.size, seed=args.seed, progress=True)
    total = sum(f.stat().st_size for f in folder.iterdir())
    print(f"{args.kind} replica ({args.size}) in {folder}: {total / 1e9:.2f} GB, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
