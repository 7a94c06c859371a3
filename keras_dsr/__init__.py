"""keras_dsr: dynamical-systems reconstruction with parallel-in-time training.

``import keras_dsr`` is cheap: it imports neither Keras nor a backend. The public
names (``keras_dsr.DSRModel``, ``keras_dsr.callbacks``, ``keras_dsr.ops``, ...) are
imported on first access (PEP 562 module ``__getattr__``).

Right before Keras is first imported (by keras_dsr or by your own ``import keras``),
the JAX backend is selected when no backend was chosen (neither ``KERAS_BACKEND``,
nor ``~/.keras/keras.json``, nor an earlier ``import keras``); see
:mod:`keras_dsr._backend`. Right after, every serialisable class is registered, so
``keras.saving.load_model`` finds them after ``import keras_dsr``; see
:mod:`keras_dsr._imports`.

Example:
    >>> import keras_dsr
    >>> model_class = keras_dsr.DSRModel     # imports Keras (and the backend) now
"""

import importlib

from keras_dsr import _imports

__version__ = "0.1.0"

#: Subpackages and modules available as attributes, imported on first access.
_SUBMODULES = frozenset({
    "bursts", "callbacks", "cells", "data", "datasets", "embedding", "layers", "losses",
    "measures", "metrics", "models", "ops", "plotting", "recipes", "reconstruction",
    "regularizers", "schedules", "systems", "tuning", "utils", "zoo",
})
#: Classes available at the top level, and the subpackage that defines each.
_CLASSES = {
    "AdaptiveGTF": "callbacks",
    "ConstantAlpha": "callbacks",
    "DSRMeasures": "callbacks",
    "DSRModel": "models",
    "SSMModel": "models",
    "AdaptiveForcing": "schedules",
    "ConstantForcing": "schedules",
    "GTFDEERLayer": "layers",
    "ParallelScanRNN": "layers",
}

__all__ = [
    "AdaptiveForcing",
    "AdaptiveGTF",
    "ConstantForcing",
    "ConstantAlpha",
    "DSRMeasures",
    "DSRModel",
    "GTFDEERLayer",
    "ParallelScanRNN",
    "SSMModel",
    "bursts",
    "callbacks",
    "cells",
    "layers",
    "losses",
    "measures",
    "metrics",
    "datasets",
    "embedding",
    "models",
    "ops",
    "recipes",
    "regularizers",
    "schedules",
    "systems",
    "__version__",
]


def __getattr__(name):
    if name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    elif name in _CLASSES:
        value = getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _imports.register()
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | _SUBMODULES | set(_CLASSES))


_imports.install()
