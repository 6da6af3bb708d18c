"""Packages whose public names load on first use, so that importing a package imports nothing heavy
(`--help` and file-only commands start without torch; issue 14's quick start).

Heavy first imports (torch; transformers, for Mimi and HuggingFace-format folders) run under `gc_paused`: they create a few hundred
thousand long-lived objects, and the cyclic collector's full passes over that growing heap, which find
nothing to free, cost about a fifth of the import time.
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a block (a heavy one-time import), then restore its
    previous state (left disabled if the caller had disabled it). Reference counting still frees
    everything it can; only cycles wait for the next collection after the block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def lazy_names(package: str, names: Mapping[str, str], namespace: dict[str, Any]
               ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A package's (`__getattr__`, `__dir__`): `names` maps each name to the module defining it, relative to
    `package` ("loading") or absolute ("duplex_steer.models"); a name is cached in `namespace` once loaded."""

    def get(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = names[name]
        with gc_paused():  # the first public name imports torch (and more) for the whole process
            value = getattr(importlib.import_module(target if "." in target else f"{package}.{target}"), name)
        namespace[name] = value
        return value

    def listing() -> list[str]:
        return sorted({*namespace, *names})

    return get, listing


__all__ = ["gc_paused", "lazy_names"]
