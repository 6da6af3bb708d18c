"""Native (kyutai) Mimi codec weights -> transformers `MimiModel`.

Native Moshi checkpoints ship the codec as its own safetensors file in kyutai's key layout
(`tokenizer-e351c8d8-checkpoint125.safetensors`). This module maps it, with no retraining and no
approximation, onto transformers' `MimiModel` (5.23 layout: `encoder.encoder_seanet`,
`encoder.encoder_transformer`, `encoder.downsample`, `decoder.upsample`, `decoder.decoder_transformer`,
`decoder.decoder_seanet`, `quantizer`):

- convolution wrappers are unwrapped (`conv.conv.weight` -> `conv.weight`, `convtr.convtr` -> `conv`);
- the fused attention input projection is split into q, k, v; q and k rows are permuted within each
  head, because kyutai's RoPE rotates adjacent dimension pairs (2i, 2i+1) while transformers rotates
  halves (i, i + head_dim/2);
- quantizer codebooks keep their buffers: kyutai saves `_initialized`, `cluster_usage` and
  `embedding_sum` and derives the centroids as `embedding_sum / cluster_usage.clamp(min=1e-5)`, which
  is exactly what transformers derives from `initialized`, `cluster_usage`, `embed_sum`; older names
  (`inited`, `cluster_size`, `embed_avg`, `embed_sum`) that kyutai's loader also accepts are mapped too.

Parity with the reference implementation (moshi 0.2.13) is checked in tests/test_mimi_convert.py on a
tiny random codec built with the reference code (tests/fixtures/tiny-mimi).

Usage differences to keep in mind (behaviour, not weights):
- kyutai's `get_mimi` limits encoding to 8 codebooks (what Moshi uses); transformers encodes with all
  `num_quantizers` (32) unless `encode(wav, num_quantizers=8)` is passed.
- kyutai's non-streaming `encode` zero-pads the waveform to a multiple of the frame size (1920 samples);
  transformers pads each convolution separately, so feed whole frames to get identical codes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from transformers import MimiConfig, MimiModel

__all__ = [
    "KYUTAI_MIMI_KWARGS",
    "MimiConversionError",
    "convert_mimi_state_dict",
    "load_mimi_native",
    "mimi_config_from_kyutai",
    "mimi_overrides_from_kyutai",
]

# kyutai's Mimi hyper-parameters (moshi/models/loaders.py: `_seanet_kwargs`, `_quantizer_kwargs`,
# `_transformer_kwargs`, `_mimi_config`), as data. `get_mimi` then uses 8 of the 32 codebooks for Moshi.
KYUTAI_MIMI_KWARGS: dict[str, Any] = {
    "sample_rate": 24000,
    "channels": 1,
    "frame_rate": 12.5,
    "seanet": {
        "channels": 1, "dimension": 512, "causal": True, "n_filters": 64, "n_residual_layers": 1,
        "activation": "ELU", "compress": 2, "dilation_base": 2, "disable_norm_outer_blocks": 0,
        "kernel_size": 7, "residual_kernel_size": 3, "last_kernel_size": 3, "norm": "none",
        "pad_mode": "constant", "ratios": [8, 6, 5, 4], "true_skip": True,
    },
    "quantizer": {"dimension": 256, "n_q": 32, "bins": 2048, "input_dimension": 512, "output_dimension": 512},
    "transformer": {
        "d_model": 512, "num_heads": 8, "num_layers": 8, "causal": True, "layer_scale": 0.01,
        "context": 250, "conv_layout": True, "max_period": 10000, "gating": "none", "norm": "layer_norm",
        "positional_embedding": "rope", "dim_feedforward": 2048, "input_dimension": 512,
        "output_dimensions": [512],
    },
}


class MimiConversionError(ValueError):
    """A native Mimi checkpoint (or config) does not match the transformers architecture asked for."""


def _require(cond: bool, what: str) -> None:
    if not cond:
        raise MimiConversionError(f"kyutai Mimi option not representable by transformers' MimiModel: {what}")


def mimi_overrides_from_kyutai(kyutai: Mapping[str, Any]) -> dict[str, Any]:
    """Translate kyutai's Mimi kwargs (`{"seanet":..., "quantizer":..., "transformer":..., ...}`) into
    `MimiConfig` fields, refusing options transformers' MimiModel cannot express.

    Every architectural field is set explicitly so the result does not depend on transformers' defaults.
    """
    seanet, quant, tr = kyutai["seanet"], kyutai["quantizer"], kyutai["transformer"]
    dim = seanet["dimension"]
    _require(seanet.get("activation", "ELU") == "ELU", f"activation={seanet.get('activation')!r}")
    _require(seanet.get("norm", "none") == "none", f"conv norm={seanet.get('norm')!r} (fold weight norm first)")
    _require(tr["d_model"] == dim, f"transformer d_model {tr['d_model']} != seanet dimension {dim}")
    _require(tr.get("input_dimension", dim) == dim and list(tr.get("output_dimensions", [dim])) == [dim],
             "transformer input/output projections")
    _require(tr.get("gating", "none") == "none", f"transformer gating={tr.get('gating')!r}")
    _require(tr.get("norm", "layer_norm") == "layer_norm", f"transformer norm={tr.get('norm')!r}")
    _require(tr.get("positional_embedding", "rope") == "rope",
             f"positional_embedding={tr.get('positional_embedding')!r}")
    _require(tr.get("causal", True) and seanet.get("causal", True), "non-causal model")
    _require(quant.get("input_dimension", dim) == dim and quant.get("output_dimension", dim) == dim,
             "quantizer input/output dimension != seanet dimension")
    # kyutai's SplitResidualVectorQuantizer always has input/output projections (force_projection=True);
    # transformers only creates them when the quantizer dimension differs from the latent dimension.
    _require(quant["dimension"] != dim, "quantizer dimension equal to the latent dimension")
    _require(kyutai.get("channels", 1) == seanet.get("channels", 1), "channel count mismatch")
    out: dict[str, Any] = {
        "sampling_rate": kyutai.get("sample_rate", 24000),
        "audio_channels": seanet.get("channels", 1),
        "hidden_size": dim,
        "num_filters": seanet["n_filters"],
        "num_residual_layers": seanet["n_residual_layers"],
        "upsampling_ratios": list(seanet["ratios"]),
        "kernel_size": seanet["kernel_size"],
        "last_kernel_size": seanet["last_kernel_size"],
        "residual_kernel_size": seanet["residual_kernel_size"],
        "dilation_growth_rate": seanet["dilation_base"],
        "use_causal_conv": True,
        "pad_mode": seanet["pad_mode"],
        "compress": seanet["compress"],
        "trim_right_ratio": seanet.get("trim_right_ratio", 1.0),
        "use_conv_shortcut": not seanet.get("true_skip", True),
        "codebook_size": quant["bins"],
        "codebook_dim": quant["dimension"],
        "vector_quantization_hidden_dimension": quant["dimension"],
        "num_quantizers": quant["n_q"],
        "num_semantic_quantizers": quant.get("n_q_semantic", 1),
        # kyutai builds the upsampler with `upsample_channel_wise_bug=True`: one group per channel.
        "upsample_groups": dim,
        "num_hidden_layers": tr["num_layers"],
        "intermediate_size": tr["dim_feedforward"],
        "num_attention_heads": tr["num_heads"],
        "num_key_value_heads": tr["num_heads"] // tr.get("kv_repeat", 1),
        "head_dim": tr["d_model"] // tr["num_heads"],
        "hidden_act": "gelu",
        "norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": float(tr.get("max_period", 10000))},
        "sliding_window": tr["context"],
        "layer_scale_initial_scale": tr["layer_scale"] if tr.get("layer_scale") is not None else 0.01,
        "attention_bias": False,
    }
    frame_rate = kyutai.get("frame_rate", 12.5)
    hop = 1
    for r in out["upsampling_ratios"]:
        hop *= r
    # transformers hard-codes a stride-2 downsampler between the encoder and quantizer frame rates.
    _require(abs(out["sampling_rate"] / hop / 2 - frame_rate) < 1e-9,
             f"frame rate {frame_rate} != sampling_rate / (2 * hop {hop})")
    return out


def mimi_config_from_kyutai(**overrides: Any) -> MimiConfig:
    """The `transformers.MimiConfig` of kyutai's released Mimi (24 kHz, 12.5 Hz, 32 x 2048 codebooks,
    dim 512, 8 transformer layers), with `overrides` (MimiConfig field names) applied on top.

    Fields that kyutai derives from one parameter follow an override of it unless given too: `head_dim`
    (hidden_size / heads), `upsample_groups` (= hidden_size, kyutai's channel-wise upsampler),
    `num_key_value_heads` (= heads) and `codebook_dim` <-> `vector_quantization_hidden_dimension`.
    Moshi encodes with 8 of the 32 codebooks: pass `num_quantizers=8` to `MimiModel.encode`.
    """
    from transformers import MimiConfig

    fields = mimi_overrides_from_kyutai(KYUTAI_MIMI_KWARGS)
    fields.update(overrides)
    # Fields that are one kyutai parameter follow an override of their partner unless set themselves.
    if ("hidden_size" in overrides or "num_attention_heads" in overrides) and "head_dim" not in overrides:
        fields["head_dim"] = fields["hidden_size"] // fields["num_attention_heads"]
    if "hidden_size" in overrides and "upsample_groups" not in overrides:
        fields["upsample_groups"] = fields["hidden_size"]
    if "num_attention_heads" in overrides and "num_key_value_heads" not in overrides:
        fields["num_key_value_heads"] = fields["num_attention_heads"]
    for a, b in (("codebook_dim", "vector_quantization_hidden_dimension"),
                 ("vector_quantization_hidden_dimension", "codebook_dim")):
        if a in overrides and b not in overrides:
            fields[b] = fields[a]
    return MimiConfig(**fields)


# --- state dict conversion ----------------------------------------------------------------------------

_RVQ = {"rvq_first": "semantic_residual_vector_quantizer", "rvq_rest": "acoustic_residual_vector_quantizer"}
# Codebook buffer names: kyutai's current names and the legacy ones its loader still accepts.
_CODEBOOK = {
    "_initialized": "initialized", "inited": "initialized",
    "cluster_usage": "cluster_usage", "cluster_size": "cluster_usage",
    "embedding_sum": "embed_sum", "embed_sum": "embed_sum", "embed_avg": "embed_sum",
}
_TRANSFORMER_PARTS = {
    "self_attn.out_projs.0.weight": "self_attn.o_proj.weight",
    "self_attn.out_proj.weight": "self_attn.o_proj.weight",
    "linear1.weight": "mlp.fc1.weight",
    "linear2.weight": "mlp.fc2.weight",
    "norm1.weight": "input_layernorm.weight",
    "norm1.bias": "input_layernorm.bias",
    "norm2.weight": "post_attention_layernorm.weight",
    "norm2.bias": "post_attention_layernorm.bias",
    "layer_scale_1.scale": "self_attn_layer_scale.scale",
    "layer_scale_2.scale": "mlp_layer_scale.scale",
}
_FUSED_QKV = ("self_attn.in_projs.0.weight", "self_attn.in_proj_weight", "self_attn.in_proj.weight")

_SEANET_RE = re.compile(
    r"^(encoder|decoder)\.model\.(\d+)\.(?:(block\.\d+|shortcut)\.)?(?:conv\.conv|convtr\.convtr)\.(weight|bias)$")
_TRANSFORMER_RE = re.compile(r"^(encoder|decoder)_transformer\.transformer\.layers\.(\d+)\.(.+)$")
_CODEBOOK_RE = re.compile(r"^quantizer\.(rvq_first|rvq_rest)\.vq\.layers\.(\d+)\._codebook\.(\w+)$")
_PROJ_RE = re.compile(r"^quantizer\.(rvq_first|rvq_rest)\.(input_proj|output_proj)\.weight$")
_RESAMPLE = {
    "downsample.conv.conv.conv.weight": "encoder.downsample.conv.weight",
    "upsample.convtr.convtr.convtr.weight": "decoder.upsample.conv.weight",
}


def _rope_rows(w: Tensor, num_heads: int) -> Tensor:
    """Reorder q/k projection rows per head from interleaved pairs to rotate-half order."""
    head_dim = w.shape[0] // num_heads
    perm = torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])
    return w.reshape(num_heads, head_dim, -1)[:, perm].reshape(w.shape)


def _rename(key: str) -> str | None:
    """transformers name of a kyutai key that maps one-to-one, or None."""
    if key in _RESAMPLE:
        return _RESAMPLE[key]
    m = _SEANET_RE.match(key)
    if m:
        half, idx, block, param = m.groups()
        mid = f"{block}." if block else ""
        return f"{half}.{half}_seanet.layers.{idx}.{mid}conv.{param}"
    m = _TRANSFORMER_RE.match(key)
    if m and m.group(3) in _TRANSFORMER_PARTS:
        half, layer, part = m.groups()
        return f"{half}.{half}_transformer.layers.{layer}.{_TRANSFORMER_PARTS[part]}"
    m = _CODEBOOK_RE.match(key)
    if m and m.group(3) in _CODEBOOK:
        rvq, idx, buf = m.groups()
        return f"quantizer.{_RVQ[rvq]}.layers.{idx}.codebook.{_CODEBOOK[buf]}"
    m = _PROJ_RE.match(key)
    if m:
        return f"quantizer.{_RVQ[m.group(1)]}.{m.group(2)}.weight"
    return None


def _expected_shapes(config: MimiConfig) -> dict[str, torch.Size]:
    """Key -> shape of `MimiModel(config).state_dict()`, built on the meta device (no memory, no init)."""
    from transformers import MimiModel

    with torch.device("meta"):
        model = MimiModel(config)
    return {k: v.shape for k, v in model.state_dict().items()}


def _names(keys: set[str] | list[str], limit: int = 20) -> str:
    keys = sorted(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def convert_mimi_state_dict(native: Mapping[str, Tensor], config: MimiConfig) -> dict[str, Tensor]:
    """Map a kyutai Mimi state dict onto `MimiModel(config).state_dict()` keys.

    Pure remap: renames, the fused q/k/v split and the RoPE row permutation of q and k. The input is not
    modified. Raises `MimiConversionError` (a ValueError) naming every leftover, missing, duplicated or
    mis-shaped tensor.
    """
    heads, kv_heads, head_dim = config.num_attention_heads, config.num_key_value_heads, config.head_dim
    out: dict[str, Tensor] = {}
    sources: dict[str, str] = {}
    leftover: list[str] = []
    duplicated: list[str] = []

    def put(dst: str, value: Tensor, src: str) -> None:
        if dst in out:
            duplicated.append(f"{src} and {sources[dst]} -> {dst}")
        out[dst], sources[dst] = value, src

    for key, value in native.items():
        m = _TRANSFORMER_RE.match(key)
        if m and m.group(3) in _FUSED_QKV:
            half, layer, _ = m.groups()
            q_rows, kv_rows = heads * head_dim, kv_heads * head_dim
            if value.dim() != 2 or value.shape[0] != q_rows + 2 * kv_rows:
                raise MimiConversionError(
                    f"{key}: fused q/k/v of shape {tuple(value.shape)}, expected "
                    f"[{q_rows + 2 * kv_rows}, hidden] for {heads} heads x {head_dim} (kv heads {kv_heads})")
            q, k, v = value.split([q_rows, kv_rows, kv_rows], dim=0)
            dst = f"{half}.{half}_transformer.layers.{layer}.self_attn."
            put(dst + "q_proj.weight", _rope_rows(q, heads).contiguous(), key)
            put(dst + "k_proj.weight", _rope_rows(k, kv_heads).contiguous(), key)
            put(dst + "v_proj.weight", v.contiguous(), key)
            continue
        dst = _rename(key)
        if dst is None:
            leftover.append(key)
        else:
            put(dst, value, key)

    expected = _expected_shapes(config)
    unknown = sorted(k for k in out if k not in expected)
    leftover += [f"{sources[k]} (-> {k})" for k in unknown]
    missing = sorted(set(expected) - set(out))
    problems = []
    if leftover:
        problems.append(f"checkpoint tensors with no place in MimiModel: {_names(leftover)}")
    if missing:
        problems.append(f"MimiModel tensors missing from the checkpoint: {_names(missing)}")
    if duplicated:
        problems.append(f"tensors mapped twice: {_names(duplicated)}")
    shape_errors = [f"{k} (from {sources[k]}): {tuple(out[k].shape)} != expected {tuple(expected[k])}"
                    for k in sorted(out) if k in expected and out[k].shape != expected[k]]
    if shape_errors:
        problems.append(f"shape mismatches (wrong config?): {_names(shape_errors)}")
    if problems:
        raise MimiConversionError("cannot convert kyutai Mimi state dict: " + "; ".join(problems))
    return out


def load_mimi_native(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                     config: MimiConfig | None = None) -> MimiModel:
    """Load a native kyutai Mimi safetensors file into an eval-mode transformers `MimiModel`.

    `config` defaults to `mimi_config_from_kyutai()` (the released codec). Raises FileNotFoundError for
    a missing file, MimiConversionError for a file that is not safetensors or does not match the config.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    from transformers import MimiModel

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Mimi checkpoint not found: {path}")
    try:
        native = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise MimiConversionError(f"{path} is not a readable safetensors file ({e})") from e
    config = config if config is not None else mimi_config_from_kyutai()
    converted = convert_mimi_state_dict(native, config)
    model = MimiModel(config)
    model.load_state_dict(converted, strict=True)
    model = model.to(device=device).eval()
    _cast_keeping_rope_fp32(model, dtype)
    # The codebooks cache their centroids lazily; make sure nothing computed before loading survives.
    for module in model.modules():
        if hasattr(module, "_embed"):
            module._embed = None
    return model


def _cast_keeping_rope_fp32(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """Cast floating parameters and buffers to `dtype`, except RoPE inverse frequencies, which stay
    float32 (`Module.to(bfloat16)` would round them and shift late positions' phases noticeably)."""
    for module in model.modules():
        rope = type(module).__name__.endswith("RotaryEmbedding")
        for param in module.parameters(recurse=False):
            if param.is_floating_point():
                param.data = param.data.to(dtype)
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and buf.is_floating_point() and not rope:
                module._buffers[name] = buf.to(dtype)
