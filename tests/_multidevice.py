"""Run a Python snippet under JAX with several simulated CPU devices, in a subprocess.

XLA fixes its device count when JAX starts, so multi-device tests start a fresh
interpreter with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (and the JAX
backend, on CPU) set before anything is imported.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import BACKEND

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)


def run_on_cpu_devices(code, *args, devices=4, timeout=600):
    """Run ``python -c code *args`` on ``devices`` simulated CPU devices; returns stdout.

    The child imports this checkout's ``keras_dsr`` and can import the test helpers
    (``tests/`` is on its path). A non-zero exit fails with the end of its stderr.
    """
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"
    env["JAX_PLATFORMS"] = "cpu"
    flags = env.get("XLA_FLAGS", "")
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, TESTS, env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


# The multi-device subprocesses run JAX; they are started from the JAX test session only.
JAX_SESSION_ONLY = pytest.mark.skipif(
    BACKEND != "jax",
    reason="the 4-device subprocess runs JAX; it is started from the JAX test session only")


def run_worker_on_array(code, x, folder, devices=4):
    """Save ``x`` in ``folder``, run ``code x.npy out.npz`` on ``devices`` simulated CPU
    devices and return what the worker saved in ``out.npz`` as a dict of arrays."""
    np.save(os.path.join(folder, "x.npy"), x)
    out = os.path.join(folder, "out.npz")
    run_on_cpu_devices(code, os.path.join(folder, "x.npy"), out, devices=devices)
    with np.load(out) as data:
        return dict(data)
