"""Native (kyutai) language-model weights -> transformers `MoshiForConditionalGeneration` weights.

A pure remap, checked against the reference implementation on the tiny fixtures:
- fused q/k/v rows are split, and q/k rows permuted within each head because the reference rotates
  adjacent dimension pairs while transformers rotates halves (the depformer has no RoPE);
- RMSNorm `alpha` [1, 1, d] becomes `weight` [d];
- the depformer's per-step modules are stacked into transformers' flexible linears [K, out, in].

The remap is a plan (`lm_conversion_plan`): one entry per transformers tensor naming the native tensors
it is made of, so a loader can convert a 15 GB checkpoint one tensor at a time, and a checker can
compare a file's header against `native_lm_layout` before anything is allocated.
The Mimi codec lives in its own file and is converted by `mimi_convert`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import DuplexSteerError
from .spec import ModelSpec, gating_hidden

# Native tensors a loader may ignore: kyutai's optional extra heads and depformer output norms.
IGNORED_NATIVE_PREFIXES = ("depformer_norms.", "extra_heads.")


class ConversionError(DuplexSteerError, ValueError):
    """The checkpoint's tensors do not match the architecture its config describes."""


def rope_permutation(head_dim: int) -> Tensor:
    """Row order turning interleaved-pair RoPE rows into rotate-half rows, within one head."""
    return torch.cat([torch.arange(0, head_dim, 2), torch.arange(1, head_dim, 2)])


def _permute_heads(w: Tensor, num_heads: int) -> Tensor:
    head_dim = w.shape[0] // num_heads
    perm = rope_permutation(head_dim)
    return w.view(num_heads, head_dim, -1)[:, perm].reshape(w.shape)


@dataclass(frozen=True)
class Conversion:
    """One transformers tensor `target`, made by `combine` from the native tensors `sources`."""

    target: str
    sources: tuple[str, ...]
    combine: Callable[[list[Tensor]], Tensor]


def _same(ts: list[Tensor]) -> Tensor:
    return ts[0]


def _flat(ts: list[Tensor]) -> Tensor:
    return ts[0].reshape(-1)


def _stack(ts: list[Tensor]) -> Tensor:
    return torch.stack(ts)


def _rows(start: int, stop: int, num_heads: int | None = None) -> Callable[[list[Tensor]], Tensor]:
    """Rows [start, stop) of one fused matrix (RoPE-permuted per head when num_heads is given)."""
    def pick(ts: list[Tensor]) -> Tensor:
        w = ts[0][start:stop]
        return _permute_heads(w, num_heads) if num_heads else w
    return pick


def _stacked_rows(start: int, stop: int) -> Callable[[list[Tensor]], Tensor]:
    return lambda ts: torch.stack([t[start:stop] for t in ts])


