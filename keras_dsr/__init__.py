"""keras_dsr: dynamical-systems reconstruction with parallel-in-time training.

Importing keras_dsr selects the JAX backend for Keras when no backend was chosen
(neither ``KERAS_BACKEND``, nor ``~/.keras/keras.json``, nor an earlier
``import keras``); see :mod:`keras_dsr._backend`. It also registers every
serialisable class, so ``keras.saving.load_model`` finds them after
``import keras_dsr``.
"""

from keras_dsr._backend import ensure_default_backend as _ensure_default_backend

_ensure_default_backend()

from keras_dsr import ops  # noqa: E402
from keras_dsr import cells, layers, losses, metrics, models, regularizers  # noqa: E402
from keras_dsr import callbacks, measures, systems  # noqa: E402
from keras_dsr.callbacks import AdaptiveGTF, ConstantAlpha, DSRMeasures  # noqa: E402
from keras_dsr.layers import GTFDEERLayer, ParallelScanRNN  # noqa: E402
from keras_dsr.models import DSRModel, SSMModel  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AdaptiveGTF",
    "ConstantAlpha",
    "DSRMeasures",
    "DSRModel",
    "GTFDEERLayer",
    "ParallelScanRNN",
    "SSMModel",
    "callbacks",
    "cells",
    "layers",
    "losses",
    "measures",
    "metrics",
    "models",
    "ops",
    "regularizers",
    "systems",
    "__version__",
]
