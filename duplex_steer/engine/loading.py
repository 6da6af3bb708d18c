"""`load(source)`: one entry point for every kind of model source, returning a `DuplexModel`.

Sources:
- a preset name (`tiny`, `tiny-personaplex`, `mid`, `full`, `full-personaplex`): random weights from a
  fixed seed, no download; labelled everywhere as a pipeline check;
- `organism`: the small model trained on CPU on synthesized duplex speech (duplex_steer.organism),
  committed, no download; any folder `duplex-steer train-organism` wrote loads by its path;
- a kyutai-native folder or repo id (config.json + model.safetensors + Mimi file + sentencepiece
  model; Moshi with 8 depformer codebooks, PersonaPlex with 16), converted in memory;
- a HuggingFace-format Moshi folder or repo id (the kmhf/hf-moshiko layout).
Every failure is a `LoadError` saying what was expected and how to get it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import DuplexSteerError
from .codec import MimiCodec
from .mimi_convert import mimi_config_from_kyutai
from .model import DuplexModel
from .spec import PRESETS, ModelSpec, SpecError, tiny_mimi_config
from .text import PieceTokenizer, SentencePieceTokenizer

NATIVE_LM = "model.safetensors"
NATIVE_MIMI = "tokenizer-e351c8d8-checkpoint125.safetensors"
NATIVE_TOKENIZER = "tokenizer_spm_32k_3.model"
TOOLKIT_META = "duplex_steer.json"
DEFAULT_SEED = 0
ORGANISM = "organism"  # the trained CPU organism committed in duplex_steer/organism/weights


class LoadError(DuplexSteerError, RuntimeError):
    """A model source that cannot be loaded; the message names what is missing and what to do."""


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def _init_random(module: torch.nn.Module, seed: int) -> None:
    """Reference-like init (std 1/sqrt(fan_in)); transformers' flexible linears start at std 1."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                p.fill_(1.0)
            elif p.dim() >= 2:
                cpu = torch.empty(p.shape, dtype=torch.float32).normal_(0.0, p.shape[-1] ** -0.5, generator=gen)
                p.copy_(cpu.to(p.dtype))


@torch.no_grad()
def _init_random_codec(mimi: torch.nn.Module, seed: int) -> None:
    """Spread a random Mimi's codebooks over its own latent distribution.

    transformers initialises codebooks to zero, which makes every frame quantize to code 0 (the
    user stream would be constant). Codewords are drawn from the latents of a seeded noise signal,
    and each residual stage from the residual left by the previous ones.
    """
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(1, 1, 24_000 * 2, generator=gen) * 0.1
    param = next(mimi.parameters())
    latent = mimi.encoder(noise.to(param.device, param.dtype))[0]  # [1, hidden, frames]
    for rvq in (mimi.quantizer.semantic_residual_vector_quantizer, mimi.quantizer.acoustic_residual_vector_quantizer):
        residual = rvq.input_proj(latent) if rvq.input_proj is not None else latent
        flat = residual.transpose(1, 2).reshape(-1, residual.shape[1])
        for layer in rvq.layers:
            book = layer.codebook
            pick = torch.randint(0, flat.shape[0], (book.embed_sum.shape[0],), generator=gen)
            jitter = torch.randn(book.embed_sum.shape, generator=gen).to(flat.device)  # drawn on the CPU: same on any device
            book.embed_sum.copy_(flat[pick.to(flat.device)] + 1e-3 * jitter)
            book.cluster_usage.fill_(1.0)
            book.initialized.fill_(1.0)
            flat = flat - layer.codebook.decode(layer.codebook.encode(flat))


def _build_hf(spec: ModelSpec, mimi_config: Any, device: torch.device, dtype: torch.dtype):
    from transformers import MoshiForConditionalGeneration

    config = spec.to_hf_config(mimi_config)
    config._attn_implementation = "sdpa"
    with torch.device(device):
        return MoshiForConditionalGeneration._from_config(config, dtype=dtype)


def load_preset(name: str, device: torch.device, dtype: torch.dtype, seed: int = DEFAULT_SEED) -> DuplexModel:
    """Random weights for a preset architecture, a tiny random Mimi, a placeholder tokenizer."""
    spec = PRESETS[name]
    with torch.random.fork_rng(devices=[]):  # the codec's own init draws from the global generator
        torch.manual_seed(seed)
        hf = _build_hf(spec, tiny_mimi_config(spec.card), device, dtype)
    _init_random(hf.decoder, seed)
    _init_random(hf.embed_tokens, seed + 1)
    _init_random(hf.depth_decoder, seed + 2)
    _init_random_codec(hf.audio_encoder, seed + 3)
    tok = PieceTokenizer.numbered(spec.text_card)
    return DuplexModel(hf, spec, MimiCodec(hf.audio_encoder), tok, source=name, is_random=True,
                       checkpoint_id=f"preset:{name}:seed{seed}")


