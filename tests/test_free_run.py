"""The shared compiled free run of DSRModel and SSMModel: values against a plain loop,
burn-in, continuation from a returned state, no retracing on TensorFlow."""

import numpy as np
import pytest

import keras
from keras import ops

from conftest import BACKEND, to_np
from keras_dsr.cells import ClippedShallowPLRNN, PolynomialFlow
from keras_dsr.models import DSRModel, SSMModel


@pytest.mark.parametrize("cell", ["polynomial", "clipped"])
@pytest.mark.parametrize("observation", ["identity", "affine"])
def test_dsr_generate_matches_a_plain_loop(cell, observation):
    cell = (PolynomialFlow(4, degree=2, substeps=2, bound=10.0, seed=0) if cell == "polynomial"
            else ClippedShallowPLRNN(4, 16, seed=0))
    model = DSRModel(cell=cell, gtf=0.5, observation=observation)
    model.build((None, 10, 3))
    x0 = np.array([[0.1, -0.2, 0.3], [0.5, 0.1, -0.4]], "float32")
    obs, latent = model.generate(x0, 40, return_latent=True)
    z = model.gtf.initial_state(ops.convert_to_tensor(x0))
    for t in range(40):
        z = model.cell(z)
        np.testing.assert_allclose(latent[:, t], to_np(z), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(obs[:, t], to_np(model.gtf.observe(z)), rtol=1e-5, atol=1e-6)


def test_dsr_burn_in_and_continuation():
    model = DSRModel(cell=ClippedShallowPLRNN(3, 16, seed=1), gtf=0.5)
    model.build((None, 10, 3))
    x0 = np.array([0.1, 0.2, 0.3], "float32")
    full = model.generate(x0, 60)
    np.testing.assert_array_equal(model.generate(x0, 40, burn_in=20), full[20:])
    head, last = model.generate(x0, 25, return_state=True)
    tail = model.generate(state=last, steps=35)
    np.testing.assert_allclose(np.concatenate([head, tail]), full, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="exactly one"):
        model.generate(x0, 5, state=last)
    with pytest.raises(ValueError, match="NaN"):
        model.generate(np.array([np.nan, 0.0, 0.0]), 5)
    with pytest.raises(ValueError, match="burn_in"):
        model.generate(x0, 5, burn_in=-1)


def test_ssm_burn_in_and_continuation():
    model = SSMModel(3, units=8, readout_units=(16,), seed=0)
    model.build((None, None, 3))
    window = np.random.default_rng(0).normal(size=(2, 6, 3)).astype("float32") * 0.3
    full = model.generate(window, 30)
    np.testing.assert_allclose(model.generate(window, 20, burn_in=10), full[:, 10:],
                               rtol=1e-6, atol=1e-7)
    head, last = model.generate(window, 12, return_state=True)
    tail = model.generate(state=last, steps=18)
    np.testing.assert_allclose(np.concatenate([head, tail], axis=1), full, rtol=1e-5, atol=1e-6)


def test_tensorflow_does_not_retrace_between_calls():
    if BACKEND != "tensorflow":
        pytest.skip("TensorFlow's tracing")
    model = DSRModel(cell=ClippedShallowPLRNN(3, 8, seed=0), gtf=0.5)
    model.build((None, 10, 3))
    for i in range(4):
        model.generate(np.full((2, 3), 0.1 * i, "float32"), 50)
    (fn,) = [f for k, f in model._free_run_cache.items() if k[0] == "tf"]
    assert fn.experimental_get_tracing_count() == 1
