"""Kyutai-native checkpoints (kyutai/moshiko-pytorch-bf16, nvidia/personaplex-7b-v1, ...), loaded lean.

A native folder holds `model.safetensors` (the LM, kyutai tensor names), the Mimi codec
(`tokenizer-e351c8d8-checkpoint125.safetensors`) and a SentencePiece model (`tokenizer_spm_32k_3.model`),
and a `config.json` that may be absent (Moshi's repositories), empty (PersonaPlex's) or hold the
reference `LMModel` keyword arguments. Loading is done in an order that fails early and stays small:
1. the LM file's header alone gives every tensor's name and shape; with no architecture in config.json
   the architecture is read from those shapes (the 7B defaults where they match, else one clear error);
2. the header is checked against the architecture and the tokenizer against the text vocabulary;
3. the modules are built on the meta device (no memory), and each module tensor (transformers' names) is made from its
   native tensors (read one at a time, without a memory map), cast and placed on the target device.
Peak host memory is about the model's size in the target dtype plus one fused tensor.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import DuplexSteerError
from ..lazy import gc_paused
from .build import build_empty_modules, set_parameter
from .convert import (
    Alias,
    ConversionError,
    canonical_shapes,
    check_native_layout,
    lm_conversion_plan,
    released_aliases,
)
from .modules import meta_tensors, rebuild_rotary_buffers
from .safetensors_io import SafetensorsError, TensorReader, read_header
from .spec import PRESETS, ModelSpec, SpecError

NATIVE_LM = "model.safetensors"
NATIVE_MIMI = "tokenizer-e351c8d8-checkpoint125.safetensors"
NATIVE_TOKENIZER = "tokenizer_spm_32k_3.model"
TOOLKIT_META = "duplex_steer.json"  # written by this toolkit beside checkpoints it made (exports, replicas)
# A toolkit extension (real repositories do not have it): kyutai Mimi keyword arguments for codecs
# that are not the released one (the small replicas used in tests).
MIMI_CONFIG_KEY = "duplex_steer_mimi"
# Fields a config.json must give for an architecture other than the 7B (not readable from shapes).
UNREADABLE_FIELDS = ("num_heads", "depformer_num_heads", "context", "max_period", "delays")


class NativeLoadError(DuplexSteerError, RuntimeError):
    """A native checkpoint that cannot be loaded; the message says what differs and what to do."""


def read_native_config(folder: Path) -> dict[str, Any]:
    """config.json's contents, {} when it is absent or empty (both happen in real repositories)."""
    cfg = folder / "config.json"
    if not cfg.is_file() or not cfg.read_text().strip():
        return {}
    try:
        data = json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise NativeLoadError(f"{cfg} is not valid JSON ({exc}); re-download the checkpoint") from None
    if not isinstance(data, dict):
        raise NativeLoadError(f"{cfg} holds {type(data).__name__}, not a JSON object")
    return data


def _count(shapes: Mapping[str, tuple[int, ...]], prefix: str, suffix: str) -> int:
    return sum(1 for k in shapes if k.startswith(prefix) and k.endswith(suffix) and k[len(prefix):-len(suffix)].isdigit())


def _dim_feedforward(dim: int, hidden: int) -> int:
    """kyutai's dim_feedforward from the gating block's hidden width (inverse of `gating_hidden`)."""
    return 4 * dim if hidden == (21 * dim) // 8 else (3 * hidden) // 2


