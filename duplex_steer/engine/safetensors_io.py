"""Safetensors files read and written one tensor at a time, never the whole file in memory.

Why not `safetensors.safe_open`: it memory-maps the file, and every page a read touches stays mapped
(and counted in the process's resident memory) until the handle closes, so reading a 15 GB checkpoint
through one handle costs 15 GB on top of the model being built. Here each tensor is read with plain
`readinto` into its own buffer: the page cache holds the file, the process holds only what it keeps.
The header (names, dtypes, shapes) is read alone, so a checkpoint is checked before anything is
allocated. The format: 8-byte little-endian header length, a JSON header, then the raw data.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import DuplexSteerError

DTYPES: dict[str, torch.dtype] = {
    "BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER_BYTES = 100 * 1024 * 1024


class SafetensorsError(DuplexSteerError, ValueError):
    """A file that is not a well-formed safetensors file."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lies in the file."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def read_header(path: str | Path) -> dict[str, TensorInfo]:
    """Names -> dtype, shape and byte range, from the header alone (reads a few kB)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise SafetensorsError(f"{path} is too short to be safetensors ({size} bytes); download it again")
        (n,) = struct.unpack("<Q", raw)
        if n > min(MAX_HEADER_BYTES, size - 8):
            raise SafetensorsError(f"{path} has a header length of {n} bytes: not a safetensors file, or truncated")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SafetensorsError(f"{path}: the safetensors header is not JSON ({exc})") from None
    base = 8 + n
    out: dict[str, TensorInfo] = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype = DTYPES[entry["dtype"]]
            start, end = (base + int(o) for o in entry["data_offsets"])
            shape = tuple(int(s) for s in entry["shape"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name!r} has a malformed header entry {entry!r}") from None
        expected = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        if end - start != expected or end > size:
            raise SafetensorsError(f"{path}: tensor {name!r} spans bytes {start}-{end} of {size} "
                                   f"(expected {expected} bytes): the file is truncated or corrupt; download it again")
        out[name] = TensorInfo(dtype, shape, start, end)
    return out


class TensorReader:
    """Reads single tensors of one file by name, each into a fresh CPU tensor (no memory map)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.infos = read_header(self.path)
        self._file = open(self.path, "rb")  # noqa: SIM115 - closed by close() / the context manager

    def __enter__(self) -> TensorReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def keys(self) -> list[str]:
        return list(self.infos)

    def __contains__(self, name: object) -> bool:
        return name in self.infos

    def get(self, name: str) -> torch.Tensor:
        info = self.infos[name]
        out = torch.empty(info.shape, dtype=info.dtype)
        if info.nbytes:
            view = memoryview(out.view(-1).view(torch.uint8).numpy())
            self._file.seek(info.start)
            if self._file.readinto(view) != info.nbytes:
                raise SafetensorsError(f"{self.path}: short read for {name!r}; the file is truncated")
        return out


TensorFill = Callable[[str, torch.dtype, tuple[int, ...]], torch.Tensor]


def write_streaming(path: str | Path, layout: Iterable[tuple[str, torch.dtype, tuple[int, ...]]],
                    fill: TensorFill, metadata: dict[str, str] | None = None,
                    on_tensor: Callable[[int], None] | None = None) -> int:
    """Write a safetensors file whose tensors `fill(name, dtype, shape)` makes one at a time.

    Only one tensor is in memory at once, so files larger than the machine's memory can be written.
    Returns the file's size in bytes. `on_tensor(nbytes)` is called after each tensor (progress).
    """
    entries = list(layout)
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, dtype, shape in entries:
        nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the reference writer aligns the data to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, dtype, shape in entries:
            tensor = fill(name, dtype, shape)
            if tensor.dtype != dtype or tuple(tensor.shape) != tuple(shape):
                raise SafetensorsError(f"fill gave {name} as {tensor.dtype} {tuple(tensor.shape)}, "
                                       f"expected {dtype} {tuple(shape)}")
            f.write(tensor.contiguous().view(-1).view(torch.uint8).numpy().data)
            if on_tensor is not None:
                on_tensor(tensor.numel() * tensor.element_size())
    return 8 + len(blob) + offset


def iter_tensors(path: str | Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a file, one at a time, in file order."""
    with TensorReader(path) as reader:
        for name in sorted(reader.infos, key=lambda k: reader.infos[k].start):
            yield name, reader.get(name)