def lm_conversion_plan(spec: ModelSpec) -> list[Conversion]:
    """Every transformers LM tensor and the native tensors it comes from, in file-friendly order."""
    d, K, dd = spec.dim, spec.dep_q, spec.depformer_dim
    plan = [Conversion("decoder.model.embed_tokens.weight", ("text_emb.weight",), _same)]
    plan += [Conversion(f"embed_tokens.{k}.weight", (f"emb.{k}.weight",), _same) for k in range(spec.n_q)]
    for layer in range(spec.num_layers):
        pre, dst = f"transformer.layers.{layer}.", f"decoder.model.layers.{layer}."
        qkv = (pre + "self_attn.in_projs.0.weight",)
        plan += [
            Conversion(dst + "self_attn.q_proj.linear.weight", qkv, _rows(0, d, spec.num_heads)),
            Conversion(dst + "self_attn.k_proj.linear.weight", qkv, _rows(d, 2 * d, spec.num_heads)),
            Conversion(dst + "self_attn.v_proj.linear.weight", qkv, _rows(2 * d, 3 * d)),
            Conversion(dst + "self_attn.o_proj.linear.weight", (pre + "self_attn.out_projs.0.weight",), _same),
            Conversion(dst + "mlp.fc1.weight", (pre + "gating.linear_in.weight",), _same),
            Conversion(dst + "mlp.fc2.weight", (pre + "gating.linear_out.weight",), _same),
            Conversion(dst + "input_layernorm.weight", (pre + "norm1.alpha",), _flat),
            Conversion(dst + "post_attention_layernorm.weight", (pre + "norm2.alpha",), _flat),
        ]
    plan += [
        Conversion("decoder.model.norm.weight", ("out_norm.alpha",), _flat),
        Conversion("decoder.lm_head.weight", ("text_linear.weight",), _same),
        Conversion("depth_decoder.text_embed_tokens.weight", ("depformer_text_emb.weight",), _same),
    ]
    plan += [Conversion(f"depth_decoder.embed_tokens.{k}.weight", (f"depformer_emb.{k}.weight",), _same)
             for k in range(K - 1)]
    plan += [
        Conversion("depth_decoder.input_projections.weight", tuple(f"depformer_in.{k}.weight" for k in range(K)), _stack),
        Conversion("depth_decoder.lm_heads.weight", tuple(f"linears.{k}.weight" for k in range(K)), _stack),
    ]
    for layer in range(spec.depformer_num_layers):
        pre, dst = f"depformer.layers.{layer}.", f"depth_decoder.layers.{layer}."
        qkv = tuple(pre + f"self_attn.in_projs.{k}.weight" for k in range(K))
        plan += [
            Conversion(dst + "self_attn.q_proj.linear.weight", qkv, _stacked_rows(0, dd)),
            Conversion(dst + "self_attn.k_proj.linear.weight", qkv, _stacked_rows(dd, 2 * dd)),
            Conversion(dst + "self_attn.v_proj.linear.weight", qkv, _stacked_rows(2 * dd, 3 * dd)),
            Conversion(dst + "self_attn.o_proj.linear.weight",
                       tuple(pre + f"self_attn.out_projs.{k}.weight" for k in range(K)), _stack),
            Conversion(dst + "mlp.fc1.weight", tuple(pre + f"gating.{k}.linear_in.weight" for k in range(K)), _stack),
            Conversion(dst + "mlp.fc2.weight", tuple(pre + f"gating.{k}.linear_out.weight" for k in range(K)), _stack),
            Conversion(dst + "input_layernorm.weight", (pre + "norm1.alpha",), _flat),
            Conversion(dst + "post_attention_layernorm.weight", (pre + "norm2.alpha",), _flat),
        ]
    return plan


