"""Steering: perception vectors, fitting, onset detectors, onset-triggered injection."""

from .fit import ActivityLabeler, FitReport, fit_perception_vector
from .onset import EnergyOnset, FalseTriggers, OnsetDetector, OracleOnset, SileroVADOnset, make_detector
from .steer import SCHEDULES, Steering, SteeringController, apply, patch
from .vector import PerceptionVector, VectorError

__all__ = ["SCHEDULES", "ActivityLabeler", "EnergyOnset", "FalseTriggers", "FitReport", "OnsetDetector",
           "OracleOnset", "PerceptionVector", "SileroVADOnset", "Steering", "SteeringController", "VectorError",
           "apply", "fit_perception_vector", "make_detector", "patch"]
