"""Choose JAX as the Keras backend when the user has not chosen one.

Keras reads its backend once, when it is first imported, from (in order) the
``KERAS_BACKEND`` environment variable, then ``$KERAS_HOME/keras.json`` (default
``~/.keras/keras.json``), and otherwise falls back to TensorFlow; on a machine
without TensorFlow that fallback makes ``import keras`` fail. keras_dsr depends on
JAX (the GPU path), so when *none* of these choices was made we set
``KERAS_BACKEND=jax`` before Keras is imported. A backend the user chose, through
the variable, ``keras.json``, or by importing and configuring Keras first, is
always respected.
"""

import json
import os
import sys

DEFAULT_BACKEND = "jax"


def _keras_config_backend():
    """The backend named in keras.json, or None when there is no such file/entry."""
    home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    path = os.path.join(home, "keras.json")
    try:
        with open(path) as fh:
            return json.load(fh).get("backend")
    except (OSError, ValueError, AttributeError):
        return None


def ensure_default_backend():
    """Set ``KERAS_BACKEND=jax`` unless a backend was already chosen.

    Returns the name of the backend Keras will use (or already uses).
    """
    if "keras" in sys.modules:  # Keras already imported: its choice is final.
        import keras

        return keras.backend.backend()
    chosen = os.environ.get("KERAS_BACKEND") or _keras_config_backend()
    if not chosen:
        os.environ["KERAS_BACKEND"] = DEFAULT_BACKEND
        chosen = DEFAULT_BACKEND
    return chosen
