"""PersonaPlex voices: the `voices.tgz` archive, voice `.pt` files, and finding a voice by name.

Facts from NVIDIA/personaplex (`moshi/models/lm.py`, `offline.py`, `server.py`, the web client):
- `voices.tgz` unpacks to `voices/NATF0-3.pt, NATM0-3.pt, VARF0-4.pt, VARM0-4.pt`; the web client's
  default voice is NATF0.
- A voice `.pt` is what its `LMGen` saved after stepping a voice recording (text forced to PAD,
  the recording on the model's audio channel, the user channel fed a 440 Hz sine):
  `{"embeddings": [F - 1, 1, 1, dim], "cache": [1, 1 + n_q, max_delay + 3]}`.
  `embeddings[i]` is the summed input embedding (text + 16 audio embeddings) the temporal
  transformer received at absolute frame i (frame 0 holds the initial tokens); `cache` is its token
  ring after the F voice frames (long ids; frame p at ring slot p mod the ring's size). Replaying
  a voice feeds `embeddings[i]` as the transformer's input at frames 0 .. F - 2 instead of embedding
  tokens, then restores the ring, so that frame F - 1 (the voice's last tokens) and the delayed
  codebooks of that frame are read from it. The model's outputs during the voice are discarded.
- A WAV voice is loaded at 24 kHz, normalised to -24 LUFS, encoded and forced frame by frame.

Voice files are read with `torch.load(weights_only=True)` (tensors only, no code execution).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from torch import Tensor

from ..errors import DuplexSteerError
from .spec import ModelSpec

VOICE_ARCHIVE = "voices.tgz"
VOICES_DIR = "voices"
VOICE_NAMES = tuple([f"NATF{i}" for i in range(4)] + [f"NATM{i}" for i in range(4)]
                    + [f"VARF{i}" for i in range(5)] + [f"VARM{i}" for i in range(5)])
DEFAULT_VOICE = "NATF0"  # the PersonaPlex web client's default
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus")
CACHE_ROOT = Path(os.environ.get("DUPLEX_STEER_CACHE", Path.home() / ".cache" / "duplex-steer"))


class VoiceError(DuplexSteerError, ValueError):
    """A voice that cannot be used: not found, unsafe archive, or a file of the wrong shape."""


@dataclass
class VoiceEmbeddings:
    """A precomputed voice (PersonaPlex's `.pt` format), validated.

    embeddings: [E, dim] inputs of absolute frames 0 .. E - 1; ring: [1, 1 + n_q, size] token ids.
    The voice takes `frames` = E + 1 frames of the session.
    """

    embeddings: Tensor
    ring: Tensor
    name: str = "voice"
    sha256: str = ""

    @property
    def frames(self) -> int:
        return self.embeddings.shape[0] + 1

    def check(self, spec: ModelSpec) -> None:
        """Raise a VoiceError unless this voice fits a model of `spec`."""
        E, dim = self.embeddings.shape
        if dim != spec.dim:
            raise VoiceError(f"voice {self.name}: its embeddings have width {dim} but the model's is {spec.dim}; "
                             "it was made for another model")
        rows, size = self.ring.shape[1:]
        if rows != spec.n_q + 1:
            raise VoiceError(f"voice {self.name}: its token cache has {rows} streams but the model has "
                             f"{spec.n_q + 1} (text + {spec.n_q} audio); it was made for another model")
        if size < spec.max_delay + 2:
            raise VoiceError(f"voice {self.name}: its token cache holds {size} frames, fewer than the model's "
                             f"delays need ({spec.max_delay + 2})")
        top = torch.tensor([spec.text_card] + [spec.card] * spec.n_q)
        delayed = torch.tensor([d > 0 for d in spec.delays])
        used = torch.cat([self.ring_column(self.frames - 1), self.ring_column(self.frames)[delayed]])
        if ((used < 0) | (used > torch.cat([top, top[delayed]]))).any():
            raise VoiceError(f"voice {self.name}: its token cache holds ids outside the model's vocabularies "
                             f"(text {spec.text_card}, audio {spec.card}); it was made for another model")

    def ring_column(self, frame: int) -> Tensor:
        """The ring's tokens [1 + n_q] at absolute `frame`."""
        return self.ring[0, :, frame % self.ring.shape[2]]


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_voice_file(path: str | Path) -> VoiceEmbeddings:
    """Read and check the structure of a PersonaPlex voice `.pt` (no model needed; `check` fits it to one)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise VoiceError(f"{path} is not a readable voice file (torch.save of tensors): {exc}") from None
    if not isinstance(state, dict) or not {"embeddings", "cache"} <= set(state):
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise VoiceError(f"{path}: a voice file holds a dict with 'embeddings' and 'cache', got {keys}")
    emb, ring = state["embeddings"], state["cache"]
    if not isinstance(emb, Tensor) or not emb.is_floating_point() or emb.dim() < 2:
        raise VoiceError(f"{path}: 'embeddings' must be a float tensor [frames, 1, 1, dim], got "
                         f"{getattr(emb, 'shape', type(emb).__name__)}")
    if emb.dim() > 2 and any(s != 1 for s in emb.shape[1:-1]):
        raise VoiceError(f"{path}: 'embeddings' must be [frames, 1, 1, dim] (one conversation), got {list(emb.shape)}")
    if not isinstance(ring, Tensor) or ring.dtype != torch.long or ring.dim() != 3 or ring.shape[0] != 1:
        raise VoiceError(f"{path}: 'cache' must be a long tensor [1, streams, size], got "
                         f"{getattr(ring, 'dtype', None)} {list(getattr(ring, 'shape', []))}")
    emb = emb.reshape(emb.shape[0], emb.shape[-1]).float()
    if emb.shape[0] < 1 or not torch.isfinite(emb).all():
        raise VoiceError(f"{path}: 'embeddings' must hold at least one frame of finite values")
    return VoiceEmbeddings(emb, ring.clone(), name=path.stem, sha256=sha256_of(path))


# --- the archive -------------------------------------------------------------------------------------
def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        parts = PurePosixPath(m.name).parts
        if m.name.startswith(("/", "\\")) or PurePosixPath(m.name).is_absolute() or ".." in parts or ":" in m.name:
            raise VoiceError(f"{archive}: refusing to unpack {m.name!r} (a path outside the destination)")
        if not (m.isreg() or m.isdir()):
            raise VoiceError(f"{archive}: refusing to unpack {m.name!r} (a link or special file, not a regular file)")
    return members


def unpack_voices(archive: str | Path, dest: str | Path) -> Path:
    """Unpack `voices.tgz` into `dest` once, safely; return the `voices` folder.

    Refuses the whole archive if any member is absolute, climbs out with '..', or is not a regular
    file or folder (links, devices). Unpacks into a temporary folder first, so that an interrupted
    unpack never leaves a half-filled `voices` folder.
    """
    archive, dest = Path(archive), Path(dest)
    target = dest / VOICES_DIR
    if target.is_dir():
        return target
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = _safe_members(tar, archive)
            dest.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".voices-", dir=dest))
            try:
                tar.extractall(tmp, members=members, filter="data")
                if not (tmp / VOICES_DIR).is_dir():
                    raise VoiceError(f"{archive} holds no '{VOICES_DIR}/' folder")
                os.replace(tmp / VOICES_DIR, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError) as exc:
        raise VoiceError(f"{archive} is not a readable .tgz archive: {exc}") from None
    return target


def find_voices_dir(model_folder: str | Path | None) -> Path | None:
    """The unpacked voices of a checkpoint folder: `voices/`, else `voices.tgz` unpacked (once).

    Unpacks next to the archive when that folder is writable, else under the cache folder
    (DUPLEX_STEER_CACHE, default ~/.cache/duplex-steer). None when the folder has neither.
    """
    if model_folder is None:
        return None
    folder = Path(model_folder)
    if (folder / VOICES_DIR).is_dir():
        return folder / VOICES_DIR
    archive = folder / VOICE_ARCHIVE
    if not archive.is_file():
        return None
    try:
        return unpack_voices(archive, folder)
    except OSError:
        return unpack_voices(archive, CACHE_ROOT / "voices" / sha256_of(archive)[:16])


def model_folder(model) -> Path | None:
    """The checkpoint folder a loaded model came from (its `folder` if set, a local source, the hub cache)."""
    folder = getattr(model, "folder", None)
    if folder is not None:
        return Path(folder)
    source = Path(str(model.source)).expanduser()
    if source.is_dir():
        return source
    if str(model.source).count("/") == 1:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(str(model.source), VOICE_ARCHIVE)
        except Exception:  # an id the hub library rejects: no cached voices
            return None
        if isinstance(cached, str):
            return Path(cached).parent
    return None


def is_voice_name(spec: str) -> bool:
    """A bare name (NATF0, NATF0.pt) rather than a path."""
    return "/" not in spec and os.sep not in spec and Path(spec).suffix.lower() in ("", ".pt")


def voice_file(spec: str, voices_dir: Path | None) -> Path:
    """The file a voice spec names: an existing path, or a name in `voices_dir`."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    if is_voice_name(spec):
        name = spec if spec.endswith(".pt") else f"{spec}.pt"
        if voices_dir is None:
            raise VoiceError(f"voice {spec!r}: this model's folder has no {VOICE_ARCHIVE} or {VOICES_DIR}/ (it is "
                             "downloaded with nvidia/personaplex-7b-v1); give a voice .pt or a WAV file instead")
        if (voices_dir / name).is_file():
            return voices_dir / name
        known = sorted(p.stem for p in voices_dir.glob("*.pt"))
        raise VoiceError(f"no voice {spec!r} in {voices_dir}; known: {', '.join(known) or 'none'}")
    raise VoiceError(f"voice file {spec} does not exist")
