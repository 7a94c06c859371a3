"""The DSRMeasures callback: measures in the logs, usable by other callbacks."""

import os
import warnings

import keras
import numpy as np
import pytest

from keras_dsr import measures as M
from keras_dsr import systems
from keras_dsr.callbacks.measures import DSRMeasures
from keras_dsr.data import TrajectoryWindows

T_TEST = 2000


@pytest.fixture(scope="module")
def lorenz():
    test, other = systems.simulate_ensemble("lorenz63", int(1.25 * T_TEST), seeds=(3, 4))
    x_test = test.x[:T_TEST].astype("float32")
    good = test.standardize(other.states)  # an independent true trajectory, 1.25 T long
    return x_test, good


class StandIn(keras.Model):
    """A Keras model with a scripted ``generate`` (duck-typed DSR interface).

    ``mode`` selects what generation returns: ``"good"`` an independent true
    trajectory, ``"fixed"`` a collapse onto the initial condition, ``"nan"`` a
    diverged run.
    """

    def __init__(self, good=None, mode="good", **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)
        self.good = good
        self.mode = mode
        self.calls = 0

    def call(self, x):
        return self.dense(x)

    def generate(self, x0, steps, return_latent=False):
        self.calls += 1
        x0 = np.asarray(x0).reshape(-1, 3)
        if self.mode == "good":
            return np.asarray(self.good[None, :steps])
        if self.mode == "fixed":
            return np.repeat(x0[:, None], steps, axis=1)
        return np.full((x0.shape[0], steps, 3), np.nan)


class Script(keras.callbacks.Callback):
    """Sets the stand-in's generation mode at the start of each epoch."""

    def __init__(self, modes):
        super().__init__()
        self.modes = modes

    def on_epoch_begin(self, epoch, logs=None):
        self.model.mode = self.modes[epoch]


def _fit(model, x_test, epochs, callbacks):
    model.compile(optimizer="sgd", loss="mse")
    ds = TrajectoryWindows(x_test, seq_len=20, batch_size=4, steps_per_epoch=2)
    return model.fit(ds, epochs=epochs, verbose=0, callbacks=callbacks)


