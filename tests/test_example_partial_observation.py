"""examples/partial_observation.py runs end to end in its quick mode (JAX session only)."""

import importlib.util
import os

import numpy as np
import pytest

from conftest import BACKEND

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example(name):
    spec = importlib.util.spec_from_file_location(
        name[:-3], os.path.join(ROOT, "examples", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_partial_observation_quick():
    if BACKEND != "jax":
        pytest.skip("the example runs once, in the JAX session")
    out = _example("partial_observation.py").run(quick=True)
    # x of Lorenz-63 with 10 % noise, 4000 samples: AMI lag near 0.2 time units,
    # FNN dimension 3-5 (noise raises it above the noise-free 3)
    assert 15 <= out["lag"] <= 30 and 3 <= out["dim"] <= 5
    for key in ("embedded", "recorded", "floor_embedded", "floor_recorded"):
        assert set(out[key]) == {"dstsp", "dh"}
        assert all(np.isfinite(v) and v >= 0 for v in out[key].values()), key
    # an independent clean trajectory through the same observation is close on x
    assert out["floor_recorded"]["dstsp"] < 0.5 and out["floor_recorded"]["dh"] < 0.1
