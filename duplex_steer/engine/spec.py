"""Model specifications in kyutai terms, the built-in presets, and their transformers configs.

A `ModelSpec` is the kyutai `LMModel` keyword set that this engine supports (Moshi and PersonaPlex
are both instances). It is what native checkpoints carry in their config.json, and it maps onto
transformers' `MoshiConfig` for the temporal transformer and `MoshiDepthConfig` for the depformer.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import DuplexSteerError
from ..lazy import gc_paused

KYUTAI_DELAYS = (0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1)

# Values the engine cannot run; anything else unknown in a config is ignored with the reference's meaning.
_REQUIRED_VALUES = {
    "causal": True,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_multi_linear": True,
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
}


class SpecError(DuplexSteerError, ValueError):
    """A model configuration this engine cannot run, with the field that is wrong."""


def gating_hidden(dim: int, dim_feedforward: int) -> int:
    """Hidden width of kyutai's SiLU gating block (transformers' ffn_dim is twice this)."""
    return (21 * dim) // 8 if dim_feedforward == 4 * dim else (2 * dim_feedforward) // 3


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of a Moshi-family model, in the reference implementation's terms."""

    dim: int = 4096
    num_heads: int = 32
    num_layers: int = 32
    hidden_scale: float = 4.125
    text_card: int = 32000
    card: int = 2048
    n_q: int = 16
    dep_q: int = 8
    context: int = 3000
    max_period: float = 10000.0
    depformer_dim: int = 1024
    depformer_num_heads: int = 16
    depformer_num_layers: int = 6
    depformer_dim_feedforward: int = int(4.125 * 1024)
    existing_text_padding_id: int = 3
    existing_text_end_padding_id: int = 0
    delays: tuple[int, ...] = KYUTAI_DELAYS
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    # --- derived facts used across the engine ---------------------------------------------------
    @property
    def num_audio_codebooks(self) -> int:
        """Codebooks per audio stream (8): the model's and the user's stream each have this many."""
        return self.n_q // 2

    @property
    def has_user_heads(self) -> bool:
        """PersonaPlex-style depformer that also predicts the user's codebooks."""
        return self.dep_q > self.num_audio_codebooks

    @property
    def max_delay(self) -> int:
        return max(self.delays)

    @property
    def text_initial_token(self) -> int:
        return self.text_card

    @property
    def audio_initial_token(self) -> int:
        return self.card

    @property
    def ffn_dim(self) -> int:
        return 2 * gating_hidden(self.dim, int(self.hidden_scale * self.dim))

    @property
    def depformer_ffn_dim(self) -> int:
        return 2 * gating_hidden(self.depformer_dim, self.depformer_dim_feedforward)

    # --- conversions ---------------------------------------------------------------------------
    @classmethod
    def from_kyutai(cls, config: dict[str, Any]) -> ModelSpec:
        """Build from a kyutai `LMModel` kwargs dict (a native checkpoint's config.json)."""
        for key, value in _REQUIRED_VALUES.items():
            if key in config and config[key] != value:
                raise SpecError(f"config field {key!r} is {config[key]!r}; this engine supports only {value!r}")
        for key in ("layer_scale", "depformer_layer_scale"):
            if config.get(key) is not None:
                raise SpecError(f"config field {key!r} is set; layer scale is not supported by the engine")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs = {k: config[k] for k in names if k in config}
        if "delays" in kwargs:
            kwargs["delays"] = tuple(int(d) for d in kwargs["delays"])
        if "depformer_dim_feedforward" not in config and "depformer_dim" in config:
            kwargs["depformer_dim_feedforward"] = int(config.get("hidden_scale", 4.125) * config["depformer_dim"])
        extra = {k: v for k, v in config.items() if k not in names}
        spec = cls(**kwargs, extra=extra)
        spec.validate()
        return spec

    def to_kyutai(self) -> dict[str, Any]:
        """The kyutai kwargs dict (what `from_kyutai` reads back)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        out["delays"] = list(self.delays)
        out.update(_REQUIRED_VALUES)
        return out

    def validate(self) -> None:
        if self.n_q % 2:
            raise SpecError(f"n_q={self.n_q} must be even (model and user streams)")
        if len(self.delays) != self.n_q + 1:
            raise SpecError(f"expected {self.n_q + 1} delays (text + {self.n_q} audio), got {len(self.delays)}")
        if self.dep_q not in (self.num_audio_codebooks, self.n_q):
            raise SpecError(f"dep_q={self.dep_q}: expected {self.num_audio_codebooks} (Moshi) or {self.n_q} (PersonaPlex)")
        if self.dim % self.num_heads or self.depformer_dim % self.depformer_num_heads:
            raise SpecError("dim must be divisible by num_heads (and depformer_dim by depformer_num_heads)")

    def to_hf_config(self, mimi_config: Any | None = None):
        """transformers `MoshiConfig` with the same architecture (depformer codebooks = dep_q)."""
        with gc_paused():
            from transformers import MimiConfig, MoshiConfig, MoshiDepthConfig

        mimi_config = mimi_config if mimi_config is not None else tiny_mimi_config(self.card)
        depth = MoshiDepthConfig(
            vocab_size=self.text_card,
            hidden_size=self.depformer_dim,
            input_size=self.dim,
            num_hidden_layers=self.depformer_num_layers,
            num_attention_heads=self.depformer_num_heads,
            num_key_value_heads=self.depformer_num_heads,
            audio_vocab_size=self.card,
            max_position_embeddings=self.dep_q,
            sliding_window=self.dep_q,
            ffn_dim=self.depformer_ffn_dim,
            rms_norm_eps=1e-8,
            num_codebooks=self.dep_q,
        )
        if not isinstance(mimi_config, MimiConfig):
            mimi_config = MimiConfig(**mimi_config)
        return MoshiConfig(
            vocab_size=self.text_card,
            hidden_size=self.dim,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            num_key_value_heads=self.num_heads,
            audio_vocab_size=self.card,
            max_position_embeddings=self.context,
            sliding_window=self.context,
            rope_parameters={"rope_type": "default", "rope_theta": float(self.max_period)},
            ffn_dim=self.ffn_dim,
            rms_norm_eps=1e-8,
            num_codebooks=self.num_audio_codebooks,
            audio_encoder_config=mimi_config.to_dict(),
            depth_decoder_config=depth,
        )

    @classmethod
    def from_hf_config(cls, config: Any) -> ModelSpec:
        """Inverse of `to_hf_config` (for HF-format folders such as kmhf/hf-moshiko)."""
        depth = config.depth_decoder_config
        spec = cls(
            dim=config.hidden_size,
            num_heads=config.num_attention_heads,
            num_layers=config.num_hidden_layers,
            hidden_scale=_dim_feedforward(config.hidden_size, config.ffn_dim) / config.hidden_size,
            text_card=config.vocab_size,
            card=config.audio_vocab_size,
            n_q=2 * config.num_codebooks,
            dep_q=depth.num_codebooks,
            context=config.sliding_window or config.max_position_embeddings,
            max_period=float((config.rope_parameters or {}).get("rope_theta", 10000.0)),
            depformer_dim=depth.hidden_size,
            depformer_num_heads=depth.num_attention_heads,
            depformer_num_layers=depth.num_hidden_layers,
            depformer_dim_feedforward=_dim_feedforward(depth.hidden_size, depth.ffn_dim),
            extra={"hf_ffn_dim": config.ffn_dim, "hf_depformer_ffn_dim": depth.ffn_dim},
        )
        spec.validate()
        return spec


def _dim_feedforward(dim: int, hf_ffn_dim: int) -> int:
    """Inverse of `gating_hidden`: kyutai's dim_feedforward from transformers' ffn_dim."""
    hidden = hf_ffn_dim // 2
    return 4 * dim if hidden == (21 * dim) // 8 else (3 * hidden) // 2


def tiny_mimi_config(card: int = 64, num_quantizers: int = 8):
    """A small random Mimi codec with the real frame rate (12.5 Hz at 24 kHz) for pipeline checks."""
    with gc_paused():  # often the process's first transformers import
        from transformers import MimiConfig

    return MimiConfig(
        hidden_size=32,
        num_filters=8,
        upsampling_ratios=[8, 6, 5, 4],
        codebook_size=card,
        codebook_dim=16,
        vector_quantization_hidden_dimension=16,
        num_quantizers=num_quantizers,
        num_hidden_layers=1,
        intermediate_size=64,
        num_attention_heads=2,
        num_key_value_heads=2,
        upsample_groups=32,
        sliding_window=250,
    )


# Presets. Sizes of `tiny` follow shared/fixtures/kyutai-tiny-moshi; `mid` is the CPU benchmark size;
# `full` is the 7B Moshi / PersonaPlex architecture (random weights when built from the preset).
PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        dim=64, num_heads=4, num_layers=4, text_card=100, card=64, context=256,
        depformer_dim=32, depformer_num_heads=2, depformer_num_layers=2, depformer_dim_feedforward=128,
    ),
    "mid": ModelSpec(
        dim=512, num_heads=8, num_layers=8, text_card=32000, card=2048, context=3000,
        depformer_dim=256, depformer_num_heads=4, depformer_num_layers=2, depformer_dim_feedforward=1024,
    ),
    "full": ModelSpec(),
}
PRESETS["tiny-personaplex"] = dataclasses.replace(PRESETS["tiny"], dep_q=16)
PRESETS["full-personaplex"] = dataclasses.replace(PRESETS["full"], dep_q=16)
