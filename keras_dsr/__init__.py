"""keras_dsr: dynamical-systems reconstruction with parallel-in-time training.

Importing keras_dsr selects the JAX backend for Keras when no backend was chosen
(neither ``KERAS_BACKEND``, nor ``~/.keras/keras.json``, nor an earlier
``import keras``); see :mod:`keras_dsr._backend`.
"""

from keras_dsr._backend import ensure_default_backend as _ensure_default_backend

_ensure_default_backend()

from keras_dsr import ops  # noqa: E402

__version__ = "0.1.0"

__all__ = ["ops", "__version__"]
