"""Choose JAX as the Keras backend when the user has not chosen one.

Keras reads its backend once, when it is first imported, from (in order) the
``KERAS_BACKEND`` environment variable, then ``$KERAS_HOME/keras.json`` (default
``~/.keras/keras.json``), and otherwise falls back to TensorFlow; on a machine
without TensorFlow that fallback makes ``import keras`` fail. Keras also *writes*
``keras.json`` with ``"backend": "tensorflow"`` the first time it is imported,
whatever backend was used then, so that file's entry is not always a choice.

keras_dsr depends on JAX (the GPU path). Before Keras is imported it sets
``KERAS_BACKEND``:

* a ``KERAS_BACKEND`` already set is always kept;
* else the backend named in ``keras.json`` is kept if its package is installed;
* else (no file, no entry, or a backend that is not installed) JAX.

If Keras was imported before keras_dsr, its backend is final and kept.
"""

import importlib.util
import json
import os
import sys

DEFAULT_BACKEND = "jax"
_PACKAGES = {"jax": "jax", "tensorflow": "tensorflow", "torch": "torch", "numpy": "numpy",
             "openvino": "openvino"}


def _keras_config_backend():
    """The backend named in keras.json, or None when there is no such file/entry."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as fh:
            return json.load(fh).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def _installed(backend):
    package = _PACKAGES.get(backend)
    return package is not None and importlib.util.find_spec(package) is not None


def choose_backend(env_backend, config_backend, installed=_installed):
    """The backend to use, from the env var, the keras.json entry and what is installed."""
    if env_backend:
        return env_backend
    if config_backend and installed(config_backend):
        return config_backend
    return DEFAULT_BACKEND


def ensure_default_backend():
    """Set ``KERAS_BACKEND`` as described in the module docstring; return the backend."""
    if "keras" in sys.modules:  # Keras already imported: its choice is final.
        import keras

        return keras.backend.backend()
    chosen = choose_backend(os.environ.get("KERAS_BACKEND"), _keras_config_backend())
    os.environ["KERAS_BACKEND"] = chosen
    return chosen
