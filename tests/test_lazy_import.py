"""`import keras_dsr` is lazy: no Keras, no backend until a Keras-using name is used.

Each check runs in a fresh interpreter (``sys.modules`` of this test process already
holds Keras). The backend of the child is this run's ``KERAS_BACKEND``.
"""

import os
import subprocess
import sys

import pytest

import keras_dsr

HEAVY = ("keras", "jax", "tensorflow", "torch")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, tmp_path):
    env = dict(os.environ)
    env["KERAS_HOME"] = str(tmp_path)  # no keras.json left over from another run
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.backend_independent
def test_import_keras_dsr_imports_no_keras_and_no_backend(tmp_path):
    code = ("import sys, keras_dsr\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _python(code, tmp_path) == "[]"


@pytest.mark.backend_independent
def test_numpy_only_subpackages_stay_keras_free(tmp_path):
    code = ("import sys, keras_dsr\n"
            "keras_dsr.systems.simulate('lorenz63', steps=10, seed=0)\n"
            "keras_dsr.measures, keras_dsr.zoo.list_presets()\n"
            "keras_dsr.bursts.burst_statistics([0.0, 5.0, 0.0], 1.0)\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _python(code, tmp_path) == "[]"


def test_public_names_resolve_to_their_definitions():
    from keras_dsr.callbacks import AdaptiveGTF
    from keras_dsr.layers import GTFDEERLayer
    from keras_dsr.models import DSRModel

    assert keras_dsr.DSRModel is DSRModel
    assert keras_dsr.AdaptiveGTF is AdaptiveGTF
    assert keras_dsr.GTFDEERLayer is GTFDEERLayer
    assert keras_dsr.ops.deer_solve.__module__ == "keras_dsr.ops.newton"
    assert set(keras_dsr.__all__) <= set(dir(keras_dsr))
    for name in keras_dsr.__all__:
        assert getattr(keras_dsr, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'not_a_name'"):
        keras_dsr.not_a_name  # noqa: B018


# Keras deserialisation (``keras.saving.load_model``, ``deserialize_keras_object``)
# finds a class only by its registered name ("keras_dsr>DSRModel"); without the
# registration it raises TypeError.
LOAD = """
import json, os
import keras_dsr
{before}
import keras
from keras_dsr import zoo
with open(os.path.join(zoo.PRESET_DIR, "lorenz63", "config.json")) as fh:
    model = keras.saving.deserialize_keras_object(json.load(fh))
print(type(model).__module__ + "." + type(model).__name__, keras.backend.backend())
"""


@pytest.mark.slow
@pytest.mark.parametrize("before", ["", "from keras_dsr.ops import deer_solve",
                                    "import keras_dsr.cells"])
def test_load_model_after_import_keras_dsr(tmp_path, before):
    import keras

    line = _python(LOAD.format(before=before), tmp_path)
    assert line == f"keras_dsr.models.dsr.DSRModel {keras.backend.backend()}"
