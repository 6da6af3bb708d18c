"""The duplex engine: load Moshi-family checkpoints and run them full duplex, frame by frame."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load on first use
    from .kv_cache import FrameKVCache
    from .loading import LoadError, load_engine_model
    from .model import PIPELINE_CHECK_NOTE, DuplexModel
    from .session import DuplexSession, Frame, SamplingConfig
    from .spec import PRESETS, ModelSpec

# name -> submodule: importing the package imports nothing heavy (torch loads with the first name used),
# so commands such as `--help` start fast (issue 14, quick start)
_LAZY = {
    "LoadError": "loading", "load_engine_model": "loading",
    "PIPELINE_CHECK_NOTE": "model", "DuplexModel": "model", "FrameKVCache": "kv_cache",
    "DuplexSession": "session", "Frame": "session", "SamplingConfig": "session",
    "PRESETS": "spec", "ModelSpec": "spec",
}

__all__ = ["PIPELINE_CHECK_NOTE", "PRESETS", "DuplexModel", "DuplexSession", "Frame", "FrameKVCache",
           "LoadError", "ModelSpec", "SamplingConfig", "load_engine_model"]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
