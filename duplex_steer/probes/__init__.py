"""Probes: lenses that read hidden states as next-token distributions, generation / perception
affinities computed online during a conversation, ground-truth activity, state inertia, learned
linear probes, figures, and the `duplex-steer analyze` command. See docs/probes.md."""

from .activity import Activity, detect_onsets, energy_activity, text_activity, turns_activity
from .affinity import AffinityError, AffinityResult, OnlineAffinity, compute_affinities, default_band
from .inertia import (
    InertiaReport,
    OnsetInertia,
    Scenario,
    build_pair,
    dialogue_pairs,
    measure_inertia,
    run_scenarios,
    summarize,
    takeover_frame,
    zbb_pairs,
)
from .lenses import (
    DepformerLens,
    EmbeddingLens,
    Lens,
    LensError,
    StepTokens,
    TextLens,
    default_lenses,
    get_lens,
)
from .linear import LinearProbe, ProbeError, ProbeLens, collect_probe_data, train_probe, train_probes

__all__ = [
    "Activity", "AffinityError", "AffinityResult", "DepformerLens", "EmbeddingLens", "InertiaReport", "Lens",
    "LensError", "LinearProbe", "OnlineAffinity", "OnsetInertia", "ProbeError", "ProbeLens", "Scenario",
    "StepTokens", "TextLens", "build_pair", "collect_probe_data", "compute_affinities", "default_band",
    "default_lenses", "detect_onsets", "dialogue_pairs", "energy_activity", "get_lens", "measure_inertia",
    "run_scenarios", "summarize", "takeover_frame", "text_activity", "train_probe", "train_probes",
    "turns_activity", "zbb_pairs",
]
