"""Keras callbacks of keras_dsr: GTF alpha schedules, attractor measures, NaN guard."""

from keras_dsr.callbacks.gtf import (
    AdaptiveGTF,
    AlphaSchedule,
    ConstantAlpha,
    ExponentialAlpha,
    LinearAlpha,
    get_alpha,
    set_alpha,
)
from keras_dsr.callbacks.guard import NonFiniteGuard
from keras_dsr.callbacks.measures import DSRMeasures

__all__ = [
    "AdaptiveGTF",
    "AlphaSchedule",
    "ConstantAlpha",
    "DSRMeasures",
    "ExponentialAlpha",
    "LinearAlpha",
    "NonFiniteGuard",
    "get_alpha",
    "set_alpha",
]