# --- native (kyutai) checkpoints -----------------------------------------------------------------
def is_native_folder(folder: Path) -> bool:
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except json.JSONDecodeError:
            return False
        return "dim" in data or "moshi_name" in data or "n_q" in data
    return (folder / NATIVE_LM).is_file() and not (folder / "model.safetensors.index.json").exists()


def _native_config(folder: Path) -> dict[str, Any]:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return PRESETS["full"].to_kyutai()  # legacy repos without config.json use the 7B defaults
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise LoadError(f"{cfg} is not valid JSON ({exc}); re-download the checkpoint") from None


def _depformer_codebooks(state: dict[str, torch.Tensor]) -> int:
    return sum(1 for k in state if k.startswith("linears.") and k.endswith(".weight"))


def load_native(folder: Path, device: torch.device, dtype: torch.dtype, lm_only: bool = False,
                source: str | None = None) -> DuplexModel:
    """A kyutai-format folder, converted in memory onto transformers' modules."""
    from safetensors.torch import load_file

    from .convert import ConversionError, convert_lm_state_dict, load_converted

    raw = dict(_native_config(folder))
    lm_name = raw.pop("moshi_name", NATIVE_LM)
    mimi_name = raw.pop("mimi_name", NATIVE_MIMI)
    tok_name = raw.pop("tokenizer_name", NATIVE_TOKENIZER)
    lm_path = folder / lm_name
    if not lm_path.is_file():
        raise LoadError(f"{folder} has no {lm_name}: a kyutai-native checkpoint needs config.json, {lm_name}, "
                        f"{NATIVE_MIMI} (Mimi) and {NATIVE_TOKENIZER}; download the whole repository")
    try:
        state = load_file(str(lm_path))
    except Exception as exc:
        raise LoadError(f"could not read {lm_path} as safetensors ({exc}); the file is corrupt or incomplete, "
                        "download it again") from None
    found_dep_q = _depformer_codebooks(state)
    if "dep_q" not in raw and found_dep_q:
        raw["dep_q"] = found_dep_q
    try:
        spec = ModelSpec.from_kyutai(raw)
    except (SpecError, TypeError) as exc:
        raise LoadError(f"{folder / 'config.json'}: {exc}") from None
    if found_dep_q and found_dep_q != spec.dep_q:
        raise LoadError(f"config says dep_q={spec.dep_q} but the weights have {found_dep_q} depformer heads")

    codec_path, tok_path = folder / mimi_name, folder / tok_name
    if not lm_only:
        for path, what in ((codec_path, "the Mimi codec"), (tok_path, "the sentencepiece text tokenizer")):
            if not path.is_file():
                raise LoadError(f"{folder} has no {path.name} ({what}); download the whole repository, or pass "
                                "lm_only=True to load the language model alone")
    mimi_cfg = mimi_config_from_kyutai() if codec_path.is_file() else tiny_mimi_config(spec.card)
    hf = _build_hf(spec, mimi_cfg, torch.device("cpu"), torch.float32)
    try:
        load_converted(hf, convert_lm_state_dict(state, spec))
    except ConversionError as exc:
        raise LoadError(f"{lm_path}: {exc}") from None
    del state
    if codec_path.is_file():
        from .mimi_convert import convert_mimi_state_dict

        try:
            mimi_state = convert_mimi_state_dict(load_file(str(codec_path)), hf.audio_encoder.config)
            hf.audio_encoder.load_state_dict(mimi_state, strict=True)
        except Exception as exc:
            raise LoadError(f"{codec_path}: could not load the Mimi codec ({exc})") from None
    hf.to(device=device, dtype=dtype)
    tokenizer = SentencePieceTokenizer(tok_path) if tok_path.is_file() else PieceTokenizer.numbered(spec.text_card)
    codec = MimiCodec(hf.audio_encoder) if codec_path.is_file() else None
    return DuplexModel(hf, spec, codec, tokenizer, source=source or str(folder), is_random=False)


# --- HuggingFace-format checkpoints ------------------------------------------------------------------
def is_hf_folder(folder: Path) -> bool:
    cfg = folder / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("model_type") == "moshi"
    except json.JSONDecodeError:
        return False


