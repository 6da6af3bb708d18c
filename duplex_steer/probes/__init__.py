"""Probes: lenses that read hidden states as next-token distributions, generation / perception
affinities computed online during a conversation, ground-truth activity, state inertia, learned
linear probes and figures (the `duplex-steer analyze` command: `duplex_steer.analyze_command`). See
docs/probes.md."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load on first use
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
    from .inertia_pairs import PairedInertia, paired_lags, run_pairs
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

# name -> submodule: importing the package imports nothing heavy (torch loads with the first name used),
# so commands such as `--help` start fast (issue 14, quick start)
_LAZY = {
    "Activity": "activity", "detect_onsets": "activity", "energy_activity": "activity",
    "text_activity": "activity", "turns_activity": "activity",
    "AffinityError": "affinity", "AffinityResult": "affinity", "OnlineAffinity": "affinity",
    "compute_affinities": "affinity", "default_band": "affinity",
    "InertiaReport": "inertia", "OnsetInertia": "inertia", "Scenario": "inertia", "build_pair": "inertia",
    "dialogue_pairs": "inertia", "measure_inertia": "inertia", "run_scenarios": "inertia",
    "summarize": "inertia", "takeover_frame": "inertia", "zbb_pairs": "inertia",
    "PairedInertia": "inertia_pairs", "paired_lags": "inertia_pairs", "run_pairs": "inertia_pairs",
    "DepformerLens": "lenses", "EmbeddingLens": "lenses", "Lens": "lenses", "LensError": "lenses",
    "StepTokens": "lenses", "TextLens": "lenses", "default_lenses": "lenses", "get_lens": "lenses",
    "LinearProbe": "linear", "ProbeError": "linear", "ProbeLens": "linear", "collect_probe_data": "linear",
    "train_probe": "linear", "train_probes": "linear",
}

__all__ = [
    "Activity", "AffinityError", "AffinityResult", "DepformerLens", "EmbeddingLens", "InertiaReport", "Lens",
    "LensError", "LinearProbe", "OnlineAffinity", "OnsetInertia", "PairedInertia", "ProbeError", "ProbeLens", "Scenario",
    "StepTokens", "TextLens", "build_pair", "collect_probe_data", "compute_affinities", "default_band",
    "default_lenses", "detect_onsets", "dialogue_pairs", "energy_activity", "get_lens", "measure_inertia",
    "paired_lags", "run_pairs", "run_scenarios", "summarize", "takeover_frame", "text_activity", "train_probe", "train_probes",
    "turns_activity", "zbb_pairs",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
