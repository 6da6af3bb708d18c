"""Write any loaded model as a HuggingFace-format folder (`duplex-steer convert SRC DST`)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .. import __version__
from .loading import TOOLKIT_META
from .model import DuplexModel
from .text import PieceTokenizer, SentencePieceTokenizer


def export_hf(model: DuplexModel, dst: str | Path) -> Path:
    """save_pretrained + the text tokenizer + duplex_steer.json (provenance and the kyutai spec).

    The depformer's codebook count (16 for PersonaPlex) is read back from the weights on load,
    since transformers' MoshiConfig resets it to num_codebooks when it reads a config file.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    model.hf.save_pretrained(str(dst))
    tok = model.tokenizer
    if isinstance(tok, SentencePieceTokenizer):
        shutil.copy(tok.path, dst / "tokenizer_spm_32k_3.model")
    elif isinstance(tok, PieceTokenizer):
        tok.save(dst / "pieces.json")
    spec = {f.name: getattr(model.spec, f.name) for f in dataclasses.fields(model.spec) if f.name != "extra"}
    meta = {"toolkit_version": __version__, "source": model.source, "checkpoint_id": model.checkpoint_id,
            "is_random": model.is_random, "kyutai_spec": spec}
    (dst / TOOLKIT_META).write_text(json.dumps(meta, indent=1, default=list))
    return dst
