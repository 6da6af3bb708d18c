"""Building transformers' Moshi modules for a `ModelSpec`: allocated, on the meta device, or random.

`build_hf_model` allocates (presets, the organism); `build_empty_hf_model` allocates nothing (the
meta device) so that a checkpoint's tensors can be placed one at a time (`materialize`), which keeps
the peak memory of loading a 7B checkpoint at about its own size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..lazy import gc_paused
from .spec import ModelSpec


def _hf_config(spec: ModelSpec, mimi_config: Any):
    config = spec.to_hf_config(mimi_config)
    config._attn_implementation = "sdpa"
    return config


def build_hf_model(spec: ModelSpec, mimi_config: Any, device: torch.device, dtype: torch.dtype):
    """An allocated `MoshiForConditionalGeneration` (transformers' initial values)."""
    with gc_paused():  # importing transformers' Moshi modeling is most of a cold start
        from transformers import MoshiForConditionalGeneration

    with torch.device(device):
        return MoshiForConditionalGeneration._from_config(_hf_config(spec, mimi_config), dtype=dtype)


def build_empty_hf_model(spec: ModelSpec, mimi_config: Any, dtype: torch.dtype):
    """A `MoshiForConditionalGeneration` whose tensors live on the meta device (no memory)."""
    with gc_paused():
        from transformers import MoshiForConditionalGeneration

    with torch.device("meta"):
        return MoshiForConditionalGeneration._from_config(_hf_config(spec, mimi_config), dtype=dtype)


def init_random_weights(module: nn.Module, seed: int) -> None:
    """Reference-like init (std 1/sqrt(fan_in)); transformers' flexible linears start at std 1."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.fill_(1.0)
            elif p.dim() >= 2:
                cpu = torch.empty(p.shape, dtype=torch.float32).normal_(0.0, p.shape[-1] ** -0.5, generator=gen)
                p.copy_(cpu.to(p.dtype))


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


def rebuild_rotary_buffers(root: nn.Module, device: torch.device) -> None:
    """Recompute RoPE tables left on the meta device (they are not in checkpoints); float32 kept."""
    for name, module in list(root.named_modules()):
        if type(module).__name__.endswith("RotaryEmbedding") and any(b.is_meta for b in module.buffers()):
            fresh = type(module)(module.config).to(device)
            owner, _, leaf = name.rpartition(".")
            setattr(root.get_submodule(owner), leaf, fresh)


def meta_tensors(root: nn.Module) -> list[str]:
    """Names of parameters and buffers still on the meta device (should be none after loading)."""
    return [n for n, t in [*root.named_parameters(), *root.named_buffers()] if t.is_meta]
