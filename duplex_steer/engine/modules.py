"""The Moshi module tree the engine runs: transformers' routes and parameter names, the toolkit's own code.

`MoshiModules(spec)` has the attribute paths and state-dict names of transformers'
`MoshiForConditionalGeneration` for every part the engine uses: `embed_tokens` (the 2 x 8 audio
embeddings), `decoder.model.embed_tokens` / `.layers[i]` / `.norm`, `decoder.lm_head`, `depth_decoder.*`,
and `audio_encoder` (the Mimi codec, transformers' `MimiModel`, when the model has one). Checkpoint
converters, probes, hooks and nnsight routes (`model.hf.decoder.model.layers[i]`) read the same names,
and a temporal layer computes what transformers' `MoshiDecoderLayer` computes, operation for operation
(tests/test_modules.py: equal outputs on the same weights, SDPA and eager attention, whole sequences
and one frame at a time).

Why not transformers' classes themselves: importing their Moshi modeling module costs a process 2-5 s
(most of the organism's cold start), and the per-frame step passes through fewer Python layers.
transformers is still what reads and writes HuggingFace-format folders (`from_transformers`,
`to_transformers`) and runs the Mimi codec; the organism never imports it.

The depformer's layers (`DepthLayer`) hold weights only: `DuplexModel.depth_step` runs them (a causal
per-codebook loop over weight views).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..lazy import gc_paused
from .spec import ModelSpec


@dataclass
class AttentionSettings:
    """What attention reads at run time: one object shared by the model and its temporal layers, so that
    switching `_attn_implementation` ("sdpa" or "eager", which returns its weights) switches them all."""

    num_key_value_heads: int
    _attn_implementation: str = "sdpa"


class Linear(nn.Linear):
    """`nn.Linear` without bias or initialisation: its weight is always set afterwards (a checkpoint, or
    `build.init_random_weights`), and torch's initialisers on the meta device import torch._dynamo (~1 s)."""

    def __init__(self, input_size: int, output_size: int):
        super().__init__(input_size, output_size, bias=False)

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """`nn.Embedding` without initialisation (as `Linear`)."""

    def reset_parameters(self) -> None:
        pass


class RMSNorm(nn.Module):
    """x / rms(x) * weight, computed in float32 (kyutai's "rms_norm_f32")."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return (h * self.weight.float()).type_as(x)


class PerCodebookLinear(nn.Module):
    """One weight matrix per depformer codebook, stacked: weight [codebooks, out, in] (used as views)."""

    def __init__(self, input_size: int, output_size: int, codebooks: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(codebooks, output_size, input_size))


class Projection(nn.Module):
    """An attention projection under transformers' name `<proj>.linear.weight`."""

    def __init__(self, input_size: int, output_size: int, codebooks: int | None = None):
        super().__init__()
        self.linear = (Linear(input_size, output_size) if codebooks is None
                       else PerCodebookLinear(input_size, output_size, codebooks))

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)


class RotaryEmbedding(nn.Module):
    """RoPE tables (cos, sin) for absolute positions; the frequencies are a non-persistent float32 buffer."""

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim, self.theta = head_dim, float(theta)
        # computed on the CPU even under a meta-device build (on the meta device torch would import
        # torch._dynamo for it, ~1 s); `rebuild_rotary_buffers` puts it on the model's device
        self.register_buffer("inv_freq", self.frequencies(torch.device("cpu")), persistent=False)

    def frequencies(self, device: torch.device) -> Tensor:
        steps = torch.arange(0, self.head_dim, 2, dtype=torch.float, device=device)
        return 1.0 / (self.theta ** (steps / self.head_dim))

    def reset(self, device: torch.device) -> None:
        """Recompute the table (after building on the meta device, where it holds no values)."""
        self.inv_freq = self.frequencies(device)

    @torch.no_grad()
    def forward(self, x: Tensor, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.to(device=x.device, dtype=torch.float)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype=x.dtype), emb.sin().to(dtype=x.dtype)


def rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    """Multi-head self-attention with RoPE; keys and values go through the caller's cache when given."""

    def __init__(self, settings: AttentionSettings, dim: int, num_heads: int, layer_idx: int, theta: float):
        super().__init__()
        self.config = settings
        self.layer_idx = layer_idx
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = 1 / math.sqrt(self.head_dim)
        self.q_proj = Projection(dim, dim)
        self.k_proj = Projection(dim, dim)
        self.v_proj = Projection(dim, dim)
        self.o_proj = Projection(dim, dim)
        self.rotary_emb = RotaryEmbedding(self.head_dim, theta)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, past_key_values: Any = None) -> tuple[Tensor, Tensor | None]:
        """-> (output [B, T, dim], attention weights [B, H, T, S] under eager attention, else None)."""
        input_shape = hidden_states.shape[:-1]
        shape = (*input_shape, -1, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        cos, sin = self.rotary_emb(value, position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        query = query * cos + rotate_half(query) * sin
        key = key * cos + rotate_half(key) * sin
        if past_key_values is not None:
            key, value = past_key_values.update(key, value, self.layer_idx)
        weights = None
        if self.config._attn_implementation == "eager":
            # the mask is additive here (DuplexModel.run_layers makes it so)
            scores = torch.matmul(query, key.transpose(2, 3)) * self.scaling
            if attention_mask is not None:
                scores = scores + attention_mask
            weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
            out = torch.matmul(weights, value)
        else:
            causal = query.shape[2] > 1 and attention_mask is None
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0,
                                                 scale=self.scaling, is_causal=causal)
        out = out.transpose(1, 2).contiguous().reshape(*input_shape, -1)
        return self.o_proj(out), weights


class GatingMLP(nn.Module):
    """SiLU gating: fc2(silu(a) * b) where (a, b) = fc1(x) split in halves."""

    def __init__(self, dim: int, ffn_dim: int):
        super().__init__()
        self.activation_fn = nn.SiLU()
        self.fc1 = Linear(dim, ffn_dim)
        self.fc2 = Linear(ffn_dim // 2, dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        h = h.view(*h.shape[:-1], 2, -1)
        return self.fc2(self.activation_fn(h[..., 0, :]) * h[..., 1, :])


class DecoderLayer(nn.Module):
    """A temporal transformer layer (pre-norm attention and gating MLP); its output is the residual stream."""

    def __init__(self, settings: AttentionSettings, spec: ModelSpec, layer_idx: int, eps: float):
        super().__init__()
        self.self_attn = Attention(settings, spec.dim, spec.num_heads, layer_idx, spec.max_period)
        self.mlp = GatingMLP(spec.dim, spec.ffn_dim)
        self.input_layernorm = RMSNorm(spec.dim, eps)
        self.post_attention_layernorm = RMSNorm(spec.dim, eps)

    def forward(self, hidden_states: Tensor, attention_mask: Tensor | None = None,
                position_ids: Tensor | None = None, past_key_values: Any = None) -> Tensor:
        attended, _ = self.self_attn(self.input_layernorm(hidden_states), attention_mask=attention_mask,
                                     position_ids=position_ids, past_key_values=past_key_values)
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class DepthAttention(nn.Module):
    """The depformer's attention weights, one matrix per codebook (no RoPE)."""

    def __init__(self, dim: int, num_heads: int, codebooks: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, name, Projection(dim, dim, codebooks))


class DepthMLP(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, codebooks: int):
        super().__init__()
        self.activation_fn = nn.SiLU()
        self.fc1 = PerCodebookLinear(dim, ffn_dim, codebooks)
        self.fc2 = PerCodebookLinear(ffn_dim // 2, dim, codebooks)


class DepthLayer(nn.Module):
    """A depformer layer's weights (run by `DuplexModel.depth_step`)."""

    def __init__(self, spec: ModelSpec, eps: float):
        dim = spec.depformer_dim
        super().__init__()
        self.self_attn = DepthAttention(dim, spec.depformer_num_heads, spec.dep_q)
        self.mlp = DepthMLP(dim, spec.depformer_ffn_dim, spec.dep_q)
        self.input_layernorm = RMSNorm(dim, eps)
        self.post_attention_layernorm = RMSNorm(dim, eps)


class TemporalModel(nn.Module):
    def __init__(self, settings: AttentionSettings, spec: ModelSpec, eps: float):
        super().__init__()
        self.embed_tokens = Embedding(spec.text_card + 1, spec.dim)
        self.layers = nn.ModuleList(DecoderLayer(settings, spec, i, eps) for i in range(spec.num_layers))
        self.norm = RMSNorm(spec.dim, eps)


class TemporalDecoder(nn.Module):
    def __init__(self, settings: AttentionSettings, spec: ModelSpec, eps: float):
        super().__init__()
        self.model = TemporalModel(settings, spec, eps)
        self.lm_head = Linear(spec.dim, spec.text_card)


class DepthDecoder(nn.Module):
    def __init__(self, spec: ModelSpec, eps: float):
        super().__init__()
        dim = spec.depformer_dim
        self.text_embed_tokens = Embedding(spec.text_card + 1, dim)
        self.embed_tokens = nn.ModuleList(Embedding(spec.card + 1, dim) for _ in range(spec.dep_q - 1))
        self.input_projections = PerCodebookLinear(spec.dim, dim, spec.dep_q)
        self.layers = nn.ModuleList(DepthLayer(spec, eps) for _ in range(spec.depformer_num_layers))
        self.lm_heads = PerCodebookLinear(dim, spec.card, spec.dep_q)


class MoshiModules(nn.Module):
    """The whole language model (module docstring); `audio_encoder` is None or a Mimi codec."""

    def __init__(self, spec: ModelSpec, eps: float = 1e-8):
        super().__init__()
        self.config = AttentionSettings(num_key_value_heads=spec.num_heads)
        self.embed_tokens = nn.ModuleList(Embedding(spec.card + 1, spec.dim) for _ in range(spec.n_q))
        self.register_module("audio_encoder", None)
        self.decoder = TemporalDecoder(self.config, spec, eps)
        self.depth_decoder = DepthDecoder(spec, eps)


def rebuild_rotary_buffers(root: nn.Module, device: torch.device) -> None:
    """Recompute every RoPE table on `device`, in float32: they are not in checkpoints, and building on the
    meta device (then `to_empty`) leaves them without values."""
    for module in root.modules():
        if isinstance(module, RotaryEmbedding):
            module.reset(device)


def meta_tensors(root: nn.Module) -> list[str]:
    """Names of parameters and buffers still on the meta device (should be none after loading)."""
    return [n for n, t in [*root.named_parameters(), *root.named_buffers()] if t.is_meta]


def language_model_state(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A state dict without its Mimi codec's entries."""
    return {k: v for k, v in state.items() if not k.startswith("audio_encoder.")}


def from_transformers(hf_model: nn.Module, spec: ModelSpec) -> MoshiModules:
    """The engine's modules holding a transformers `MoshiForConditionalGeneration`'s tensors (shared, not
    copied); its Mimi becomes `audio_encoder`."""
    with torch.device("meta"):
        modules = MoshiModules(spec)
    modules.load_state_dict(language_model_state(hf_model.state_dict()), strict=True, assign=True)
    modules.audio_encoder = hf_model.audio_encoder
    rebuild_rotary_buffers(modules, next(hf_model.decoder.parameters()).device)
    return modules.requires_grad_(False)


def to_transformers(modules: MoshiModules, spec: ModelSpec, mimi: nn.Module | None = None) -> nn.Module:
    """A transformers `MoshiForConditionalGeneration` holding these modules' tensors (shared), for
    `save_pretrained` and transformers' own `generate`. Its Mimi is `mimi`, else the modules' `audio_encoder`
    (one of them is needed: transformers' Moshi holds a Mimi)."""
    mimi = mimi if mimi is not None else modules.audio_encoder
    if mimi is None:
        raise ValueError("this model has no Mimi codec (the organism has its own): transformers' Moshi format "
                         "holds one, so it cannot be written in that format")
    with gc_paused():
        from transformers.models.moshi.modeling_moshi import (
            MoshiForConditionalGeneration,
            MoshiRotaryEmbedding,
        )

    param = next(modules.decoder.parameters())
    config = spec.to_hf_config(mimi.config)
    config._attn_implementation = modules.config._attn_implementation
    with torch.device("meta"):
        hf = MoshiForConditionalGeneration._from_config(config, dtype=param.dtype)
    hf.load_state_dict(language_model_state(modules.state_dict()), strict=False, assign=True)
    hf.audio_encoder = mimi
    for module in hf.modules():  # RoPE tables (not in state dicts), as transformers computes them
        if isinstance(module, MoshiRotaryEmbedding):
            fresh = MoshiRotaryEmbedding(module.config)
            module.inv_freq, module.original_inv_freq = fresh.inv_freq.to(param.device), fresh.original_inv_freq.to(param.device)
    missing = meta_tensors(hf)
    if missing:
        raise ValueError(f"transformers' Moshi has tensors the engine's modules lack: {', '.join(missing[:4])}")
    return hf.eval()


__all__ = ["AttentionSettings", "DecoderLayer", "DepthLayer", "MoshiModules", "RMSNorm", "RotaryEmbedding",
           "from_transformers", "language_model_state", "meta_tensors", "rebuild_rotary_buffers", "to_transformers"]
