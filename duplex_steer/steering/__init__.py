"""Steering: perception vectors, fitting, onset detectors, onset-triggered injection."""

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
from .steer import SCHEDULES, Steering, SteeringController, apply, patch
from .vector import PerceptionVector, VectorError

__all__ = ["ONLY_WHILE_MODEL_SPEAKS", "SCHEDULES", "ActivityLabeler", "EnergyOnset", "FalseTriggers", "FitReport",
           "OnsetDetector", "OnsetSnapWarning", "OracleOnset", "PerceptionVector", "SileroVADOnset", "SnapRule",
           "SnappedOnset", "Steering", "SteeringController", "VectorError", "apply", "fit_perception_vector",
           "make_detector", "patch", "snap_onset"]
