"""Native (kyutai) language-model weights -> transformers `MoshiForConditionalGeneration` weights.

A pure remap, checked against the reference implementation on the tiny fixtures:
- fused q/k/v rows are split, and q/k rows permuted within each head because the reference rotates
  adjacent dimension pairs while transformers rotates halves (the depformer has no RoPE);
- RMSNorm `alpha` [1, 1, d] becomes `weight` [d];
- the depformer's per-step modules are stacked into transformers' flexible linears [K, out, in].
The Mimi codec lives in its own file and is converted by `mimi_convert`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import DuplexSteerError
from .spec import ModelSpec


class ConversionError(DuplexSteerError, ValueError):
    """The checkpoint's tensors do not match the architecture its config describes."""


def rope_permutation(head_dim: int) -> Tensor:
    """Row order turning interleaved-pair RoPE rows into rotate-half rows, within one head."""
    return torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])


def _permute_heads(w: Tensor, num_heads: int) -> Tensor:
    head_dim = w.shape[0] // num_heads
    perm = rope_permutation(head_dim)
    return w.view(num_heads, head_dim, -1)[:, perm].reshape(w.shape)


def _norm(t: Tensor) -> Tensor:
    return t.reshape(-1)


def convert_lm_state_dict(native: dict[str, Tensor], spec: ModelSpec) -> dict[str, Tensor]:
    """Map a kyutai `LMModel.state_dict()` onto transformers key names (the Mimi codec excluded).

    Raises ConversionError naming missing or unused tensors.
    """
    src = dict(native)
    out: dict[str, Tensor] = {}

    def take(key: str) -> Tensor:
        if key not in src:
            raise ConversionError(f"checkpoint has no tensor {key!r} (expected by a {spec.num_layers}-layer, "
                                  f"dep_q={spec.dep_q} model); is the config.json from the same checkpoint?")
        return src.pop(key)

    d = spec.dim
    out["decoder.model.embed_tokens.weight"] = take("text_emb.weight")
    for k in range(spec.n_q):
        out[f"embed_tokens.{k}.weight"] = take(f"emb.{k}.weight")
    for layer in range(spec.num_layers):
        pre, dst = f"transformer.layers.{layer}.", f"decoder.model.layers.{layer}."
        qkv = take(pre + "self_attn.in_projs.0.weight")
        q, k_, v = qkv[:d], qkv[d : 2 * d], qkv[2 * d :]
        out[dst + "self_attn.q_proj.linear.weight"] = _permute_heads(q, spec.num_heads)
        out[dst + "self_attn.k_proj.linear.weight"] = _permute_heads(k_, spec.num_heads)
        out[dst + "self_attn.v_proj.linear.weight"] = v
        out[dst + "self_attn.o_proj.linear.weight"] = take(pre + "self_attn.out_projs.0.weight")
        out[dst + "mlp.fc1.weight"] = take(pre + "gating.linear_in.weight")
        out[dst + "mlp.fc2.weight"] = take(pre + "gating.linear_out.weight")
        out[dst + "input_layernorm.weight"] = _norm(take(pre + "norm1.alpha"))
        out[dst + "post_attention_layernorm.weight"] = _norm(take(pre + "norm2.alpha"))
    out["decoder.model.norm.weight"] = _norm(take("out_norm.alpha"))
    out["decoder.lm_head.weight"] = take("text_linear.weight")

    K, dd = spec.dep_q, spec.depformer_dim
    out["depth_decoder.text_embed_tokens.weight"] = take("depformer_text_emb.weight")
    for k in range(K - 1):
        out[f"depth_decoder.embed_tokens.{k}.weight"] = take(f"depformer_emb.{k}.weight")
    out["depth_decoder.input_projections.weight"] = torch.stack([take(f"depformer_in.{k}.weight") for k in range(K)])
    out["depth_decoder.lm_heads.weight"] = torch.stack([take(f"linears.{k}.weight") for k in range(K)])
    for layer in range(spec.depformer_num_layers):
        pre, dst = f"depformer.layers.{layer}.", f"depth_decoder.layers.{layer}."
        qkv = [take(pre + f"self_attn.in_projs.{k}.weight") for k in range(K)]
        out[dst + "self_attn.q_proj.linear.weight"] = torch.stack([w[:dd] for w in qkv])
        out[dst + "self_attn.k_proj.linear.weight"] = torch.stack([w[dd : 2 * dd] for w in qkv])
        out[dst + "self_attn.v_proj.linear.weight"] = torch.stack([w[2 * dd :] for w in qkv])
        out[dst + "self_attn.o_proj.linear.weight"] = torch.stack(
            [take(pre + f"self_attn.out_projs.{k}.weight") for k in range(K)])
        out[dst + "mlp.fc1.weight"] = torch.stack([take(pre + f"gating.{k}.linear_in.weight") for k in range(K)])
        out[dst + "mlp.fc2.weight"] = torch.stack([take(pre + f"gating.{k}.linear_out.weight") for k in range(K)])
        out[dst + "input_layernorm.weight"] = _norm(take(pre + "norm1.alpha"))
        out[dst + "post_attention_layernorm.weight"] = _norm(take(pre + "norm2.alpha"))

    leftover = sorted(k for k in src if not k.startswith(("depformer_norms.", "extra_heads.")))
    if leftover:
        shown = ", ".join(leftover[:8]) + (" ..." if len(leftover) > 8 else "")
        raise ConversionError(f"{len(leftover)} checkpoint tensors were not used: {shown}; "
                              "the config.json probably does not describe this checkpoint")
    return out


def load_converted(hf_model: torch.nn.Module, converted: dict[str, Tensor]) -> None:
    """Load converted LM weights into a `MoshiForConditionalGeneration`, checking shapes and coverage."""
    own = hf_model.state_dict()
    lm_keys = {k for k in own if not k.startswith("audio_encoder.")}
    missing = sorted(lm_keys - converted.keys())
    if missing:
        raise ConversionError(f"converted weights lack {missing[:5]}")
    for key, value in converted.items():
        if key not in own:
            raise ConversionError(f"no parameter {key!r} in the transformers model")
        if own[key].shape != value.shape:
            raise ConversionError(f"{key}: checkpoint shape {tuple(value.shape)} != model shape "
                                  f"{tuple(own[key].shape)}; the config does not match the weights")
    hf_model.load_state_dict(converted, strict=False)
