"""duplex-steer: run, probe and steer full-duplex spoken language models (Moshi, PersonaPlex).

    import duplex_steer as ds
    model = ds.load("tiny")                    # or a kyutai-native / HF folder or repo id
    result = ds.converse(model, "user.wav")    # full duplex, frame by frame
"""

__version__ = "0.1.0"

from .engine import PIPELINE_CHECK_NOTE, DuplexModel, DuplexSession, LoadError, load  # noqa: E402
from .engine.conversation import ConversationPrompt, converse  # noqa: E402
from .errors import DuplexSteerError  # noqa: E402

__all__ = ["PIPELINE_CHECK_NOTE", "ConversationPrompt", "DuplexModel", "DuplexSession", "DuplexSteerError",
           "LoadError", "__version__", "converse", "load"]
