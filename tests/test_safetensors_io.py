"""Streaming safetensors reads and writes agree with the safetensors library, byte for byte in values."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from duplex_steer.engine.safetensors_io import SafetensorsError, TensorReader, read_header, write_streaming


def _tensors():
    g = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(3, 5, generator=g).to(torch.bfloat16), "b": torch.arange(7, dtype=torch.int64),
            "c.alpha": torch.randn(1, 1, 4, generator=g), "empty": torch.zeros(0, 3)}


def test_reader_reads_what_the_library_wrote(tmp_path):
    save_file(_tensors(), tmp_path / "x.safetensors")
    with TensorReader(tmp_path / "x.safetensors") as reader:
        assert sorted(reader.keys()) == sorted(_tensors())
        for name, value in _tensors().items():
            got = reader.get(name)
            assert got.dtype == value.dtype and torch.equal(got, value), name


def test_library_reads_what_the_writer_wrote(tmp_path):
    src = _tensors()
    size = write_streaming(tmp_path / "y.safetensors", [(k, v.dtype, tuple(v.shape)) for k, v in src.items()],
                           lambda n, d, s: src[n], metadata={"format": "pt"})
    assert size == (tmp_path / "y.safetensors").stat().st_size
    back = load_file(tmp_path / "y.safetensors")
    assert all(torch.equal(back[k], v) for k, v in src.items())


def test_writer_rejects_a_tensor_of_the_wrong_shape(tmp_path):
    with pytest.raises(SafetensorsError, match="expected torch.float32 \\(2,\\)"):
        write_streaming(tmp_path / "z.safetensors", [("x", torch.float32, (2,))], lambda n, d, s: torch.zeros(3))


@pytest.mark.parametrize("blob", [b"", b"\x01\x00", b"\xff" * 8 + b"{}", b"\x04\x00\x00\x00\x00\x00\x00\x00{bad"])
def test_malformed_files_are_clear_errors(tmp_path, blob):
    (tmp_path / "bad").write_bytes(blob)
    with pytest.raises(SafetensorsError):
        read_header(tmp_path / "bad")