def architecture_from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, Any]:
    """Every `ModelSpec` field that a native LM file's tensor shapes determine."""
    need = ("text_emb.weight", "text_linear.weight", "linears.0.weight", "depformer_in.0.weight",
            "transformer.layers.0.gating.linear_out.weight", "depformer.layers.0.gating.0.linear_out.weight")
    absent = [k for k in need if k not in shapes]
    if absent:
        raise NativeLoadError(f"the weights lack {', '.join(absent)}: not a kyutai Moshi-family LM checkpoint")
    dim = shapes["text_emb.weight"][1]
    dep_dim = shapes["depformer_in.0.weight"][0]
    hidden = shapes["transformer.layers.0.gating.linear_out.weight"][1]
    dep_dff = _dim_feedforward(dep_dim, shapes["depformer.layers.0.gating.0.linear_out.weight"][1])
    return {
        "dim": dim,
        "num_layers": _count(shapes, "transformer.layers.", ".norm1.alpha"),
        "hidden_scale": _dim_feedforward(dim, hidden) / dim,
        "text_card": shapes["text_linear.weight"][0],
        "card": shapes["linears.0.weight"][0],
        "n_q": _count(shapes, "emb.", ".weight"),
        "dep_q": _count(shapes, "linears.", ".weight"),
        "depformer_dim": dep_dim,
        "depformer_num_layers": _count(shapes, "depformer.layers.", ".norm1.alpha"),
        "depformer_dim_feedforward": dep_dff,
    }


def native_spec(config: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], where: str) -> ModelSpec:
    """The architecture: config.json's fields where it has them, else read from the shapes.

    With no architecture in config.json (Moshi's and PersonaPlex's repositories) the shapes must match
    the 7B defaults except for dep_q (8 for Moshi, 16 for PersonaPlex); anything else is one error
    naming every field that differs.
    """
    found = architecture_from_shapes(shapes)  # names these fields need are the same in both layouts
    arch = {k: v for k, v in config.items() if k not in ("moshi_name", "mimi_name", "tokenizer_name", "lora_name",
                                                         "model_type", "lm_gen_config", MIMI_CONFIG_KEY)}
    if not any(k in arch for k in ("dim", "num_layers", "n_q")):
        default = PRESETS["full"]
        differ = [f"{k} {v} (7B: {getattr(default, k)})" for k, v in found.items()
                  if k != "dep_q" and getattr(default, k) != v]
        if differ:
            raise NativeLoadError(
                f"{where} has no architecture in config.json and its weights are not the 7B Moshi's: "
                f"{', '.join(differ)}. Add a config.json with the reference LMModel arguments (at least "
                f"{', '.join(UNREADABLE_FIELDS)} cannot be read from the weights)")
        arch = {**arch, **default.to_kyutai(), "dep_q": found["dep_q"]}
    else:
        arch.setdefault("dep_q", found["dep_q"])
    try:
        spec = ModelSpec.from_kyutai(arch)
    except (SpecError, TypeError) as exc:
        raise NativeLoadError(f"{where}/config.json: {exc}") from None
    try:
        check_native_layout(canonical_shapes(shapes, spec), spec)
    except ConversionError as exc:
        raise NativeLoadError(f"{where}: {exc}") from None
    return spec


class CanonicalReader:
    """Reads tensors by canonical name from a file in either layout (released fused, or per step)."""

    def __init__(self, reader: TensorReader, spec: ModelSpec):
        self.reader = reader
        self.aliases: dict[str, Alias] = released_aliases({k: v.shape for k, v in reader.infos.items()}, spec)
        self._last: tuple[str, Tensor] | None = None  # the fused tensor the previous alias read

    def get(self, name: str) -> Tensor:
        alias = self.aliases.get(name)
        if alias is None:
            return self.reader.get(name)
        if self._last is None or self._last[0] != alias.source:
            self._last = (alias.source, self.reader.get(alias.source))
        fused = self._last[1]
        return fused.view(alias.steps, -1, *fused.shape[1:])[alias.index]


def mimi_config_for(config: Mapping[str, Any]):
    """The released Mimi's config, or the one a toolkit replica names in config.json."""
    with gc_paused():
        from transformers import MimiConfig

    from .mimi_convert import mimi_config_from_kyutai, mimi_overrides_from_kyutai

    custom = config.get(MIMI_CONFIG_KEY)
    return MimiConfig(**mimi_overrides_from_kyutai(custom)) if custom else mimi_config_from_kyutai()


