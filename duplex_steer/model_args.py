"""Command-line options that say which model to load and where: one definition for every command.

`add_model_args(parser)` adds --model (default: the organism, embedded, no download), --device and
--dtype; `load_from_args(args)` loads what they name (after the command has checked its other inputs).
"""

from __future__ import annotations

import argparse
import sys

DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_MODEL = "organism"  # the embedded CPU organism: every command's default (README: "Defaults")
MODEL_HELP = "preset name (organism, tiny, tiny-personaplex, mid, ...), local folder or hub repo id"


def add_device_args(parser: argparse.ArgumentParser) -> None:
    """--device and --dtype (the 7B needs bfloat16 on a 24 GB GPU, and on a CPU with less than 32 GB)."""
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    parser.add_argument("--dtype", default=None, choices=DTYPES,
                        help="weights dtype (default: bfloat16 on a GPU, float32 on the CPU; the organism float32)")


def add_model_args(parser: argparse.ArgumentParser, default: str = DEFAULT_MODEL) -> None:
    """--model (default: the organism), --device and --dtype."""
    parser.add_argument("--model", default=default, help=f"{MODEL_HELP} (default: {default})")
    add_device_args(parser)


def torch_dtype(name: str | None):
    """'bfloat16' -> torch.bfloat16; None stays None (the loader's default)."""
    import torch

    return getattr(torch, name) if name else None


def load_from_args(args: argparse.Namespace):
    """Load the model --model / --device / --dtype name; say which on stderr."""
    from .models import load

    model = load(args.model, device=getattr(args, "device", None), dtype=torch_dtype(getattr(args, "dtype", None)))
    print(f"model: {model.label}", file=sys.stderr)
    return model


__all__ = ["DEFAULT_MODEL", "DTYPES", "add_device_args", "add_model_args", "load_from_args", "torch_dtype"]
