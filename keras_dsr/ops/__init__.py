"""Backend-agnostic numerics: scans, linear recurrences, the DEER Newton solver."""

from keras_dsr.ops.scan import associative_scan
from keras_dsr.ops.linear import linear_recurrence

__all__ = ["associative_scan", "linear_recurrence"]
