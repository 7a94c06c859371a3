"""NonFiniteGuard: a step that makes the weights NaN is undone; repeated failures raise."""

import numpy as np
import pytest

import keras

from keras_dsr.callbacks import ConstantAlpha, NonFiniteGuard
from keras_dsr.models import DSRModel
from test_dsr_model import lorenz_windows


class PoisonAt(keras.callbacks.Callback):
    """Writes NaN into the first weight at the end of the given batches (a blown-up step)."""

    def __init__(self, batches):
        super().__init__()
        self.batches, self.epoch = set(batches), 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) in self.batches:
            w = self.model.trainable_variables[0]
            w.assign(np.full(tuple(w.shape), np.nan, "float32"))


def model_and_data():
    model = DSRModel(hidden_dim=8, alpha=0.5)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model, lorenz_windows(n_windows=40, t=50)


def finite(model):
    return all(np.all(np.isfinite(w)) for w in model.get_weights())


def test_a_poisoned_step_is_restored_and_training_goes_on():
    model, x = model_and_data()
    guard = NonFiniteGuard(snapshot_every=2)
    with pytest.warns(RuntimeWarning, match="restored the last finite copy"):
        hist = model.fit(x, batch_size=4, epochs=2, verbose=0,
                         callbacks=[ConstantAlpha(0.5), PoisonAt({(0, 4)}), guard])
    assert finite(model)
    assert guard.total_restores == 1
    assert hist.history["nonfinite_restores"] == [1.0, 0.0]
    loss = hist.history["loss"]
    assert np.all(np.isfinite(loss)) and loss[1] < 1.0  # the epoch means restart after the restore
    # the optimiser state was restored too: the next epoch trains normally
    assert all(np.all(np.isfinite(keras.ops.convert_to_numpy(v)))
               for v in model.optimizer.variables)


def test_repeated_failures_raise_with_the_weights_restored():
    model, x = model_and_data()
    model.fit(x[:4], batch_size=4, epochs=1, verbose=0)  # builds the optimiser
    before = [w.copy() for w in model.get_weights()]
    poison = PoisonAt({(0, b) for b in range(10)})
    with pytest.raises(FloatingPointError, match="non-finite 3 times in a row"):
        with pytest.warns(RuntimeWarning):
            model.fit(x, batch_size=4, epochs=1, verbose=0,
                      callbacks=[ConstantAlpha(0.5), poison,
                                 NonFiniteGuard(max_restores=2, snapshot_every=50)])
    assert finite(model)
    for a, b in zip(before, model.get_weights()):  # back to the copy taken before training
        np.testing.assert_array_equal(a, b)


def test_fit_adds_a_guard_and_validates_arguments():
    model, x = model_and_data()
    hist = model.fit(x[:8], batch_size=4, epochs=1, verbose=0, callbacks=[ConstantAlpha(0.5)])
    assert hist.history["nonfinite_restores"] == [0.0]
    for bad, match in [({"max_restores": -1}, "max_restores"),
                       ({"snapshot_every": 0}, "snapshot_every")]:
        with pytest.raises(ValueError, match=match):
            NonFiniteGuard(**bad)
    assert NonFiniteGuard(**NonFiniteGuard(4, 3).get_config()).max_restores == 4


def test_ssm_model_fit_is_guarded_too():
    from keras_dsr.models import SSMModel

    x = lorenz_windows(n_windows=40, t=50)
    model = SSMModel(3, units=8, readout_units=(16,), seed=0)
    model.compile(keras.optimizers.Adam(1e-3))
    with pytest.warns(RuntimeWarning, match="restored the last finite copy"):
        hist = model.fit(x, batch_size=4, epochs=1, verbose=0, callbacks=[PoisonAt({(0, 3)})])
    assert hist.history["nonfinite_restores"] == [1.0] and finite(model)
    assert np.isfinite(hist.history["loss"][0])


def test_spectral_norm_of_a_variable_and_of_non_finite_matrices():
    from keras_dsr.layers.gtf_deer import spectral_norm

    a = np.array([[[3.0, 0.0], [4.0, 1.0]], [[np.nan, 0.0], [0.0, 1.0]]], "float32")
    got = keras.ops.convert_to_numpy(spectral_norm(keras.Variable(a)))  # a Variable, too
    assert np.isclose(got[0], np.linalg.svd(a[0], compute_uv=False)[0], rtol=1e-5)
    assert np.isnan(got[1])  # NaN, not an exception (PyTorch's SVD raises on NaN)