def native_lm_layout(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """The native tensor names and shapes a checkpoint of this architecture holds (kyutai `LMModel`)."""
    d, dd = spec.dim, spec.depformer_dim
    hidden = gating_hidden(d, int(spec.hidden_scale * d))
    dep_hidden = gating_hidden(dd, spec.depformer_dim_feedforward)
    out: dict[str, tuple[int, ...]] = {"text_emb.weight": (spec.text_card + 1, d)}
    out |= {f"emb.{k}.weight": (spec.card + 1, d) for k in range(spec.n_q)}
    for layer in range(spec.num_layers):
        pre = f"transformer.layers.{layer}."
        out |= {pre + "self_attn.in_projs.0.weight": (3 * d, d), pre + "self_attn.out_projs.0.weight": (d, d),
                pre + "gating.linear_in.weight": (2 * hidden, d), pre + "gating.linear_out.weight": (d, hidden),
                pre + "norm1.alpha": (1, 1, d), pre + "norm2.alpha": (1, 1, d)}
    out |= {"out_norm.alpha": (1, 1, d), "text_linear.weight": (spec.text_card, d),
            "depformer_text_emb.weight": (spec.text_card + 1, dd)}
    out |= {f"depformer_emb.{k}.weight": (spec.card + 1, dd) for k in range(spec.dep_q - 1)}
    out |= {f"depformer_in.{k}.weight": (dd, d) for k in range(spec.dep_q)}
    out |= {f"linears.{k}.weight": (spec.card, dd) for k in range(spec.dep_q)}
    for layer in range(spec.depformer_num_layers):
        pre = f"depformer.layers.{layer}."
        for k in range(spec.dep_q):
            out |= {pre + f"self_attn.in_projs.{k}.weight": (3 * dd, dd), pre + f"self_attn.out_projs.{k}.weight": (dd, dd),
                    pre + f"gating.{k}.linear_in.weight": (2 * dep_hidden, dd),
                    pre + f"gating.{k}.linear_out.weight": (dd, dep_hidden)}
        out |= {pre + "norm1.alpha": (1, 1, dd), pre + "norm2.alpha": (1, 1, dd)}
    return out


# The released checkpoints (kyutai/moshiko-pytorch-bf16, nvidia/personaplex-7b-v1) were saved before the
# reference split its attention projections per step: one `in_proj_weight` [steps * 3d, d] and one
# `out_proj.weight` [steps * d, d] per layer, steps stacked first. The reference (moshi 0.2.13) views them
# as `in_projs.{i}` / `out_projs.{i}` when loading; `released_aliases` does the same, by name.
RELEASED_PROJECTIONS = {"self_attn.in_proj_weight": "self_attn.in_projs.{i}.weight",
                        "self_attn.out_proj.weight": "self_attn.out_projs.{i}.weight"}


@dataclass(frozen=True)
class Alias:
    """Canonical tensor = step `index` of the released tensor `source` viewed as [steps, -1, ...]."""

    source: str
    index: int
    steps: int


def released_aliases(shapes: Mapping[str, tuple[int, ...]], spec: ModelSpec) -> dict[str, Alias]:
    """Canonical names (`in_projs.{i}`) for the released layout's fused projections, per layer."""
    aliases: dict[str, Alias] = {}
    for name in shapes:
        for old, new in RELEASED_PROJECTIONS.items():
            if name.endswith("." + old):
                prefix = name[: -len(old)]
                steps = spec.dep_q if prefix.startswith("depformer.") else 1
                for i in range(steps):
                    aliases[prefix + new.format(i=i)] = Alias(name, i, steps)
    return aliases


def canonical_shapes(shapes: Mapping[str, tuple[int, ...]], spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """A header's shapes under canonical (moshi 0.2.13) names, released fused projections split."""
    aliases = released_aliases(shapes, spec)
    used = {a.source for a in aliases.values()}
    out = {k: tuple(v) for k, v in shapes.items() if k not in used}
    for name, a in aliases.items():
        rows, *rest = shapes[a.source]
        if rows % a.steps:
            raise ConversionError(f"{a.source} has {rows} rows, not a multiple of the {a.steps} depformer steps")
        out[name] = (rows // a.steps, *rest)
    return out


def check_native_layout(shapes: Mapping[str, tuple[int, ...]], spec: ModelSpec) -> None:
    """Compare a checkpoint's tensor names and shapes (e.g. its header) with the architecture.

    Raises ConversionError naming missing, unused and misshapen tensors; nothing is read or allocated.
    """
    expected = native_lm_layout(spec)
    missing = sorted(expected.keys() - shapes.keys())
    unused = sorted(k for k in shapes.keys() - expected.keys() if not k.startswith(IGNORED_NATIVE_PREFIXES))
    wrong = [f"{k} {tuple(shapes[k])} (expected {expected[k]})" for k in expected
             if k in shapes and tuple(shapes[k]) != expected[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing ({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})")
    if unused:
        problems.append(f"{len(unused)} checkpoint tensors not used ({', '.join(unused[:5])}{' ...' if len(unused) > 5 else ''})")
    if wrong:
        problems.append(f"{len(wrong)} with other shapes ({'; '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''})")
    if problems:
        raise ConversionError(f"the weights do not match a {spec.num_layers}-layer, dim {spec.dim}, dep_q={spec.dep_q} "
                              f"model: {'; '.join(problems)}; is the config.json from the same checkpoint?")


def convert_lm_state_dict(native: Mapping[str, Tensor], spec: ModelSpec) -> dict[str, Tensor]:
    """Map a kyutai `LMModel.state_dict()` onto transformers key names (the Mimi codec excluded).

    Raises ConversionError naming missing or unused tensors.
    """
    aliases = released_aliases({k: tuple(v.shape) for k, v in native.items()}, spec)
    used = {a.source for a in aliases.values()}
    canon = {k: v for k, v in native.items() if k not in used}
    for name, a in aliases.items():
        fused = native[a.source]
        canon[name] = fused.view(a.steps, -1, *fused.shape[1:])[a.index]
    check_native_layout({k: tuple(v.shape) for k, v in canon.items()}, spec)
    return {c.target: c.combine([canon[s] for s in c.sources]) for c in lm_conversion_plan(spec)}


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
