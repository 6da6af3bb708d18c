"""Shared fixtures: offline, seeded, tiny models built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.manual_seed(0)
# The test models are tiny: one thread is faster than two, and much faster on a busy machine.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FIXTURES = SHARED / "fixtures"


@pytest.fixture(scope="session")
def tiny():
    from duplex_steer import load

    return load("tiny", device="cpu")


@pytest.fixture(scope="session")
def tiny_personaplex():
    from duplex_steer import load

    return load("tiny-personaplex", device="cpu")


def fixture_dir(name: str) -> Path:
    path = FIXTURES / name
    if not path.is_dir():
        pytest.fail(f"shared fixture {path} is missing: CI must run with ../shared beside the repo")
    return path


def load_file_module(path: Path, name: str):
    """A script or example that is not a package module, imported from its file (its source stays readable)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
