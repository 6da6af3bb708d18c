"""The duplex engine: load Moshi-family checkpoints and run them full duplex, frame by frame."""

from .loading import LoadError, load_engine_model
from .model import PIPELINE_CHECK_NOTE, DuplexModel, FrameKVCache
from .session import DuplexSession, Frame, SamplingConfig
from .spec import PRESETS, ModelSpec

__all__ = ["PIPELINE_CHECK_NOTE", "PRESETS", "DuplexModel", "DuplexSession", "Frame", "FrameKVCache",
           "LoadError", "ModelSpec", "SamplingConfig", "load_engine_model"]
