"""Write any loaded model as a HuggingFace-format folder (`duplex-steer convert SRC DST`)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .. import __version__
from ..errors import DuplexSteerError
from .codec import random_tiny_mimi
from .loading import TOOLKIT_META
from .model import DuplexModel
from .modules import to_transformers
from .text import PieceTokenizer, SentencePieceTokenizer


class ExportError(DuplexSteerError, ValueError):
    """A model that cannot be written in the asked format."""


def export_hf(model: DuplexModel, dst: str | Path) -> Path:
    """save_pretrained + the text tokenizer + duplex_steer.json (provenance and the kyutai spec).

    A language model loaded without its codec (`lm_only=True`) is written with a random tiny Mimi in the
    codec's place, and duplex_steer.json says so.

    The depformer's codebook count (16 for PersonaPlex) is read back from the weights on load,
    since transformers' MoshiConfig resets it to num_codebooks when it reads a config file.
    """
    if model.codec is not None and model.hf.audio_encoder is None:
        raise ExportError(f"{model.source} has its own codec, not Mimi: transformers' Moshi format holds a Mimi "
                          "codec, so this model cannot be written in it; its own checkpoint folder (safetensors and "
                          "JSON) is already portable")
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    placeholder = model.hf.audio_encoder is None  # a language model loaded alone (lm_only=True)
    mimi = random_tiny_mimi(model.spec.card, 0, model.device, model.dtype) if placeholder else None
    to_transformers(model.hf, model.spec, mimi).save_pretrained(str(dst))
    tok = model.tokenizer
    if isinstance(tok, SentencePieceTokenizer):
        shutil.copy(tok.path, dst / "tokenizer_spm_32k_3.model")
    elif isinstance(tok, PieceTokenizer):
        tok.save(dst / "pieces.json")
    spec = {f.name: getattr(model.spec, f.name) for f in dataclasses.fields(model.spec) if f.name != "extra"}
    meta = {"toolkit_version": __version__, "source": model.source, "checkpoint_id": model.checkpoint_id,
            "is_random": model.is_random, "kyutai_spec": spec}
    if placeholder:
        meta["codec"] = "placeholder: a random tiny Mimi (the model was loaded without its codec)"
    (dst / TOOLKIT_META).write_text(json.dumps(meta, indent=1, default=list))
    return dst
