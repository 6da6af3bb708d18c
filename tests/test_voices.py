"""PersonaPlex voices: safe unpacking of voices.tgz, voice .pt files in the real format, lookup by name."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch

from duplex_steer.engine.voices import (
    VoiceError,
    find_voices_dir,
    read_voice_file,
    unpack_voices,
    voice_file,
)


def real_format_voice(dim: int, frames: int = 5, rows: int = 17, ring: int = 4, seed: int = 0) -> dict:
    """What PersonaPlex's LMGen saves: embeddings [F - 1, 1, 1, dim] (bf16), cache [1, rows, max_delay + 3]."""
    g = torch.Generator().manual_seed(seed)
    cache = torch.randint(0, 60, (1, rows, ring), generator=g)
    cache[0, 0] = 3  # text PAD
    return {"embeddings": torch.randn(frames - 1, 1, 1, dim, generator=g).to(torch.bfloat16), "cache": cache}


def write_archive(path: Path, files: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def voice_bytes(dim: int = 64, **kw) -> bytes:
    buf = io.BytesIO()
    torch.save(real_format_voice(dim, **kw), buf)
    return buf.getvalue()


def test_voices_tgz_unpacks_once_and_voices_are_found_by_name(tmp_path):
    write_archive(tmp_path / "voices.tgz", {"voices/NATF0.pt": voice_bytes(), "voices/VARM4.pt": voice_bytes(seed=1)})
    voices = find_voices_dir(tmp_path)
    assert voices == tmp_path / "voices" and sorted(p.name for p in voices.iterdir()) == ["NATF0.pt", "VARM4.pt"]
    (voices / "NATF0.pt").write_bytes(voice_bytes(seed=2))  # a second lookup does not unpack again
    assert find_voices_dir(tmp_path) == voices and (voices / "NATF0.pt").read_bytes() == voice_bytes(seed=2)
    assert voice_file("NATF0", voices) == voices / "NATF0.pt" == voice_file("NATF0.pt", voices)
    with pytest.raises(VoiceError, match="known: NATF0, VARM4"):
        voice_file("NATM9", voices)
    with pytest.raises(VoiceError, match="voices.tgz"):
        voice_file("NATF0", None)
    assert find_voices_dir(tmp_path / "elsewhere") is None


@pytest.mark.parametrize("bad", ["../evil.pt", "/tmp/evil.pt", "voices/../../evil.pt"])
def test_unpack_refuses_paths_outside_the_destination(tmp_path, bad):
    archive = write_archive(tmp_path / "voices.tgz", {"voices/NATF0.pt": voice_bytes(), bad: b"x"})
    dest = tmp_path / "model"
    with pytest.raises(VoiceError, match="outside the destination"):
        unpack_voices(archive, dest)
    assert not (dest / "voices").exists() and not (tmp_path / "evil.pt").exists()


def test_unpack_refuses_links(tmp_path):
    archive = write_archive(tmp_path / "voices.tgz", {"voices/NATF0.pt": voice_bytes()},
                            links={"voices/NATM0.pt": "/etc/passwd"})
    with pytest.raises(VoiceError, match="link or special file"):
        unpack_voices(archive, tmp_path / "model")
    assert not (tmp_path / "model" / "voices").exists()


def test_an_archive_without_a_voices_folder_is_an_error(tmp_path):
    archive = write_archive(tmp_path / "voices.tgz", {"other/NATF0.pt": voice_bytes()})
    with pytest.raises(VoiceError, match="no 'voices/' folder"):
        unpack_voices(archive, tmp_path / "model")


def test_voice_file_in_the_real_format_is_read_and_checked(tmp_path, tiny_personaplex):
    path = tmp_path / "NATF0.pt"
    path.write_bytes(voice_bytes(frames=5))
    voice = read_voice_file(path)
    assert voice.embeddings.shape == (4, 64) and voice.embeddings.dtype == torch.float32
    assert voice.frames == 5 and voice.ring.shape == (1, 17, 4) and voice.name == "NATF0" and len(voice.sha256) == 64
    voice.check(tiny_personaplex.spec)
    path.write_bytes(voice_bytes(dim=32))
    with pytest.raises(VoiceError, match="width 32 but the model's is 64"):
        read_voice_file(path).check(tiny_personaplex.spec)
    path.write_bytes(voice_bytes(rows=9))
    with pytest.raises(VoiceError, match="9 streams"):
        read_voice_file(path).check(tiny_personaplex.spec)


@pytest.mark.parametrize("state, message", [
    ({"embeddings": torch.zeros(3, 1, 1, 64)}, "'embeddings' and 'cache'"),
    ({"embeddings": torch.zeros(3, 2, 1, 64), "cache": torch.zeros(1, 17, 4, dtype=torch.long)}, "one conversation"),
    ({"embeddings": torch.zeros(3, 1, 1, 64), "cache": torch.zeros(1, 17, 4)}, "'cache' must be a long tensor"),
    ({"embeddings": torch.zeros(3, 64, dtype=torch.long), "cache": torch.zeros(1, 17, 4, dtype=torch.long)},
     "float tensor"),
])
def test_malformed_voice_files_are_clear_errors(tmp_path, state, message):
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(VoiceError, match=message):
        read_voice_file(path)


class _Payload:
    pass


def test_voice_files_never_run_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"embeddings": _Payload(), "cache": torch.zeros(1)}, path)
    with pytest.raises(VoiceError, match="not a readable voice file"):
        read_voice_file(path)
