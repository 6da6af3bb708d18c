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

import torch

from ..errors import DuplexSteerError
from ..lazy import gc_paused
from .build import build_random_modules
from .codec import MimiCodec, random_tiny_mimi
from .model import DuplexModel
from .modules import from_transformers
from .native import NATIVE_LM, NATIVE_MIMI, NATIVE_TOKENIZER, TOOLKIT_META, NativeLoadError, load_native_parts
from .spec import PRESETS, ModelSpec
from .text import PieceTokenizer, SentencePieceTokenizer

__all__ = ["NATIVE_LM", "NATIVE_MIMI", "NATIVE_TOKENIZER", "LoadError", "load_engine_model"]
# What a hub download fetches: weights, configs, the SentencePiece model, PersonaPlex's voices
# (voices.tgz; its web UI, dist.tgz, is skipped).
DOWNLOAD_PATTERNS = ["*.json", "*.safetensors", "*.model", "voices.tgz"]
DEFAULT_SEED = 0
ORGANISM = "organism"  # the trained CPU organism (duplex_steer.models.load dispatches it)


class LoadError(DuplexSteerError, RuntimeError):
    """A model source that cannot be loaded; the message names what is missing and what to do."""


def default_dtype(device: torch.device) -> torch.dtype:
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def load_preset(name: str, device: torch.device, dtype: torch.dtype, seed: int = DEFAULT_SEED) -> DuplexModel:
    """Random weights for a preset architecture, a tiny random Mimi, a placeholder tokenizer."""
    spec = PRESETS[name]
    modules = build_random_modules(spec, seed, device, dtype)
    modules.audio_encoder = mimi = random_tiny_mimi(spec.card, seed, device, dtype)
    tok = PieceTokenizer.numbered(spec.text_card)
    return DuplexModel(modules, spec, MimiCodec(mimi), tok, source=name, is_random=True,
                       checkpoint_id=f"preset:{name}:seed{seed}")


def read_toolkit_meta(folder: Path) -> dict:
    """duplex_steer.json beside a checkpoint this toolkit wrote (exports, replicas); {} elsewhere."""
    path = folder / TOOLKIT_META
    try:
        meta = json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        raise LoadError(f"{path} is not valid JSON; delete it or write it again") from None
    return meta if isinstance(meta, dict) else {}


# --- native (kyutai) checkpoints -----------------------------------------------------------------
def is_native_folder(folder: Path) -> bool:
    """One model.safetensors with kyutai names; config.json absent, empty, or in kyutai terms."""
    if is_hf_folder(folder):
        return False
    if (folder / NATIVE_LM).is_file() and not (folder / "model.safetensors.index.json").exists():
        return True
    try:  # a kyutai config may name its weights file otherwise (moshi_name)
        data = json.loads((folder / "config.json").read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(data, dict) and ("dim" in data or "moshi_name" in data or "n_q" in data)


def load_native(folder: Path, device: torch.device, dtype: torch.dtype, lm_only: bool = False,
                source: str | None = None) -> DuplexModel:
    """A kyutai-format folder, converted onto the engine's modules one tensor at a time."""
    try:
        hf, spec, mimi, tokenizer = load_native_parts(folder, device, dtype, lm_only=lm_only)
    except NativeLoadError as exc:
        raise LoadError(str(exc)) from None
    tokenizer = tokenizer or PieceTokenizer.numbered(spec.text_card)
    codec = MimiCodec(mimi) if mimi is not None else None
    meta = read_toolkit_meta(folder)  # replicas mark themselves random: every report then says so
    return DuplexModel(hf, spec, codec, tokenizer, source=source or str(folder),
                       is_random=bool(meta.get("is_random", False)), checkpoint_id=meta.get("checkpoint_id"))


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
    with gc_paused():
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
    meta = read_toolkit_meta(folder)
    modules = from_transformers(hf, spec)
    return DuplexModel(modules, spec, MimiCodec(modules.audio_encoder), tokenizer, source=source or str(folder),
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
    try:
        return Path(snapshot_download(repo_id, allow_patterns=DOWNLOAD_PATTERNS, token=token, etag_timeout=10))
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


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The given device, else CUDA when available, else the CPU."""
    return torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_engine_model(source: str | os.PathLike[str], device: str | torch.device | None = None,
                      dtype: torch.dtype | None = None, *, lm_only: bool = False, token: str | None = None,
                      seed: int = DEFAULT_SEED) -> DuplexModel:
    """A preset, a kyutai-native or HuggingFace folder, or a hub repository id (`duplex_steer.load` adds
    the organism)."""
    dev = resolve_device(device)
    dt = dtype or default_dtype(dev)
    name = str(source)
    if name in PRESETS:
        return load_preset(name, dev, dt, seed=seed)
    path = Path(name).expanduser()
    if not path.exists():
        if name.count("/") != 1 or name.startswith((".", "/", "~")):
            raise LoadError(f"{name!r} is neither a preset ({', '.join(sorted(PRESETS))}), an existing "
                            "folder, nor a hub repository id of the form owner/name")
        path = _download(name, token)
    if not path.is_dir():
        raise LoadError(f"{path} is a file; give the folder that holds the checkpoint")
    if is_hf_folder(path):
        return load_hf_folder(path, dev, dt, source=name)
    if is_native_folder(path):
        return load_native(path, dev, dt, lm_only=lm_only, source=name)
    raise LoadError(f"{path} holds neither a kyutai-native checkpoint ({NATIVE_LM}, config.json absent, empty "
                    "or with 'dim'/'n_q') nor a HuggingFace Moshi checkpoint (config.json with model_type 'moshi')")