def _expected(x_test, traj):
    """Direct computation on the trajectory the protocol evaluates (0.25 T dropped)."""
    gen = np.asarray(traj[T_TEST // 4: T_TEST // 4 + T_TEST], dtype=np.float64)
    return M.state_space_divergence(x_test, gen), M.power_spectrum_distance(x_test, gen)


def test_logs_hold_the_measures_every_k_epochs(lorenz):
    x_test, good = lorenz
    model = StandIn(good)
    cb = DSRMeasures(x_test, every=2)
    modes = ["fixed", "good", "good", "nan", "good"]
    hist = _fit(model, x_test, 5, [Script(modes), cb])
    h = hist.history
    assert len(h["val_dstsp"]) == len(h["val_dh"]) == 5
    assert model.calls == 3  # epochs 0, 2, 4 only
    fixed = np.repeat(x_test[:1].astype(np.float64), int(1.25 * T_TEST), axis=0)
    ds_fixed, dh_fixed = _expected(x_test, fixed)
    ds_good, dh_good = _expected(x_test, good)
    np.testing.assert_allclose(h["val_dstsp"], [ds_fixed, ds_fixed, ds_good, ds_good, ds_good],
                               rtol=1e-6)
    np.testing.assert_allclose(h["val_dh"], [dh_fixed, dh_fixed, dh_good, dh_good, dh_good],
                               rtol=1e-6)
    assert ds_fixed > 5 and dh_fixed == 1.0 and ds_good < ds_fixed / 2
    assert [e for e, _ in cb.history] == [0, 2, 4]


def test_early_stopping_and_checkpoint_use_val_dstsp(lorenz, tmp_path):
    x_test, good = lorenz
    model = StandIn(good)
    modes = ["fixed", "good", "nan", "fixed", "good", "good"]
    ckpt = os.path.join(tmp_path, "ep{epoch}.weights.h5")
    callbacks = [
        Script(modes),
        DSRMeasures(x_test, every=1),
        keras.callbacks.EarlyStopping(monitor="val_dstsp", mode="min", patience=2),
        keras.callbacks.ModelCheckpoint(ckpt, monitor="val_dstsp", mode="min",
                                        save_best_only=True, save_weights_only=True),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hist = _fit(model, x_test, 6, callbacks)
    # best at epoch 1 (0-based); epochs 2 (diverged: inf) and 3 do not improve -> stop
    assert len(hist.history["val_dstsp"]) == 4
    assert hist.history["val_dstsp"][2] == np.inf
    assert any(issubclass(w.category, RuntimeWarning) and "NaN or inf" in str(w.message)
               for w in caught)
    saved = sorted(f for f in os.listdir(tmp_path) if f.endswith(".weights.h5"))
    assert saved == ["ep1.weights.h5", "ep2.weights.h5"]  # file names count from 1


class EulerModel(keras.Model):
    """Euler-stepped Lorenz-63 with a Jacobian cell, in raw units (z = x)."""

    def __init__(self, h=0.01, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(3)
        self.h = h
        self.system = systems.get_system("lorenz63")
        self.cell = _JacobianCell(self.system, h)

    def call(self, x):
        return self.dense(x)

    def generate(self, x0, steps, return_latent=False):
        z = np.asarray(x0, dtype=np.float64).reshape(-1, 3)
        out = np.empty((z.shape[0], steps, 3))
        for t in range(steps):
            z = z + self.h * self.system.f(z)
            out[:, t] = z
        return (out, out.copy()) if return_latent else out


class _JacobianCell:
    def __init__(self, system, h):
        self.system, self.h = system, h

    def jacobian(self, z):
        z = np.asarray(keras.ops.convert_to_numpy(z), dtype=np.float64)
        return keras.ops.convert_to_tensor(
            (np.eye(3) + self.h * self.system.jacobian(z)).astype("float32"))


def test_optional_pe_and_lyapunov():
    tr = systems.simulate("lorenz63", 1500, standardize=False, seed=2, burn_in=20.0)
    x_raw = tr.x.astype("float32")
    model = EulerModel(h=0.01)
    cb = DSRMeasures(x_raw, every=1, pe_steps=5, pe_max_inits=200, lyapunov=True, dt=0.01,
                     lyap_steps=5000)
    hist = _fit(model, x_raw, 1, [cb])
    h = hist.history
    assert {"val_dstsp", "val_dh", "val_pe", "val_lyap"} <= set(h)
    ref_lyap = M.lyapunov_max_model(model, x_raw[0], steps=5000, transient=1000, dt=0.01)
    np.testing.assert_allclose(h["val_lyap"][0], ref_lyap, rtol=1e-6)
    assert 0.7 < h["val_lyap"][0] < 1.2  # near the flow's 0.906 (Euler, h = 0.01)
    ref_pe = M.prediction_error(model, x_raw, n=5, max_inits=200)
    np.testing.assert_allclose(h["val_pe"][0], ref_pe, rtol=1e-6)


def test_constructor_errors():
    x = np.zeros((100, 3))
    with pytest.raises(ValueError, match=r"every \(epochs\) must be an integer >= 1"):
        DSRMeasures(x, every=0)
    with pytest.raises(ValueError, match=r"x_test must have shape \[T, N\]"):
        DSRMeasures(np.zeros(100))
    with pytest.raises(ValueError, match="lyapunov=True needs dt"):
        DSRMeasures(x, lyapunov=True)
    with pytest.raises(ValueError, match="x_test contains NaN"):
        DSRMeasures(np.full((100, 3), np.nan))
    with pytest.raises(ValueError, match="pe_steps"):
        DSRMeasures(x, pe_steps=0)


def test_registered_as_keras_serializable():
    assert keras.saving.get_registered_object("keras_dsr>DSRMeasures") is DSRMeasures
    cb = DSRMeasures(np.arange(30.0).reshape(10, 3), every=3, pe_steps=4, prefix="test_")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cb))
    assert isinstance(again, DSRMeasures) and again.get_config() == cb.get_config()


def test_keras_tuner_objective(lorenz, tmp_path):
    kt = pytest.importorskip("keras_tuner")
    if keras.backend.backend() == "tensorflow":
        # keras-tuner imports tensorboard for every trial on the TF backend
        pytest.importorskip("tensorboard", reason="keras-tuner needs tensorboard on TF")
    x_test, good = lorenz

    def build(hp):
        model = StandIn(good, mode=hp.Choice("mode", ["fixed", "good"]))
        model.compile(optimizer="sgd", loss="mse")
        return model

    tuner = kt.GridSearch(build, objective=kt.Objective("val_dstsp", direction="min"),
                          max_trials=2, directory=str(tmp_path), project_name="t",
                          overwrite=True)
    ds = TrajectoryWindows(x_test, seq_len=20, batch_size=4, steps_per_epoch=2)
    tuner.search(ds, epochs=1, verbose=0, callbacks=[DSRMeasures(x_test)])
    assert all(t.status == "COMPLETED" for t in tuner.oracle.trials.values())
    best = tuner.get_best_hyperparameters(1)[0]
    assert best.get("mode") == "good"
    scores = sorted(t.score for t in tuner.oracle.trials.values())
    ds_good, _ = _expected(x_test, good)
    np.testing.assert_allclose(scores[0], ds_good, rtol=1e-6)
