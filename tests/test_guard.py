"""NonFiniteGuard sets the in-step guard's tolerance; SSMModel is guarded in its step too."""

import numpy as np
import pytest

import keras
from keras import ops

from keras_dsr.callbacks import NonFiniteGuard
from keras_dsr.models import DSRModel, SSMModel
from keras_dsr.models.engine import TrainingDiverged
from test_dsr_model import lorenz_windows
from test_engine import Sequence


def finite(model):
    return all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_guard_callback_sets_the_tolerance_for_one_fit():
    x = lorenz_windows(n_windows=16, t=40)
    model = DSRModel(hidden_dim=8, alpha=0.5, max_bad_steps=10)
    model.compile(optimizer=keras.optimizers.Adam(float("inf")))  # every step non-finite
    with pytest.raises(TrainingDiverged, match="1 consecutive"):
        model.fit(Sequence(x, 4), epochs=1, verbose=0, shuffle=False,
                  callbacks=[NonFiniteGuard(max_restores=0)])
    assert finite(model)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="max_restores"):
            NonFiniteGuard(max_restores=bad)
    assert NonFiniteGuard(**NonFiniteGuard(4).get_config()).max_restores == 4


def test_ssm_model_skips_a_nan_batch_in_its_step():
    x = lorenz_windows(n_windows=16, t=40)
    runs = {}
    for name, data in (("with_nan", Sequence(x, 4, nan_batch=2)),
                       ("without", Sequence(np.delete(x, slice(8, 12), axis=0), 4))):
        model = SSMModel(3, units=8, readout_units=(16,), seed=0)
        model.compile(keras.optimizers.Adam(1e-3))
        hist = model.fit(data, epochs=1, verbose=0, shuffle=False)
        runs[name] = (model.get_weights(), hist.history)
    assert runs["with_nan"][1]["skipped_steps"] == [1.0]
    for u, v in zip(runs["with_nan"][0], runs["without"][0]):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)


def test_spectral_norm_of_a_variable_and_of_non_finite_matrices():
    from keras_dsr.ops.norms import spectral_norm

    a = np.array([[[3.0, 0.0], [4.0, 1.0]], [[np.nan, 0.0], [0.0, 1.0]]], "float32")
    got = ops.convert_to_numpy(spectral_norm(keras.Variable(a)))  # a Variable, too
    assert np.isclose(got[0], np.linalg.svd(a[0], compute_uv=False)[0], rtol=1e-5)
    assert np.isnan(got[1])  # NaN, not an exception (PyTorch's SVD raises on NaN)
