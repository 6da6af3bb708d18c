"""duplex-steer: run, probe and steer full-duplex spoken language models (Moshi, PersonaPlex)."""

__version__ = "0.1.0"