def check_tokenizer(tokenizer: Any, spec: ModelSpec, path: Path) -> None:
    """The SentencePiece model must name every id the model's text head can emit."""
    size = tokenizer.vocab_size()
    if size < spec.text_card:
        raise NativeLoadError(f"{path} has {size} pieces but the model's text vocabulary has {spec.text_card}: "
                              "it is not this checkpoint's tokenizer (Moshi and PersonaPlex use "
                              f"{NATIVE_TOKENIZER} with 32000 pieces); download the whole repository")


@torch.no_grad()
def materialize_lm(hf: torch.nn.Module, reader: CanonicalReader, spec: ModelSpec, device: torch.device,
                   dtype: torch.dtype) -> None:
    """Fill a meta-device model's LM tensors from a native file, one converted tensor at a time."""
    cache: dict[str, Tensor] = {}
    for conv in lm_conversion_plan(spec):
        if set(conv.sources) != set(cache):  # q, k and v share one fused tensor: read it once
            cache = {name: reader.get(name) for name in conv.sources}
        value = conv.combine([cache[name] for name in conv.sources])
        if value.untyped_storage().nbytes() != value.numel() * value.element_size():
            value = value.clone()  # a slice would keep the whole fused tensor alive
        set_parameter(hf, conv.target, value.to(dtype=dtype).to(device))
    cache.clear()


def load_mimi(path: Path, config: Any, device: torch.device, dtype: torch.dtype):
    from .mimi_convert import MimiConversionError, load_mimi_native

    try:
        return load_mimi_native(path, device=device, dtype=dtype, config=config)
    except (MimiConversionError, OSError) as exc:
        raise NativeLoadError(f"{path}: could not load the Mimi codec ({exc})") from None


def load_native_parts(folder: Path, device: torch.device, dtype: torch.dtype, lm_only: bool = False):
    """(hf model, spec, Mimi or None, tokenizer or None) from a native folder, lean (see the module doc)."""
    from .text import SentencePieceTokenizer

    config = read_native_config(folder)
    lm_path = folder / config.get("moshi_name", NATIVE_LM)
    codec_path = folder / config.get("mimi_name", NATIVE_MIMI)
    tok_path = folder / config.get("tokenizer_name", NATIVE_TOKENIZER)
    if not lm_path.is_file():
        raise NativeLoadError(f"{folder} has no {lm_path.name}: a kyutai-native checkpoint needs {NATIVE_LM}, "
                              f"{NATIVE_MIMI} (Mimi) and {NATIVE_TOKENIZER}; download the whole repository")
    try:
        infos = read_header(lm_path)
    except (SafetensorsError, OSError) as exc:
        raise NativeLoadError(f"{lm_path.name} is corrupt or incomplete: {exc}") from None
    spec = native_spec(config, {k: v.shape for k, v in infos.items()}, str(folder))
    if not lm_only:
        for path, what in ((codec_path, "the Mimi codec"), (tok_path, "the sentencepiece text tokenizer")):
            if not path.is_file():
                raise NativeLoadError(f"{folder} has no {path.name} ({what}); download the whole repository, "
                                      "or pass lm_only=True to load the language model alone")
    tokenizer = None
    if tok_path.is_file():
        tokenizer = SentencePieceTokenizer(tok_path)
        check_tokenizer(tokenizer, spec, tok_path)
    mimi = load_mimi(codec_path, mimi_config_for(config), device, dtype) if codec_path.is_file() else None
    hf = build_empty_modules(spec, dtype)
    hf.audio_encoder = mimi
    with TensorReader(lm_path) as reader:
        materialize_lm(hf, CanonicalReader(reader, spec), spec, device, dtype)
    rebuild_rotary_buffers(hf, device)
    left = meta_tensors(hf)
    if left:  # the conversion plan and the module tree disagree: a toolkit bug, never the user's file
        raise NativeLoadError(f"{len(left)} model tensors were not filled from {lm_path.name} ({', '.join(left[:4])}): "
                              "the converter and the engine's modules disagree; please report this")
    return hf.eval(), spec, mimi, tokenizer
