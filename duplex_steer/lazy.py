"""Packages whose public names load on first use, so that importing a package imports nothing heavy
(`--help` and file-only commands start without torch; issue 14's quick start)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, names: Mapping[str, str], namespace: dict[str, Any]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's (`__getattr__`, `__dir__`): `names` maps each name to the module defining it, relative to
    `package` ("loading") or absolute ("duplex_steer.models"); a name is cached in `namespace` once loaded."""

    def get(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = names[name]
        value = getattr(importlib.import_module(target if "." in target else f"{package}.{target}"), name)
        namespace[name] = value
        return value

    def listing() -> list[str]:
        return sorted({*namespace, *names})

    return get, listing


__all__ = ["lazy_names"]
