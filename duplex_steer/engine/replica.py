"""Random-weight replicas of the real Moshi and PersonaPlex repositories, written tensor by tensor.

A replica has exactly the real repository's files, names, shapes and dtypes, with random values:
- Moshi (kyutai/moshiko-pytorch-bf16): no config.json; `model.safetensors` (bfloat16, kyutai names, each
  layer's attention projections fused as `self_attn.in_proj_weight` / `out_proj.weight` as in the release);
  the Mimi file (float32, the released codec's 318 tensors); a SentencePiece model with 32000 pieces
  and ids 0-3 as Moshi's (<unk>/EPAD, <s>, </s>, <pad>/PAD); README.md.
- PersonaPlex (nvidia/personaplex-7b-v1): the same plus an empty config.json, a depformer with 16
  codebooks, and `voices.tgz` holding voices/NATF0-3, NATM0-3, VARF0-4, VARM0-4 `.pt` files in the
  real format (`{"embeddings": [F, 1, 1, dim], "cache": [1, 17, 4]}`, as PersonaPlex's LMGen saves).
`size="full"` is the 7B (15.4 GB LM file; what the loading benchmark measures); `size="small"` keeps
every name but small widths (dim 64, 2 layers; card 2048 and the 32000-word text vocabulary stay real)
and so needs a config.json (the real repositories' loader could not guess it either). A replica also holds
`duplex_steer.json` marking it random, so that every result made with it is labelled a pipeline check. Only one tensor
is in memory at a time. Replicas prove the loading path and the pipeline, never a research claim.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Literal

import torch

from .convert import RELEASED_PROJECTIONS, native_lm_layout
from .native import NATIVE_LM, NATIVE_MIMI, NATIVE_TOKENIZER, TOOLKIT_META
from .safetensors_io import write_streaming
from .spec import PRESETS, ModelSpec

Kind = Literal["moshi", "personaplex"]
Size = Literal["full", "small"]
Layout = Literal["released", "split"]
MIMI_LAYOUT = Path(__file__).with_name("layouts") / "mimi_native.json"
PERSONAPLEX_VOICES = ([f"NATF{i}" for i in range(4)] + [f"NATM{i}" for i in range(4)]
                      + [f"VARF{i}" for i in range(5)] + [f"VARM{i}" for i in range(5)])
SMALL_SPEC = ModelSpec(dim=64, num_heads=4, num_layers=2, text_card=32000, card=2048, context=3000,
                       depformer_dim=32, depformer_num_heads=2, depformer_num_layers=1, depformer_dim_feedforward=128)


def replica_spec(kind: Kind, size: Size) -> ModelSpec:
    base = PRESETS["full"] if size == "full" else SMALL_SPEC
    return dataclasses.replace(base, dep_q=16 if kind == "personaplex" else 8)


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:8], "little")


def random_tensor(name: str, dtype: torch.dtype, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Plausible random values by tensor role: norms and scales at 1 / 0.01, codebook state valid,
    biases 0, matrices normal with std 1/sqrt(fan_in); each tensor seeded by its name."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("alpha",) or name.endswith(("norm1.weight", "norm2.weight")):
        return torch.ones(shape, dtype=dtype)
    if leaf == "scale":
        return torch.full(shape, 0.01, dtype=dtype)
    if leaf == "bias":
        return torch.zeros(shape, dtype=dtype)
    if leaf in ("_initialized", "cluster_usage"):
        return torch.ones(shape, dtype=dtype)
    gen = torch.Generator().manual_seed(_seed(name, seed))
    fan_in = max(1, torch.Size(shape[1:]).numel())
    std = 1.0 if leaf == "embedding_sum" else fan_in ** -0.5
    return torch.randn(shape, generator=gen).mul_(std).to(dtype)


def released_lm_layout(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """The released files' names: per-step attention projections fused into `in_proj_weight` /
    `out_proj.weight` (steps stacked first), as in kyutai/moshiko-pytorch-bf16 and PersonaPlex."""
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in native_lm_layout(spec).items():
        for old, new in RELEASED_PROJECTIONS.items():
            head, sep, _ = name.partition(new.split("{i}")[0])
            if sep:
                fused = head + old
                rows = out.get(fused, (0,))[0]
                out[fused] = (rows + shape[0], *shape[1:])
                break
        else:
            out[name] = shape
    return out


def write_lm(path: Path, spec: ModelSpec, seed: int = 0, dtype: torch.dtype = torch.bfloat16, progress: bool = False,
             layout_kind: Layout = "released") -> int:
    """model.safetensors with the real tensor names and shapes; returns its size in bytes."""
    shapes = released_lm_layout(spec) if layout_kind == "released" else native_lm_layout(spec)
    layout = [(name, dtype, shape) for name, shape in sorted(shapes.items())]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        total = sum(torch.Size(s).numel() for _, _, s in layout) * torch.empty((), dtype=dtype).element_size()
        bar = tqdm(total=total, unit="B", unit_scale=True, desc=path.name)
    try:
        return write_streaming(path, layout, lambda n, d, s: random_tensor(n, d, s, seed),
                               metadata={"format": "pt"}, on_tensor=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()


def write_mimi(path: Path, seed: int = 0, layout_kind: Layout = "released") -> int:
    """The released Mimi's 318 tensors (float32), random values; "released" names its attention
    projections `in_proj_weight` / `out_proj.weight` (one step each), as the LM file does."""
    table = json.loads(MIMI_LAYOUT.read_text())["tensors"]
    if layout_kind == "released":
        table = {name.replace("self_attn.in_projs.0.weight", "self_attn.in_proj_weight")
                 .replace("self_attn.out_projs.0.weight", "self_attn.out_proj.weight"): shape for name, shape in table.items()}
    layout = [(name, torch.float32, tuple(shape)) for name, shape in sorted(table.items())]
    return write_streaming(path, layout, lambda n, d, s: random_tensor(n, d, s, seed + 1))


# English words the toolkit feeds as text (PersonaPlex's default role, the ZBB cue words), so that prompts
# tokenize into real pieces rather than <unk>.
SEED_TEXT = ("you are a wise and friendly teacher answer questions or provide advice in a clear and engaging way "
             "system yes no right not true false excuse me um")


def write_tokenizer(path: Path, size: int = 32000, seed: int = 0) -> None:
    """A SentencePiece BPE model with `size` pieces, subword pieces among them as in Moshi's; ids 0-3 are
    <unk>, <s>, </s>, <pad> (Moshi's EPAD, BOS, EOS, PAD)."""
    import random

    import sentencepiece as spm

    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words: set[str] = set()
    while len(words) < size + size // 4:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    vocab = sorted(words)
    lines = [" ".join(rng.choice(vocab) for _ in range(12)) for _ in range(2 * size)] + [SEED_TEXT] * 200
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, vocab_size=size, model_type="bpe",
                                   unk_id=0, bos_id=1, eos_id=2, pad_id=3, num_threads=1, minloglevel=2)
    path.write_bytes(buf.getvalue())


