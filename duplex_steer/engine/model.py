"""`DuplexModel`: a Moshi-family model on the engine's modules, with the reference's semantics.

The temporal transformer's layers (`engine.modules.DecoderLayer`: transformers' `MoshiDecoderLayer`
routes, names and arithmetic, the toolkit's code) are called one by one as modules so that forward hooks
(probes, steering) and nnsight see every call. The depformer runs on its weights through a small
dedicated loop: causal by construction, never copying per-codebook weights, and what the per-frame step
spends most of its calls on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .kv_cache import FrameKVCache, window_mask
from .spec import ModelSpec

if TYPE_CHECKING:
    from .codec import Codec
    from .session import DuplexSession
    from .text import TextTokenizer

PIPELINE_CHECK_NOTE = (
    "random-weight model: a pipeline check only; its outputs say nothing about real models"
)


@dataclass
class TeacherForcedOutput:
    """Outputs of `DuplexModel.forward_codes`, aligned with the undelayed input codes."""

    text_logits: Tensor  # [B, T, text_card]
    audio_logits: Tensor  # [B, dep_q, T, card]; NaN where the delays leave no prediction
    hidden: Tensor  # [B, T, dim]: final-normed temporal transformer output (the depformer's input)


class DuplexModel(nn.Module):
    """A loaded full-duplex model: the module tree (`hf`, transformers' routes) + codec + tokenizer + provenance."""

    def __init__(
        self,
        hf_model: nn.Module,
        spec: ModelSpec,
        codec: Codec | None,
        tokenizer: TextTokenizer,
        source: str,
        is_random: bool,
        checkpoint_id: str | None = None,
    ):
        super().__init__()
        self.hf = hf_model
        self.spec = spec
        self.codec = codec
        self.tokenizer = tokenizer
        self.source = source
        self.is_random = is_random
        self.checkpoint_id = checkpoint_id or source
        self.hf.config._attn_implementation = "sdpa"
        self.hf.eval()
        self.requires_grad_(False)
        self.register_buffer("_delays", torch.tensor(spec.delays, dtype=torch.long), persistent=False)
        self._depth_weights: dict[str, Any] | None = None
        self.current_frames: range = range(0)
        self.note: str | None = None  # one line every report prints with this model (e.g. the organism's caveat)
        # PersonaPlex's voice and role prompts by default: PersonaPlex-shaped (user heads) checkpoints; a model
        # with user heads but another vocabulary (the organism) sets it False
        self.persona_prompts: bool = spec.has_user_heads
        # the model's own steering settings {"layer", "alpha", "span"} (the organism's); None: the paper's rule
        # scaled to depth (duplex_steer.steering.defaults)
        self.steering_defaults: dict[str, float] | None = None

    # --- structure ------------------------------------------------------------------------------
    @property
    def layers(self) -> nn.ModuleList:
        """The temporal transformer's layers, in order (hook points: output = residual stream)."""
        return self.hf.decoder.model.layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def hidden_size(self) -> int:
        return self.spec.dim

    @property
    def device(self) -> torch.device:
        return self.hf.decoder.lm_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.hf.decoder.lm_head.weight.dtype

    @property
    def label(self) -> str:
        """One line saying what this model is; random models say they are a pipeline check."""
        kind = "PersonaPlex-style (user heads)" if self.spec.has_user_heads else "Moshi-style"
        text = f"{self.source} ({kind}, {self.num_layers} layers x {self.hidden_size})"
        if self.is_random:
            return f"{text} - {PIPELINE_CHECK_NOTE}"
        return f"{text} - {self.note}" if self.note else text

    @property
    def caveat(self) -> str | None:
        """The line every result made with this model must carry: a random model is a pipeline check, the
        organism a toy world (its `note`); None for real weights."""
        return PIPELINE_CHECK_NOTE if self.is_random else self.note

    def fingerprint(self) -> dict[str, Any]:
        """What a steering vector or probe must match to be applied to this model."""
        return {
            "architecture": "moshi-personaplex" if self.spec.has_user_heads else "moshi",
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "checkpoint": self.checkpoint_id,
        }

    # --- pieces of the forward pass ---------------------------------------------------------------
    def embed(self, tokens: Tensor) -> Tensor:
        """Sum of the text and the 16 audio embeddings. tokens [B, 17, T] -> [B, T, dim]; -1 embeds to 0."""
        # Multiplying by the validity mask (rather than branching on it) keeps the step free of
        # host-device synchronisation on GPU.
        valid = (tokens >= 0).unsqueeze(-1)
        safe = tokens.clamp(min=0)
        x = self.hf.decoder.model.embed_tokens(safe[:, 0]) * valid[:, 0]
        for k, emb in enumerate(self.hf.embed_tokens):
            x = x + emb(safe[:, k + 1]) * valid[:, k + 1]
        return x

    def run_layers(self, x: Tensor, start: int = 0, cache: FrameKVCache | None = None) -> Tensor:
        """Temporal transformer layers over [B, T, dim] holding absolute frames start .. start + T - 1.

        With a cache, T must be 1 (streaming). Without, a causal sliding-window mask is applied.
        `current_frames` tells hooks which absolute frames the call covers (never positions within
        the call: under a KV cache each call is one frame). Returns the last layer's residual output.
        """
        T = x.shape[1]
        self.current_frames = range(start, start + T)
        mask = None if cache is not None else window_mask(T, self.spec.context, x.device)
        if mask is not None and self.hf.config._attn_implementation == "eager":
            # eager attention adds its mask to the scores: boolean masks must become additive
            mask = torch.zeros(mask.shape, dtype=x.dtype, device=x.device).masked_fill(~mask, torch.finfo(x.dtype).min)
        pos = torch.arange(start, start + T, device=x.device).view(1, -1)
        for layer in self.layers:
            x = layer(x, attention_mask=mask, position_ids=pos, past_key_values=cache)
        return x

    def final_norm(self, h: Tensor) -> Tensor:
        return self.hf.decoder.model.norm(h)

    def text_logits(self, normed: Tensor) -> Tensor:
        return self.hf.decoder.lm_head(normed)

    # --- depformer --------------------------------------------------------------------------------
    def _depth(self) -> dict[str, Any]:
        """Per-codebook weight views of the depth decoder, built once (no copies)."""
        if self._depth_weights is None:
            dd = self.hf.depth_decoder
            layers = []
            for layer in dd.layers:
                att = layer.self_attn
                qkv = torch.cat([att.q_proj.linear.weight, att.k_proj.linear.weight, att.v_proj.linear.weight], 1)
                layers.append({
                    "qkv": qkv, "o": att.o_proj.linear.weight,
                    "fc1": layer.mlp.fc1.weight, "fc2": layer.mlp.fc2.weight,
                    "norm1": layer.input_layernorm, "norm2": layer.post_attention_layernorm,
                    "heads": att.num_heads, "act": layer.mlp.activation_fn,
                })
            self._depth_weights = {
                "in": dd.input_projections.weight, "heads": dd.lm_heads.weight,
                "text_emb": dd.text_embed_tokens, "emb": dd.embed_tokens, "layers": layers,
            }
        return self._depth_weights

    def depth_step(self, k: int, normed: Tensor, prev_token: Tensor, kv: list[list[Tensor]]) -> Tensor:
        """One depformer step: logits [N, card] for codebook k.

        normed: [N, dim] final-normed temporal output; prev_token: [N] (text token for k = 0, else
        codebook k-1); kv: per depformer layer, the list of (keys, values) of earlier steps, appended to.
        """
        w = self._depth()
        emb = w["text_emb"] if k == 0 else w["emb"][k - 1]
        x = F.linear(normed, w["in"][k]) + emb(prev_token)
        N = x.shape[0]
        for li, lw in enumerate(w["layers"]):
            h = lw["norm1"](x)
            qkv = F.linear(h, lw["qkv"][k])
            H = lw["heads"]
            q, key, val = qkv.view(N, 3, H, -1).unbind(1)  # each [N, H, hd]
            keys_vals = kv[li]
            keys_vals.append((key, val))
            K_ = torch.stack([kv_[0] for kv_ in keys_vals], 2)  # [N, H, k+1, hd]
            V_ = torch.stack([kv_[1] for kv_ in keys_vals], 2)
            att = F.scaled_dot_product_attention(q.unsqueeze(2), K_, V_)  # [N, H, 1, hd]
            x = x + F.linear(att.reshape(N, -1), lw["o"][k])
            h = lw["norm2"](x)
            a, b = F.linear(h, lw["fc1"][k]).chunk(2, dim=-1)
            x = x + F.linear(lw["act"](a) * b, lw["fc2"][k])
        return F.linear(x, w["heads"][k])

    def depth_logits(self, normed: Tensor, inputs: Tensor, num_codebooks: int | None = None) -> Tensor:
        """Teacher-forced depformer: normed [N, dim], inputs [N, K] (text, then codebooks 0..K-2) -> [N, K, card].

        The K steps run at once (causal attention over the steps, each step's own weights by batched
        matmul): the same arithmetic as K calls of `depth_step`, without its per-step loop, whose weight
        slices cost a full-size gradient each in training."""
        K = num_codebooks or self.spec.dep_q
        w = self._depth()
        N = normed.shape[0]
        embedded = [w["text_emb"](inputs[:, 0])] + [w["emb"][k - 1](inputs[:, k]) for k in range(1, K)]
        x = torch.einsum("nd,ked->nke", normed, w["in"][:K]) + torch.stack(embedded, 1)  # [N, K, D]
        for lw in w["layers"]:
            h = lw["norm1"](x)
            qkv = torch.einsum("nkd,ked->nke", h, lw["qkv"][:K])
            q, key, val = qkv.view(N, K, 3, lw["heads"], -1).permute(2, 0, 3, 1, 4).unbind(0)  # [N, H, K, hd]
            att = F.scaled_dot_product_attention(q, key, val, is_causal=True).transpose(1, 2).reshape(N, K, -1)
            x = x + torch.einsum("nkd,ked->nke", att, lw["o"][:K])
            a, b = torch.einsum("nkd,ked->nke", lw["norm2"](x), lw["fc1"][:K]).chunk(2, dim=-1)
            x = x + torch.einsum("nkf,kef->nke", lw["act"](a) * b, lw["fc2"][:K])
        return torch.einsum("nkd,kcd->nkc", x, w["heads"][:K])

    # --- whole sequences --------------------------------------------------------------------------
    def delay(self, codes: Tensor) -> Tensor:
        """Undelayed [B, 17, T] -> the delayed, initial-token-prefixed model input [B, 17, T + 1]."""
        B, K, T = codes.shape
        initial = self.initial_tokens().view(1, K, 1).expand(B, K, 1)
        out = torch.cat([initial, codes], 2).clone()
        for k, d in enumerate(self.spec.delays):
            if d:
                out[:, k, 1 + d :] = codes[:, k, : T - d]
                out[:, k, 1 : 1 + d] = initial[:, k]
        return out

    def initial_tokens(self) -> Tensor:
        spec = self.spec
        tok = torch.full((spec.n_q + 1,), spec.audio_initial_token, dtype=torch.long, device=self.device)
        tok[0] = spec.text_initial_token
        return tok

    @torch.no_grad()
    def forward_codes(self, codes: Tensor) -> TeacherForcedOutput:
        """Teacher-forced pass with the reference's `LMModel.forward` semantics.

        codes: undelayed [B, 17, T] (row 0 text, 1-8 model audio, 9-16 user audio). Layer hooks see
        [B, T, dim] once. Logits are re-aligned with `codes`; positions the delays leave without a
        prediction are NaN.
        """
        return self.teacher_forced(codes)

    def forget_fused_weights(self) -> None:
        """Drop the depformer's cached fused weights (rebuilt on next use): call after changing weights."""
        self._depth_weights = None

    def teacher_forced(self, codes: Tensor) -> TeacherForcedOutput:
        """`forward_codes` with autograd left to the caller (training); weights are read fresh each call."""
        if torch.is_grad_enabled():
            self.forget_fused_weights()  # the cached fused q/k/v copy would be stale after an update
        B, K, T = codes.shape
        if K != self.spec.n_q + 1:
            raise ValueError(f"codes must have {self.spec.n_q + 1} rows (text + {self.spec.n_q} audio), got {K}")
        delayed = self.delay(codes.to(self.device))
        h = self.run_layers(self.embed(delayed[:, :, :-1]), 0)
        normed = self.final_norm(h)
        text = self.text_logits(normed)
        dep_in = delayed[:, : self.spec.dep_q, 1:].permute(0, 2, 1).reshape(B * T, -1)
        audio = self.depth_logits(normed.reshape(B * T, -1), dep_in).view(B, T, self.spec.dep_q, -1)
        audio = audio.permute(0, 2, 1, 3)
        # undelay: the prediction for codebook k at frame t sits at delayed position t + delay
        out = torch.full_like(audio, float("nan"))
        for k in range(self.spec.dep_q):
            d = self.spec.delays[k + 1]
            out[:, k, : T - d] = audio[:, k, d:]
        return TeacherForcedOutput(text_logits=text, audio_logits=out, hidden=normed)

    def forward(self, codes: Tensor) -> TeacherForcedOutput:
        """The teacher-forced pass (`forward_codes`), so that `nnsight.NNsight(model)` can trace it."""
        return self.forward_codes(codes)

    def session(self, batch_size: int = 1, greedy: bool = False, seed: int | None = None,
                noise_groups: list[int] | None = None, noise_keys: Sequence[int] | None = None,
                max_frames: int | None = None, fast: bool = False, **sampling: Any) -> DuplexSession:
        """A fresh streaming conversation state for `batch_size` independent conversations.

        Items with the same `noise_groups` id share their sampling noise (paired comparisons).
        `noise_keys` (one int per item, `engine.noise.key_for`) instead keys each item's noise to
        itself: an item draws the same samples in any batch, and equal keys share noise.
        `max_frames` (the conversation's length, when known) sizes the KV window, allocated once:
        min(context, max_frames) frames; without it, the whole context. `fast=True` computes each
        frame with the compiled static step (`engine.fast_step`: same tokens; forward hooks do not run
        in it, so steer with `steering.steer.attach` and read probe states via `capture_layers`).
        """
        from .session import DuplexSession, SamplingConfig

        return DuplexSession(self, batch_size=batch_size, sampling=SamplingConfig(greedy=greedy, **sampling),
                             seed=seed, noise_groups=noise_groups, noise_keys=noise_keys, max_frames=max_frames,
                             fast=fast)
