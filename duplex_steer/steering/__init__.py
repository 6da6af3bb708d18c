"""Steering: perception vectors, fitting, onset detectors, onset-triggered injection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_names

if TYPE_CHECKING:  # the names below, for type checkers; at run time they load on first use
    from .fit import ActivityLabeler, FitReport, fit_perception_vector
    from .onset import (
        ONLY_WHILE_MODEL_SPEAKS,
        EnergyOnset,
        FalseTriggers,
        OnsetDetector,
        OracleOnset,
        SileroVADOnset,
        make_detector,
    )
    from .snap import OnsetSnapWarning, SnappedOnset, SnapRule, snap_onset
    from .steer import (
        SCHEDULES,
        Steering,
        SteeringController,
        apply,
        attach,
        patch,
        row_controllers,
        steer_at_onsets,
    )
    from .vector import PerceptionVector, VectorError

# name -> submodule: importing the package imports nothing heavy (torch loads with the first name used),
# so commands such as `--help` start fast (issue 14, quick start)
_LAZY = {
    "ActivityLabeler": "fit", "FitReport": "fit", "fit_perception_vector": "fit",
    "ONLY_WHILE_MODEL_SPEAKS": "onset", "EnergyOnset": "onset", "FalseTriggers": "onset",
    "OnsetDetector": "onset", "OracleOnset": "onset", "SileroVADOnset": "onset", "make_detector": "onset",
    "OnsetSnapWarning": "snap", "SnappedOnset": "snap", "SnapRule": "snap", "snap_onset": "snap",
    "SCHEDULES": "steer", "Steering": "steer", "SteeringController": "steer", "apply": "steer",
    "attach": "steer", "patch": "steer", "row_controllers": "steer", "steer_at_onsets": "steer",
    "PerceptionVector": "vector", "VectorError": "vector",
}

__all__ = ["ONLY_WHILE_MODEL_SPEAKS", "SCHEDULES", "ActivityLabeler", "EnergyOnset", "FalseTriggers", "FitReport",
           "OnsetDetector", "OnsetSnapWarning", "OracleOnset", "PerceptionVector", "SileroVADOnset", "SnapRule",
           "SnappedOnset", "Steering", "SteeringController", "VectorError", "apply", "attach", "fit_perception_vector",
           "make_detector", "patch", "row_controllers", "snap_onset", "steer_at_onsets"]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())
