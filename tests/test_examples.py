"""The examples run end to end in their smoke mode (CI)."""

import os
import subprocess
import sys

import pytest

from conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_train_lorenz63_smoke():
    if BACKEND != "jax":
        pytest.skip("the example runs once, in the JAX session")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_lorenz63.py"),
                           "--smoke"], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "D_stsp =" in proc.stdout and "D_H =" in proc.stdout


@pytest.mark.slow
def test_cli_demo_smoke():
    if BACKEND != "jax":
        pytest.skip("the demo runs once, in the JAX session")
    proc = subprocess.run([sys.executable, "-m", "keras_dsr.cli", "demo", "--steps", "2000",
                           "--repeats", "1"], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "result: OK" in proc.stdout


@pytest.mark.slow
def test_tune_lorenz63_smoke(tmp_path):
    if BACKEND != "jax":
        pytest.skip("the example runs once, in the JAX session")
    pytest.importorskip("keras_tuner")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "tune_lorenz63.py"),
                           "--smoke", "--directory", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "search: 2 trials" in proc.stdout and "best configuration" in proc.stdout
    assert "D_stsp =" in proc.stdout


@pytest.mark.slow
def test_gru_deer_smoke():
    if BACKEND != "jax":
        pytest.skip("the example runs once, in the JAX session")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "gru_deer.py"),
                           "--smoke"], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    diff = float(proc.stdout.split("max |DEER - RNN| = ")[1].split(";")[0])
    assert diff < 1e-4
    assert "DEERLayer(GRUCell) trained" in proc.stdout
