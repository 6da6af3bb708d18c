"""duplex_steer.resources: the data packages are found through the import system, wherever installed."""

from __future__ import annotations

import pytest

import zbb
from duplex_steer.demo import DemoUnavailable, app_module
from duplex_steer.resources import ResourceMissing, fixtures_dir, package_dir, zbb_items_path


def test_fixtures_dir_holds_the_committed_recordings() -> None:
    root = fixtures_dir()
    assert root.name == "audio_fixtures"
    for name in ("interruption_example.ogg", "organism_interruption.flac", "dialogues/manifest.json",
                 "organism_dialogues/manifest.json"):
        assert (root / name).is_file(), name


def test_zbb_items_path_is_the_item_bank_of_the_zbb_package() -> None:
    assert zbb_items_path() == zbb.ITEMS_PATH.resolve()


def test_a_missing_package_is_one_clear_error() -> None:
    with pytest.raises(ResourceMissing, match="'no_such_duplex_package' of duplex-steer is not installed"):
        package_dir("no_such_duplex_package")


def test_the_demo_is_the_demos_package(monkeypatch) -> None:
    assert hasattr(app_module(), "build_app")
    monkeypatch.setattr("duplex_steer.demo.DEMOS_PACKAGE", "no_such_demos_package")
    with pytest.raises(DemoUnavailable, match="'no_such_demos_package' is not installed"):
        app_module()