def write_voices(path: Path, spec: ModelSpec, frames: int, seed: int = 0) -> None:
    """voices.tgz as PersonaPlex ships it: voices/<NAME>.pt = torch.save({"embeddings", "cache"})."""
    with tarfile.open(path, "w:gz") as tar:
        for i, name in enumerate(PERSONAPLEX_VOICES):
            gen = torch.Generator().manual_seed(seed + 100 + i)
            embeddings = (torch.randn(frames, 1, 1, spec.dim, generator=gen) * 0.02).to(torch.bfloat16)
            cache = torch.randint(0, spec.card, (1, spec.n_q + 1, spec.max_delay + 3), generator=gen)
            buf = io.BytesIO()
            torch.save({"embeddings": embeddings, "cache": cache}, buf)
            info = tarfile.TarInfo(f"voices/{name}.pt")
            info.size = buf.tell()
            buf.seek(0)
            tar.addfile(info, buf)


def write_replica(out: str | Path, kind: Kind = "moshi", size: Size = "small", seed: int = 0,
                  progress: bool = False, layout: Layout = "released") -> Path:
    """Write a replica folder (see the module docstring) and return its path.

    layout "released" fuses each layer's attention projections as the released files do; "split" writes
    them per step as the reference (moshi 0.2.13) names them in memory (the tiny fixtures' layout)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = replica_spec(kind, size)
    write_lm(out / NATIVE_LM, spec, seed=seed, progress=progress, layout_kind=layout)
    write_mimi(out / NATIVE_MIMI, seed=seed, layout_kind=layout)
    write_tokenizer(out / NATIVE_TOKENIZER, spec.text_card, seed=seed)
    if kind == "personaplex":
        write_voices(out / "voices.tgz", spec, frames=100 if size == "full" else 20, seed=seed)
    if size == "small":  # the widths cannot be read from the weights: a config, as a real small checkpoint has
        (out / "config.json").write_text(json.dumps(spec.to_kyutai(), indent=1))
    elif kind == "personaplex":
        (out / "config.json").write_text("{}")  # PersonaPlex's repository has an empty one
    (out / TOOLKIT_META).write_text(json.dumps({"is_random": True, "checkpoint_id": f"replica:{kind}:{size}:seed{seed}"}))
    (out / "README.md").write_text(
        f"# Random-weight replica of the {kind} repository ({size})\n\nWritten by duplex_steer.engine.replica "
        f"(seed {seed}): the real file names, tensor names, shapes and dtypes, random values. "
        "It proves the loading path and the pipeline only; its outputs mean nothing.\n")
    return out
