"""Where the committed data lives, found the same way in a source checkout and in an installed wheel.

The repository keeps `audio_fixtures/` and `demos/` at its top level; both are (data) packages that the
wheel installs beside `duplex_steer` and `zbb`. Code finds them, and the ZBB item bank, through the
import system (`importlib.util.find_spec`, which does not import the package), never by a path relative
to the repository root, so `pip install .` works from any directory. Files inside `duplex_steer` itself
(organism weights, engine layouts) are found relative to their module and ship as package data.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from .errors import DuplexSteerError

FIXTURES_PACKAGE = "audio_fixtures"  # committed recordings: fitting dialogues, interruption examples
DEMOS_PACKAGE = "demos"  # the Gradio demo (`duplex-steer demo`)
ZBB_PACKAGE = "zbb"  # the benchmark; its item bank also defines the organism's world


class ResourceMissing(DuplexSteerError):
    """A data package of duplex-steer is not importable (a broken or partial installation)."""


def package_dir(package: str) -> Path:
    """The folder of the top-level package `package`, located without importing it."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ResourceMissing(f"the package {package!r} of duplex-steer is not installed; "
                              "reinstall duplex-steer (pip install . in a checkout of the repository)")
    return Path(next(iter(spec.submodule_search_locations)))


def fixtures_dir() -> Path:
    """The committed audio fixtures (`audio_fixtures/` of the repository)."""
    return package_dir(FIXTURES_PACKAGE)


def zbb_items_path() -> Path:
    """The ZBB item bank (`zbb/items.jsonl`), read without importing `zbb`."""
    return package_dir(ZBB_PACKAGE) / "items.jsonl"
