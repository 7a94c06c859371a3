"""`import keras_dsr` picks JAX only when the user chose no backend."""

import json
import os
import subprocess
import sys

import pytest

PROBE = "import keras_dsr, keras; print(keras.backend.backend())"


def _run(env_updates, tmp_path, drop=("KERAS_BACKEND",)):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["KERAS_HOME"] = str(tmp_path)  # an empty Keras home: no keras.json
    env.update(env_updates)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_default_is_jax_without_any_choice(tmp_path):
    assert _run({}, tmp_path) == "jax"


@pytest.mark.slow
def test_environment_variable_is_respected(tmp_path):
    assert _run({"KERAS_BACKEND": "torch"}, tmp_path) == "torch"


@pytest.mark.slow
def test_keras_json_is_respected(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "torch"}))
    assert _run({}, tmp_path) == "torch"


def test_choose_backend_rules():
    from keras_dsr._backend import choose_backend

    nothing = lambda name: False  # noqa: E731
    everything = lambda name: True  # noqa: E731
    assert choose_backend("torch", "tensorflow", everything) == "torch"
    assert choose_backend(None, "tensorflow", everything) == "tensorflow"
    # Keras writes "tensorflow" into keras.json on first import: without TF installed
    # that entry would make `import keras` fail, so JAX is used instead.
    assert choose_backend(None, "tensorflow", nothing) == "jax"
    assert choose_backend(None, None, everything) == "jax"
    assert choose_backend("", None, everything) == "jax"
