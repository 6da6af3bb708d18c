"""The wheel: it holds every file of the four packages (weights, ZBB audio and renderings, layouts, fixtures,
the demo), declares every package the code imports, and works installed, away from the checkout."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("duplex_steer", "zbb", "demos", "audio_fixtures")
# Files the rest of the code reads from the installed packages; the listing below would also catch them,
# these name what `load("organism")`, `zbb main` and `duplex-steer demo` need.
REQUIRED = (
    "duplex_steer/organism/weights/model.safetensors",
    "duplex_steer/organism/weights/codec.safetensors",
    "duplex_steer/organism/weights/config.json",
    "duplex_steer/organism/weights/pieces.json",
    "duplex_steer/engine/layouts/mimi_native.json",
    "zbb/items.jsonl",
    "zbb/prompts/judge.md",
    "zbb/audio/manifest.json",
    "zbb/audio/queries/penguins-false.ogg",
    "zbb/audio/buffered/penguins-false.ogg",
    "zbb/audio/contexts/tell-me-about-music.ogg",
    "zbb/renderings/festival-slt-hts/manifest.json",
    "zbb/renderings/flite-slt/queries/penguins-false.ogg",
    "zbb/renderings/espeak-ng-en-us/contexts/tell-me-about-music.ogg",
    "audio_fixtures/interruption_example.ogg",
    "audio_fixtures/organism_interruption.flac",
    "audio_fixtures/dialogues/manifest.json",
    "audio_fixtures/organism_dialogues/manifest.json",
    "demos/app.py",
)


def source_files() -> list[str]:
    """The repository's files that a build reads (committed or new, not ignored), relative to REPO."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout of the repository")
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--",
                              "pyproject.toml", "README.md", *PACKAGES],
                             cwd=REPO, capture_output=True, check=True).stdout.decode()
    return sorted(p for p in set(listing.split("\0")) if p and (REPO / p).is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[str]]:
    """The wheel built offline from a copy of the sources (no build/ or egg-info left in the checkout)."""
    files = source_files()
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for rel in files:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(src)], check=True, capture_output=True)
    (wheel,) = out.glob("duplex_steer-*.whl")
    return wheel, files


def test_wheel_holds_exactly_the_packages_files(built) -> None:
    wheel, files = built
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    shipped = sorted(n for n in names if ".dist-info/" not in n)
    expected = sorted(f for f in files if f.split("/")[0] in PACKAGES)
    assert shipped == expected
    assert all(name in shipped for name in REQUIRED)
    for folder in ("zbb/audio", *(f"zbb/renderings/{r}" for r in ("espeak-ng-en-us", "festival-slt-hts", "flite-slt"))):
        counts = {kind: sum(n.startswith(f"{folder}/{kind}/") and n.endswith(".ogg") for n in shipped)
                  for kind in ("queries", "buffered", "contexts")}
        assert counts == {"queries": 100, "buffered": 100, "contexts": 25}, folder


def test_wheel_metadata_has_an_spdx_license_and_both_commands(built) -> None:
    wheel, _ = built
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(info).decode()
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert not any(line.startswith("License:") for line in metadata.splitlines())
    assert "duplex-steer = duplex_steer.cli:main" in entry_points
    assert "zbb = zbb.cli:main" in entry_points


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    return {canonical(re.match(r"[A-Za-z0-9_.\-]+", r).group()) for r in requirements}


def imported_distributions(folders: list[Path]) -> dict[str, set[str]]:
    """{distribution: files importing it} for every third-party top-level import under `folders`."""
    ours = set(PACKAGES)
    by_module = packages_distributions()
    found: dict[str, set[str]] = {}
    for path in (p for folder in folders for p in folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for top in {m.split(".")[0] for m in modules} - ours - set(sys.stdlib_module_names):
                for dist in by_module.get(top, [f"<no distribution for {top}>"]):
                    found.setdefault(canonical(dist), set()).add(str(path.relative_to(REPO)))
    return found


def test_every_imported_package_is_declared() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = declared(project["dependencies"])
    extras = declared([r for reqs in project["optional-dependencies"].values() for r in reqs])
    undeclared = {dist: files for dist, files in imported_distributions([REPO / p for p in PACKAGES]).items()
                  if dist not in core}
    assert undeclared == {}
    # the examples may use optional features: their imports are declared as core or as an extra
    undeclared = {dist: files for dist, files in imported_distributions([REPO / "examples"]).items()
                  if dist not in core | extras}
    assert undeclared == {}


@pytest.mark.slow
def test_installed_wheel_finds_its_data_and_loads_the_organism_from_elsewhere(built, tmp_path) -> None:
    wheel, _ = built
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, capture_output=True)
    probe = ("import duplex_steer, demos.app, zbb\n"
             "from duplex_steer.demo import app_module\n"
             "from duplex_steer.organism.fixtures import ORGANISM_EXAMPLE\n"
             "from duplex_steer.resources import fixtures_dir\n"
             "from duplex_steer.speech.dialogues import load_dialogues\n"
             "from zbb.build import ZBB_DIR\n"
             "model = duplex_steer.load('organism', device='cpu')\n"
             "for path in (duplex_steer.__file__, app_module().__file__, fixtures_dir(), ZBB_DIR, ORGANISM_EXAMPLE):\n"
             "    print(path)\n"
             "print(len(load_dialogues()), model.label)\n")
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    *paths, last = out.stdout.strip().splitlines()[-6:]
    assert all(Path(p).is_relative_to(site) for p in paths), paths  # the installed copy, not the checkout
    assert Path(paths[-1]).is_file()
    assert last.startswith("25 ")
