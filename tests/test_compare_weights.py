"""scripts/compare_weights.py: two checkpoint folders compared tensor by tensor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import load_file_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_weights.py"


@pytest.fixture(scope="module")
def compare():
    return load_file_module(SCRIPT, "compare_weights")


def _folder(path: Path, **files: dict[str, torch.Tensor]) -> Path:
    path.mkdir()
    for name, tensors in files.items():
        save_file(tensors, str(path / f"{name}.safetensors"))
    return path


def test_identical_folders_are_said_identical(compare, tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    tensors = {"w": torch.randn(4, 3, generator=g), "b": torch.zeros(3)}
    a = _folder(tmp_path / "a", model=tensors, codec={"c": torch.arange(5.0)})
    b = _folder(tmp_path / "b", model={k: v.clone() for k, v in tensors.items()}, codec={"c": torch.arange(5.0)})
    assert compare.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "| codec.safetensors | 1 | 0 | 0 | 0 | identical |" in out
    assert "| model.safetensors | 2 | 0 | 0 | 0 | identical |" in out


def test_differences_are_measured_and_named(compare, tmp_path):
    w = torch.tensor([[1.0, -4.0], [2.0, 0.5]])
    moved = w.clone()
    moved[0, 1] = -3.5  # 0.5 off, against a largest magnitude of 4
    a = _folder(tmp_path / "a", model={"w": w, "b": torch.ones(2), "only_a": torch.ones(1)})
    b = _folder(tmp_path / "b", model={"w": moved, "b": torch.ones(2, dtype=torch.float64), "only_b": torch.ones(1)},
                extra={"x": torch.ones(1)})
    rows = {row["file"]: row for row in compare.compare_folders(a, b)}
    model = rows["model.safetensors"]
    assert model["tensors"] == 2 and model["differing"] == 2 and not model["identical"]
    assert model["max_abs"] == pytest.approx(0.5) and model["max_rel"] == pytest.approx(0.5 / 4.0)
    assert "only in the first: only_a" in model["notes"] and "only in the second: only_b" in model["notes"]
    assert any(note.startswith("b: (2,) torch.float32 against (2,) torch.float64") for note in model["notes"])
    assert rows["extra.safetensors"]["notes"] == [f"missing in {a}"] and not rows["extra.safetensors"]["identical"]
    assert compare.main([str(a), str(b)]) == 1


def test_a_folder_that_is_not_there_is_one_clear_error(compare, tmp_path):
    a = _folder(tmp_path / "a", model={"w": torch.ones(1)})
    with pytest.raises(SystemExit, match="not a folder"):
        compare.main([str(a), str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="no .safetensors file"):
        compare.main([str(_folder(tmp_path / "c")), str(_folder(tmp_path / "d"))])
