"""Building the engine's module tree (`engine.modules.MoshiModules`) for a `ModelSpec`: empty or seeded random.

`build_empty_modules` allocates nothing (the meta device) so that a checkpoint's tensors can be placed
one at a time (`set_parameter`), which keeps the peak memory of loading a 7B checkpoint at about its own
size; `build_random_modules` gives seeded reference-like weights (presets, a new organism). Neither
imports transformers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .modules import MoshiModules, rebuild_rotary_buffers
from .spec import ModelSpec


@contextmanager
def new_tensors_in(dtype: torch.dtype) -> Iterator[None]:
    """Create floating tensors in `dtype` inside the block (RoPE tables ask for float32 themselves)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def build_empty_modules(spec: ModelSpec, dtype: torch.dtype = torch.float32) -> MoshiModules:
    """Modules whose tensors live on the meta device (no memory), in `dtype`, to be filled by `set_parameter`."""
    with new_tensors_in(dtype), torch.device("meta"):
        return MoshiModules(spec)


def build_random_modules(spec: ModelSpec, seed: int, device: torch.device, dtype: torch.dtype) -> MoshiModules:
    """Seeded random weights (`init_random_weights`: the temporal decoder from `seed`, the audio embeddings
    from seed + 1, the depformer from seed + 2); no codec attached."""
    modules = build_empty_modules(spec, dtype).to_empty(device=device)
    rebuild_rotary_buffers(modules, device)
    init_random_weights(modules.decoder, seed)
    init_random_weights(modules.embed_tokens, seed + 1)
    init_random_weights(modules.depth_decoder, seed + 2)
    return modules


def init_random_weights(module: nn.Module, seed: int) -> None:
    """Reference-like init: every matrix N(0, 1/fan_in), every norm 1."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            elif p.dim() >= 2:
                cpu = torch.empty(p.shape, dtype=torch.float32).normal_(0.0, p.shape[-1] ** -0.5, generator=gen)
                p.copy_(cpu.to(p.dtype))
            else:
                raise ValueError(f"init_random_weights does not know how to initialise {name!r}")


def set_parameter(root: nn.Module, name: str, value: Tensor) -> None:
    """Replace parameter `name` of `root` (meta or not) by `value`, which must have its shape."""
    owner, _, leaf = name.rpartition(".")
    module = root.get_submodule(owner)
    old = module._parameters.get(leaf)
    if old is None:
        raise KeyError(f"no parameter {name!r}")
    if tuple(old.shape) != tuple(value.shape):
        raise ValueError(f"{name}: shape {tuple(value.shape)} != the model's {tuple(old.shape)}")
    module._parameters[leaf] = nn.Parameter(value, requires_grad=old.requires_grad)
