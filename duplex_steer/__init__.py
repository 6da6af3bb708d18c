"""duplex-steer: run, probe and steer full-duplex spoken language models (Moshi, PersonaPlex).

    import duplex_steer as ds
    model = ds.load("organism")                # the CPU organism; or "tiny", a kyutai-native / HF folder or repo id
    result = ds.converse(model, "user.wav")    # full duplex, frame by frame

The names below are imported on first use, so `import duplex_steer.errors` (and commands that only
read files, such as `zbb items`) does not pay for importing torch and transformers.
"""

from __future__ import annotations

from .lazy import lazy_names

__version__ = "0.1.0"

_LAZY = {
    "load": "duplex_steer.models",
    "LoadError": "duplex_steer.engine.loading",
    "DuplexModel": "duplex_steer.engine.model",
    "PIPELINE_CHECK_NOTE": "duplex_steer.engine.model",
    "DuplexSession": "duplex_steer.engine.session",
    "ConversationPrompt": "duplex_steer.engine.conversation",
    "converse": "duplex_steer.engine.conversation",
    "DuplexSteerError": "duplex_steer.errors",
    "ORGANISM_NOTE": "duplex_steer.organism",
}

__all__ = [*sorted(_LAZY), "__version__"]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
