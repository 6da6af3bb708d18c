"""Is a perception vector stable, or noise of its fitting set? Fit it on each half of the dialogues and compare.

    .venv/bin/python scripts/vector_split_half.py [--model organism] [--layers 3 5] [--split activity]

Fits the perception vector as `duplex-steer fit-vector` does (the model's default dialogue set, the same
labeler) on the first and the second half of the dialogues and on all of them, and prints per layer the
cosine between the two halves' directions and the three norms. A cosine near 1 says the direction is set by
the model, not by which dialogues it was fitted on; a low one says more dialogues are needed before a
steering result can be read as the vector's.
"""

from __future__ import annotations

import argparse

import torch

import duplex_steer
from duplex_steer.organism.fixtures import default_dialogues
from duplex_steer.steering.defaults import FRAME_SPLITS
from duplex_steer.steering.fit import fit_perception_vector, make_labeler


def split_half(model, layers: list[int], split: str = "activity", seed: int = 0, dialogues=None) -> list[dict]:
    """Per layer: {"layer", "cosine", "norm_first", "norm_second", "norm_all"}; `dialogues` default to the
    model's fitting set (`duplex-steer fit-vector`'s)."""
    dialogues = default_dialogues(model) if dialogues is None else list(dialogues)
    if len(dialogues) < 4:
        raise SystemExit(f"{len(dialogues)} dialogues: a split half needs at least 4")
    half = len(dialogues) // 2
    labeler = make_labeler(split)
    first, second, whole = (fit_perception_vector(model, part, layers, labeler, batch_size=8, seed=seed)[0]
                            for part in (dialogues[:half], dialogues[half:], dialogues))
    return [{"layer": layer,
             "cosine": torch.nn.functional.cosine_similarity(first[layer], second[layer], dim=0).item(),
             "norm_first": first[layer].norm().item(), "norm_second": second[layer].norm().item(),
             "norm_all": whole[layer].norm().item()} for layer in layers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="organism", help="a model name or checkpoint folder (default organism)")
    parser.add_argument("--layers", type=int, nargs="+", default=[3, 5], help="layers to fit (default 3 5)")
    parser.add_argument("--split", choices=FRAME_SPLITS, default="activity",
                        help="the frame split, as fit-vector's --split (default activity)")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = split_half(duplex_steer.load(args.model), args.layers, args.split)
    print("| model | layer | split-half cosine | norm (first half, second half, all) |")
    print("|---|---|---|---|")
    for row in rows:
        print(f"| {args.model} | {row['layer']} | {row['cosine']:.3f} | {row['norm_first']:.1f}, "
              f"{row['norm_second']:.1f}, {row['norm_all']:.1f} |")


if __name__ == "__main__":
    main()