def _hf_depformer_codebooks(folder: Path) -> int | None:
    """dep_q read from the weights' shapes (transformers' config forces it to num_codebooks on load)."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = {folder / f for k, f in json.loads(index.read_text())["weight_map"].items()
                 if k == "depth_decoder.lm_heads.weight"}
    else:
        files = {folder / "model.safetensors"}
    for f in files:
        if f.is_file():
            with safe_open(str(f), "pt") as sf:
                if "depth_decoder.lm_heads.weight" in sf.keys():
                    return int(sf.get_slice("depth_decoder.lm_heads.weight").get_shape()[0])
    return None


def load_hf_folder(folder: Path, device: torch.device, dtype: torch.dtype, source: str | None = None) -> DuplexModel:
    from transformers import MoshiConfig, MoshiForConditionalGeneration

    try:
        config = MoshiConfig.from_pretrained(str(folder))
    except Exception as exc:
        raise LoadError(f"{folder}/config.json is not a valid Moshi config ({exc})") from None
    dep_q = _hf_depformer_codebooks(folder)
    if dep_q:
        config.depth_decoder_config.num_codebooks = dep_q
    config._attn_implementation = "sdpa"
    try:
        hf = MoshiForConditionalGeneration.from_pretrained(str(folder), config=config, dtype=dtype)
    except OSError as exc:
        raise LoadError(f"{folder}: weights missing or unreadable ({exc}); download the whole repository") from None
    hf.to(device)
    spec = ModelSpec.from_hf_config(config)
    tok_path = next((p for p in (folder / NATIVE_TOKENIZER, folder / "tokenizer.model") if p.is_file()), None)
    if tok_path:
        tokenizer = SentencePieceTokenizer(tok_path)
    elif (folder / "pieces.json").is_file():
        tokenizer = PieceTokenizer.load(folder / "pieces.json")
    else:
        tokenizer = PieceTokenizer.numbered(spec.text_card)
    meta_path = folder / TOOLKIT_META
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    return DuplexModel(hf, spec, MimiCodec(hf.audio_encoder), tokenizer, source=source or str(folder),
                       is_random=bool(meta.get("is_random", False)), checkpoint_id=meta.get("checkpoint_id"))


# --- repo ids ------------------------------------------------------------------------------------------
def _download(repo_id: str, token: str | None) -> Path:
    """Fetch a hub repository's model files; every hub failure becomes a LoadError."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - transformers depends on huggingface_hub
        raise LoadError(f"huggingface_hub is required to download {repo_id}: {exc}") from None
    patterns = ["*.json", "*.safetensors", "*.model"]
    try:
        return Path(snapshot_download(repo_id, allow_patterns=patterns, token=token, etag_timeout=10))
    except GatedRepoError:
        raise LoadError(f"{repo_id} is gated: accept its licence on the Hugging Face website, then log in "
                        "(`hf auth login`) or set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise LoadError(f"no repository {repo_id!r} on the Hugging Face hub (or it is private: set HF_TOKEN); "
                        "for a local folder give an existing path") from None
    except LocalEntryNotFoundError:
        raise LoadError(f"{repo_id} is not in the local Hugging Face cache and the hub cannot be reached "
                        f"(HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')}); download it on a machine "
                        "with network access (`hf download REPO`) or give a local folder") from None
    except Exception as exc:  # network errors come in many types
        raise LoadError(f"could not download {repo_id}: {exc}") from None


def load(source: str | os.PathLike[str], device: str | torch.device | None = None, dtype: torch.dtype | None = None,
         *, lm_only: bool = False, token: str | None = None, seed: int = DEFAULT_SEED) -> DuplexModel:
    """Load a full-duplex model from a preset name, a local folder, or a hub repository id."""
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dt = dtype or default_dtype(dev)
    name = str(source)
    if name in PRESETS:
        return load_preset(name, dev, dt, seed=seed)
    if name == ORGANISM:
        from ..organism.checkpoint import load_organism

        return load_organism(device=dev, dtype=torch.float32 if dtype is None else dt)
    path = Path(name).expanduser()
    if not path.exists():
        if name.count("/") != 1 or name.startswith((".", "/", "~")):
            raise LoadError(f"{name!r} is neither a preset ({', '.join(sorted(PRESETS))}), an existing "
                            "folder, nor a hub repository id of the form owner/name")
        path = _download(name, token)
    if not path.is_dir():
        raise LoadError(f"{path} is a file; give the folder that holds the checkpoint")
    from ..organism.checkpoint import is_organism_folder, load_organism

    if is_organism_folder(path):
        return load_organism(path, device=dev, dtype=torch.float32 if dtype is None else dt, source=name)
    if is_hf_folder(path):
        return load_hf_folder(path, dev, dt, source=name)
    if is_native_folder(path):
        return load_native(path, dev, dt, lm_only=lm_only, source=name)
    raise LoadError(f"{path} holds neither a kyutai-native checkpoint (config.json with 'dim'/'n_q', or "
                    f"{NATIVE_LM}) nor a HuggingFace Moshi checkpoint (config.json with model_type 'moshi')")
