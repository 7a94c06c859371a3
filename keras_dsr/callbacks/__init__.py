"""Keras callbacks of keras_dsr: GTF alpha schedules, attractor measures, checkpoint selection."""

from keras_dsr.callbacks.gtf import (
    AdaptiveGTF,
    AlphaSchedule,
    ConstantAlpha,
    ExponentialAlpha,
    LinearAlpha,
    get_alpha,
    install_schedule,
    set_alpha,
)
from keras_dsr.callbacks.guard import NonFiniteGuard
from keras_dsr.callbacks.measures import DSRMeasures
from keras_dsr.callbacks.selection import BestCheckpoint

__all__ = [
    "AdaptiveGTF",
    "AlphaSchedule",
    "BestCheckpoint",
    "ConstantAlpha",
    "DSRMeasures",
    "ExponentialAlpha",
    "LinearAlpha",
    "NonFiniteGuard",
    "get_alpha",
    "install_schedule",
    "set_alpha",
]
