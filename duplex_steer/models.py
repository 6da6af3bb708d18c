"""`duplex_steer.load`: every model source, the CPU organism included.

The engine loads presets, kyutai-native and HuggingFace folders and hub repositories
(`engine.loading.load`); the organism is a model built on the engine, so it is dispatched here, above
both, and the engine never imports it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .engine.loading import ORGANISM, LoadError, load_engine_model, resolve_device
from .engine.model import DuplexModel
from .engine.spec import PRESETS
from .organism.checkpoint import is_organism_folder, load_organism


def load(source: str | os.PathLike[str], device: str | torch.device | None = None, dtype: torch.dtype | None = None,
         *, lm_only: bool = False, token: str | None = None, seed: int = 0) -> DuplexModel:
    """Load a full-duplex model: "organism", a preset name, a local folder, or a hub repository id.

    Real checkpoints load in bfloat16 on a GPU and float32 on the CPU unless `dtype` says otherwise;
    the organism loads in float32.
    """
    name = str(source)
    path = Path(name).expanduser()
    if name == ORGANISM or (path.is_dir() and is_organism_folder(path)):
        folder = {} if name == ORGANISM else {"folder": path}
        return load_organism(**folder, device=resolve_device(device), dtype=dtype or torch.float32, source=name)
    if not path.exists() and (name.count("/") != 1 or name.startswith((".", "/", "~"))) and name not in PRESETS:
        raise LoadError(f"{name!r} is neither {ORGANISM!r} (the CPU model organism), a random-weight preset "
                        f"({', '.join(sorted(PRESETS))}), an existing folder, nor a hub repository id of the form "
                        "owner/name (e.g. kyutai/moshiko-pytorch-bf16)")
    return load_engine_model(source, device, dtype, lm_only=lm_only, token=token, seed=seed)
