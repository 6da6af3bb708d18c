"""The organism's checkpoint folder: build, save and load.

A folder holds `config.json` (the kyutai-style architecture + provenance), `model.safetensors` (the
temporal transformer, depformer and embeddings, float16), `pieces.json` (the word vocabulary),
`codec.json` + `codec.safetensors` (the tag codec, `engine/tag_codec.py`) and `training.json`. The committed default lives
in `duplex_steer/organism/weights/` and loads with `duplex_steer.load("organism")`; any folder
written by `duplex-steer train-organism` loads with `duplex_steer.load(FOLDER)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..engine.build import build_random_modules
from ..engine.mel_codec import MelCodec
from ..engine.model import DuplexModel
from ..engine.spec import ModelSpec
from ..engine.tag_codec import TagCodec, load_small_codec
from ..engine.text import PieceTokenizer
from .settings import ORGANISM_NOTE, STEERING_DEFAULTS, organism_spec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
FORMAT = "duplex-steer-organism-1"
_PARTS = ("decoder", "depth_decoder", "embed_tokens")


def is_organism_folder(folder: Path) -> bool:
    cfg = folder / "config.json"
    try:
        return cfg.is_file() and json.loads(cfg.read_text()).get("format") == FORMAT
    except json.JSONDecodeError:
        return False


def assemble(spec: ModelSpec, codec: MelCodec | TagCodec, tokenizer: PieceTokenizer, seed: int, source: str,
              checkpoint_id: str, state: dict[str, torch.Tensor] | None = None) -> DuplexModel:
    """The organism's modules: seeded random weights, or (with `state`) the saved ones, placed into modules
    built on the meta device (no initialisation to throw away: part of a quick cold start)."""
    if state is None:
        hf = build_random_modules(spec, seed, torch.device("cpu"), torch.float32)
    else:
        hf = _from_state(spec, state)
    model = DuplexModel(hf, spec, codec, tokenizer, source=source, is_random=False, checkpoint_id=checkpoint_id)
    model.note = ORGANISM_NOTE
    model.persona_prompts = False  # user heads, but a toy vocabulary: PersonaPlex's prompts mean nothing to it
    model.steering_defaults = dict(STEERING_DEFAULTS)
    return model


def new_model(world, codec: MelCodec | TagCodec, seed: int = 0, user_heads: bool = True) -> DuplexModel:
    """An untrained organism (seeded init) with the world's vocabulary and the given codec."""
    tok = world.tokenizer()
    card = 1 << (codec.card - 1).bit_length()  # transformers' Mimi config wants a power of two
    spec = organism_spec(len(tok.pieces), card=card, dep_q=16 if user_heads else 8)
    return assemble(spec, codec, tok, seed, "organism", f"organism:seed{seed}")


def trainable_parameters(model: DuplexModel) -> list[torch.nn.Parameter]:
    return [p for part in _PARTS for p in getattr(model.hf, part).parameters()]


def save_checkpoint(model: DuplexModel, folder: str | Path, training: dict | None = None) -> None:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"{part}.{k}": v.detach().to(torch.float16).contiguous()
             for part in _PARTS for k, v in getattr(model.hf, part).state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    model.codec.save(folder)
    model.tokenizer.save(folder / "pieces.json")
    (folder / "config.json").write_text(json.dumps({
        "format": FORMAT, "checkpoint_id": model.checkpoint_id, "spec": model.spec.to_kyutai(),
    }, indent=1))
    if training is not None:
        (folder / "training.json").write_text(json.dumps(training, indent=1))


def load_organism(folder: str | Path = WEIGHTS_DIR, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32, source: str | None = None) -> DuplexModel:
    """Load an organism folder (default: the committed one)."""
    from safetensors.torch import load_file

    from ..engine.loading import LoadError

    folder = Path(folder)
    if not is_organism_folder(folder):
        raise LoadError(f"{folder} is not an organism checkpoint (config.json with format {FORMAT!r}); "
                        "train one with `duplex-steer train-organism --out DIR`")
    cfg = json.loads((folder / "config.json").read_text())
    try:
        spec = ModelSpec.from_kyutai(cfg["spec"])
        codec = load_small_codec(folder)
        tok = PieceTokenizer.load(folder / "pieces.json")
        state = load_file(str(folder / "model.safetensors"))
    except Exception as exc:
        raise LoadError(f"{folder}: incomplete or corrupt organism checkpoint ({exc}); retrain or re-checkout it") from None
    model = assemble(spec, codec, tok, 0, source or "organism", cfg.get("checkpoint_id", "organism"), state)
    return model.to(device=device, dtype=dtype)


def _from_state(spec: ModelSpec, state: dict[str, torch.Tensor]):
    """Modules built on the meta device whose tensors are `state`'s (float32), RoPE tables rebuilt."""
    from ..engine.build import build_empty_modules, set_parameter
    from ..engine.loading import LoadError
    from ..engine.modules import meta_tensors, rebuild_rotary_buffers

    hf = build_empty_modules(spec)
    expected = {f"{part}.{k}" for part in _PARTS for k in getattr(hf, part).state_dict()}
    if set(state) != expected:
        raise LoadError(f"organism weights do not match its architecture (missing {sorted(expected - set(state))[:3]}, "
                        f"unexpected {sorted(set(state) - expected)[:3]}); retrain or re-checkout it")
    for name, value in state.items():
        set_parameter(hf, name, value.float())
    rebuild_rotary_buffers(hf, torch.device("cpu"))
    left = meta_tensors(hf)
    if left:
        raise LoadError(f"organism weights left {len(left)} tensors unset ({', '.join(left[:3])})")
    return hf
