"""SSMModel: training on data alone, generation, save/load, input validation."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import keras_dsr  # noqa: F401  (selects the default backend before keras)
import keras
from keras import ops

from keras_dsr.models import SSMModel

N = 3


def _lorenz(t, s, sigma=10.0, rho=28.0, beta=8.0 / 3.0):
    x, y, z = s
    return [sigma * (y - x), x * (rho - z) - y, x * y - beta * z]


@pytest.fixture(scope="module")
def windows():
    """Standardised Lorenz-63 (dt = 0.01) cut into windows [100, 40, 3]."""
    dt = 0.01
    t = np.arange(0.0, 26.0, dt)
    sol = solve_ivp(_lorenz, (0.0, t[-1]), [1.0, 1.0, 1.0], t_eval=t, rtol=1e-9, atol=1e-9)
    data = sol.y.T[500:]
    data = (data - data.mean(0)) / data.std(0)
    x = np.stack([data[i : i + 40] for i in range(0, 20 * 100, 20)])
    return x.astype("float32")


@pytest.fixture(scope="module")
def fitted(windows):
    keras.utils.set_random_seed(0)
    model = SSMModel(N, units=16, readout_units=(32,), seed=0)
    model.compile(keras.optimizers.Adam(1e-2))
    history = model.fit(windows, epochs=4, batch_size=20, verbose=0)
    return model, history.history["loss"]


pytestmark = pytest.mark.usefixtures("full_float32_matmuls")


def _np(v):
    return np.asarray(ops.convert_to_numpy(v))


def test_fit_on_data_alone_decreases_one_step_loss(fitted, windows):
    model, losses = fitted
    persistence = np.mean((windows[:, :-1] - windows[:, 1:]) ** 2)  # x_hat_t = x_{t-1}
    assert len(losses) == 4 and np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0]
    # The loss is the MSE of the predictions of x[:, 1:] (independent numpy check).
    pred = model.predict(windows, batch_size=100, verbose=0)
    assert pred.shape == (100, 39, N)
    mse = np.mean((pred.astype("float64") - windows[:, 1:]) ** 2)
    np.testing.assert_allclose(
        model.evaluate(windows, batch_size=100, verbose=0, return_dict=True)["loss"], mse,
        rtol=1e-4)
    # ... identical to passing the targets explicitly.
    np.testing.assert_allclose(
        model.evaluate(windows, windows[:, 1:], batch_size=100, verbose=0,
                       return_dict=True)["loss"], mse, rtol=1e-4
    )
    # It beats persistence clearly, so it learned something of the flow.
    assert mse < 0.5 * persistence


def test_call_is_residual_one_step_map(windows):
    plain = SSMModel(N, units=4, readout_units=(8,), seed=1, residual=False)
    plain.build((None, None, N))
    model = SSMModel(N, units=4, readout_units=(8,), seed=1)
    model.build((None, None, N))
    # Residual models start as persistence: zero output layer, so x_hat_t = x_{t-1}.
    assert not np.any(_np(model.rnn.output_layer.kernel))
    assert not np.any(_np(model.rnn.output_layer.bias))
    assert np.any(_np(plain.rnn.output_layer.kernel))
    model.set_weights(plain.get_weights())
    x = windows[:2, :15]
    rnn_out = plain.predict(x, verbose=0)
    assert rnn_out.shape == (2, 14, N) and np.abs(rnn_out).max() > 1e-2
    np.testing.assert_allclose(model.predict(x, verbose=0), x[:, :-1] + rnn_out, rtol=1e-5, atol=1e-5)


def _models(fitted):
    keras.utils.set_random_seed(2)
    other = SSMModel(N, units=4, readout_units=(8,), selective=True, complex_modes=False,
                     residual=False, seed=2)
    other.build((None, None, N))
    return [fitted[0], other]


def test_generate_is_free_running_call(fitted, windows):
    for model in _models(fitted):
        x0 = windows[:2, 0]
        gen = model.generate(x0, 12)
        assert gen.shape == (2, 12, N) and gen.dtype == np.float32
        # Teacher forcing (call) on the generated trajectory reproduces it; its row 0
        # is call's one-step prediction from x0, which must be the first generated row.
        seq = np.concatenate([x0[:, None], gen], axis=1)
        pred = model.predict(seq, verbose=0)
        np.testing.assert_allclose(gen[:, 0], pred[:, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gen, pred, rtol=1e-4, atol=1e-5)
        assert np.abs(gen[:, -1] - x0).max() > 1e-2  # it moved
    # 1-D x0: [steps, N], the same trajectory.
    gen1 = model.generate(x0[1], 12)
    assert gen1.shape == (12, N)
    np.testing.assert_allclose(gen1, gen[1], rtol=1e-6, atol=1e-6)


def test_generate_from_warm_up_window_and_latent(fitted, windows):
    for model in _models(fitted):
        window = windows[:2, :10]
        gen, latent = model.generate(window, 8, return_latent=True)
        assert gen.shape == (2, 8, N) and latent.shape == (2, 8, model.rnn.state_size)
        seq = np.concatenate([window, gen], axis=1)  # [2, 18, N]
        np.testing.assert_allclose(model.predict(seq, verbose=0)[:, 9:], gen, rtol=1e-4, atol=1e-5)
        states = _states(model, seq[:, :-1])
        np.testing.assert_allclose(latent, states[:, 9:], rtol=1e-4, atol=1e-5)
    # A warm-up changes the result compared with starting from the last row alone.
    assert np.abs(model.generate(window[:, -1], 8) - gen).max() > 1e-4


def _states(model, u):
    """``model.rnn.compute_states(u)`` as numpy (jitted on JAX: eager JAX is slow)."""
    if keras.backend.backend() != "jax":
        return _np(model.rnn.compute_states(u))
    import jax

    variables = model.rnn.variables

    def f(values, u):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return model.rnn.compute_states(u)

    return _np(jax.jit(f)([v.value for v in variables], u))


def test_generate_reports_divergence(windows):
    model = SSMModel(N, units=4, readout_units=(8,), seed=3)
    model.build((None, None, N))
    model.rnn.output_layer.bias.assign(np.full((N,), 1e37, "float32"))
    with pytest.warns(RuntimeWarning, match="non-finite") as record:
        gen = model.generate(windows[0, 0], 60)
    bad_rows = np.where(~np.isfinite(gen).all(axis=1))[0]
    assert bad_rows.size > 0
    messages = [str(r.message) for r in record if issubclass(r.category, RuntimeWarning)]
    assert any(f"step {bad_rows[0] + 1} of 60" in m for m in messages), messages
    assert np.isfinite(gen[: bad_rows[0]]).all()


def test_save_load_round_trip(fitted, windows, tmp_path):
    model = fitted[0]
    path = str(tmp_path / "ssm.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, SSMModel)
    assert loaded.get_config() == model.get_config()
    x0 = windows[:3, 0]
    np.testing.assert_array_equal(loaded.generate(x0, 20), model.generate(x0, 20))
    assert len(loaded.get_weights()) == len(model.get_weights())
    for w_loaded, w in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(w_loaded, w)
    assert loaded.optimizer is not None and loaded.loss == "mse"


def test_config_round_trip():
    model = SSMModel(N, units=6, readout_units=(5, 7), activation="tanh", selective=True,
                     complex_modes=False, r_min=0.1, r_max=0.8, max_phase=1.5,
                     skip_input=False, residual=False, seed=11, name="my_ssm")
    config = model.get_config()
    expected = {"n_features": N, "units": 6, "readout_units": [5, 7], "activation": "tanh",
                "selective": True, "complex_modes": False, "r_min": 0.1, "r_max": 0.8,
                "max_phase": 1.5, "skip_input": False, "residual": False, "seed": 11,
                "name": "my_ssm"}
    for key, value in expected.items():
        assert config[key] == value, key
    clone = SSMModel.from_config(config)
    assert clone.get_config() == config
    assert clone.rnn.state_size == 6


# ---------------------------------------------------------------- bad input
def _bad_fit(model, x, **kwargs):
    model.fit(x, epochs=1, verbose=0, **kwargs)


def test_bad_data_raises_before_training(windows):
    model = SSMModel(N, units=4, readout_units=(8,))
    model.compile("adam")
    good = windows[:4]
    with pytest.raises(ValueError, match="3 features"):
        _bad_fit(model, np.zeros((4, 10, 4), "float32"))
    nan = good.copy()
    nan[1, 5, 2] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf \(first at index \(1, 5, 2\)\)"):
        _bad_fit(model, nan)
    inf = good.copy()
    inf[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        _bad_fit(model, inf)
    with pytest.raises(ValueError, match="at least 2 time steps"):
        _bad_fit(model, good[:, :1])
    with pytest.raises(TypeError, match="floating-point"):
        _bad_fit(model, np.ones((4, 10, N), "int64"))
    with pytest.raises(ValueError, match=r"x\[None\]"):
        _bad_fit(model, good[0])
    with pytest.raises(ValueError, match="targets of x"):
        model.fit(good, good, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        _bad_fit(model, good, validation_data=nan)
    with pytest.raises(ValueError, match="NaN or inf"):
        model.evaluate(nan, verbose=0)
    assert not model.built or model.optimizer.iterations.numpy() == 0  # nothing trained


def test_bad_call_and_generate_arguments(windows):
    model = SSMModel(N, units=4, readout_units=(8,))
    with pytest.raises(ValueError, match=r"\[batch, time, 3\]"):
        model(np.zeros((2, 10, 2), "float32"))
    with pytest.raises(ValueError, match="at least 2 time steps"):
        model(np.zeros((2, 1, N), "float32"))
    with pytest.raises(TypeError, match="floating-point"):
        model(np.zeros((2, 5, N), "int32"))
    with pytest.raises(ValueError, match="x0"):
        model.generate(np.zeros((2, 4), "float32"), 5)
    with pytest.raises(ValueError, match="x0"):
        model.generate(np.array([0.0, np.nan, 0.0]), 5)
    with pytest.raises(TypeError, match="x0"):
        model.generate(np.array(["a", "b", "c"]), 5)
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            model.generate(windows[0, 0], steps)
    for n in (0, 2.0, None):
        with pytest.raises(ValueError, match="n_features"):
            SSMModel(n)
