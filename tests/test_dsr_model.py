"""GTFDEERLayer / DSRModel / alpha callbacks: values, gradients, fit, saving, errors."""

import os
import subprocess
import sys

import numpy as np
import pytest

import keras
from keras import ops

from conftest import BACKEND, to_np, value_and_grads
from keras_dsr.callbacks import AdaptiveGTF, ConstantAlpha, ExponentialAlpha, LinearAlpha, set_alpha
from keras_dsr.cells import ALRNN, PLRNN, ClippedShallowPLRNN, ShallowPLRNN
from keras_dsr.models import DSRModel
from keras_dsr.schedules import AdaptiveForcing
from keras_dsr.systems import simulate


def lorenz_windows(n_windows=32, t=100, seed=0):
    traj = simulate("lorenz63", 5000, seed=seed).x.astype("float32")
    starts = np.random.default_rng(seed).integers(0, len(traj) - t, n_windows)
    return np.stack([traj[s:s + t] for s in starts])


def make_cell(kind, m, seed=0):
    if kind == "plrnn":
        return PLRNN(latent_dim=m, seed=seed)
    if kind == "shplrnn":
        return ShallowPLRNN(latent_dim=m, hidden_dim=16, seed=seed)
    if kind == "clipped":
        return ClippedShallowPLRNN(latent_dim=m, hidden_dim=16, seed=seed)
    return ALRNN(latent_dim=m, num_relu=2, seed=seed)


def forced_loop_numpy(model, x, alpha):
    """Sequential GTF (full or partial forcing, identity or affine observation) with a
    Python loop over t and numpy linear algebra: the reference."""
    layer = model.gtf
    n = x.shape[-1]
    m = model.cell.latent_dim
    if layer.observation == "affine":
        kernel = to_np(layer.kernel)                     # x = z @ kernel
        pinv = np.linalg.pinv(kernel)                    # z = x @ pinv
        observe = lambda z: z @ kernel
        infer = lambda xt: xt @ pinv
        z = infer(x[:, 0])
    else:
        observe = lambda z: z[:, :n]
        infer = lambda xt: np.concatenate([xt, np.zeros((xt.shape[0], m - n), "float32")], -1)
        z = to_np(layer.initial_state(ops.convert_to_tensor(x[:, 0])))
    mask = np.ones(m) if layer.forcing == "full" else np.r_[np.ones(n), np.zeros(m - n)]
    preds = []
    for t in range(1, x.shape[1]):
        pred = to_np(model.cell(ops.convert_to_tensor(z.astype("float32"))))
        preds.append(observe(pred))
        z = pred + alpha * mask * (infer(x[:, t]) - pred)
    return np.stack(preds, axis=1)


CASES = [("plrnn", 3, "full", "identity"), ("shplrnn", 5, "full", "identity"),
         ("clipped", 3, "full", "identity"), ("alrnn", 5, "full", "identity"),
         ("clipped", 5, "partial", "identity"), ("shplrnn", 5, "full", "affine"),
         ("clipped", 5, "partial", "affine"), ("plrnn", 2, "full", "affine")]


@pytest.mark.parametrize("kind, latent, forcing, observation", CASES)
def test_predictions_match_sequential_loop(kind, latent, forcing, observation):
    x = lorenz_windows(4, 60)
    model = DSRModel(cell=make_cell(kind, latent), alpha=0.3, forcing=forcing,
                     observation=observation, latent_init="learned")
    model.build(x.shape)
    pred = to_np(model(x))
    ref = forced_loop_numpy(model, x, 0.3)
    np.testing.assert_allclose(pred, ref, atol=5e-5, rtol=2e-4)


def mse_value_and_grads(model, x):
    """One-step MSE of ``model`` on windows ``x`` and its gradients w.r.t. the weights."""
    fixed = [v.value for v in model.non_trainable_variables]
    target = ops.convert_to_tensor(x[:, 1:])

    def loss(*trainable):
        pred, _ = model.stateless_call(list(trainable), fixed, ops.convert_to_tensor(x))
        return ops.mean((pred - target) ** 2)

    return value_and_grads(loss, [v.value for v in model.trainable_variables])


def loop_loss_and_grads(model, x):
    """Loss and gradients of a plain Python loop over t (BPTT through the forced loop)."""
    layer = model.gtf
    variables = model.trainable_variables
    xt = ops.convert_to_tensor(x)

    def loss(*values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            zhat = ops.stop_gradient(layer.infer_latent(xt))
            z = layer.initial_state(xt[:, 0])
            mask = layer._mask(xt.dtype)
            total = 0.0
            for t in range(1, x.shape[1]):
                pred = layer.cell(z)
                total = total + ops.mean((layer.observe(pred) - xt[:, t]) ** 2)
                z = pred + 0.25 * mask * (zhat[:, t] - pred)
            return total / (x.shape[1] - 1)

    return value_and_grads(loss, [v.value for v in variables])


@pytest.mark.parametrize("kind, latent, observation", [
    ("plrnn", 4, "identity"), ("shplrnn", 5, "identity"), ("clipped", 5, "identity"),
    ("alrnn", 4, "identity"), ("clipped", 5, "affine"), ("shplrnn", 5, "affine")])
def test_gtf_deer_gradient_equals_sequential_bptt(kind, latent, observation):
    """Full forcing, M >= N = 3: DEER's loss and gradients equal sequential BPTT's and a
    plain Python loop's."""
    x = lorenz_windows(4, 80)
    grads = {}
    for method in ("deer", "sequential"):
        model = DSRModel(cell=make_cell(kind, latent, seed=3), alpha=0.25, method=method,
                         latent_init="learned", observation=observation)
        model.build(x.shape)
        if method == "sequential":
            model.set_weights(weights)
        weights = model.get_weights()
        grads[method] = mse_value_and_grads(model, x)
    grads["loop"] = loop_loss_and_grads(model, x)
    for ref in ("sequential", "loop"):
        np.testing.assert_allclose(grads["deer"][0], grads[ref][0], rtol=1e-5)
        for g, r in zip(grads["deer"][1], grads[ref][1]):
            assert np.max(np.abs(g - r)) <= 1e-4 * max(np.max(np.abs(r)), 1e-8)


def test_fit_lowers_loss_and_logs_diagnostics():
    x = lorenz_windows(64, 100)
    keras.utils.set_random_seed(0)
    model = DSRModel(hidden_dim=32)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    hist = model.fit(x, batch_size=16, epochs=6, verbose=0, callbacks=[ConstantAlpha(0.2)])
    loss = hist.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    for key in ("alpha", "deer_iterations", "deer_fallbacks", "gtf_norm", "skipped_steps",
                "diverged_steps", "batch_loss"):
        assert key in hist.history
    assert 1 <= hist.history["deer_iterations"][-1] <= 10
    assert hist.history["deer_fallbacks"][-1] == 0.0
    # Adaptive GTF: alpha starts at 1 and follows the Jacobian-norm estimate down.
    hist = model.fit(x, batch_size=16, epochs=1, verbose=0, callbacks=[AdaptiveGTF(k=1, gamma=0.5)])
    g = hist.history["gtf_norm"][-1]
    assert 0.0 < hist.history["alpha"][-1] < 1.0 and g > 0


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append(float(logs["alpha"]))


class PerBatchAlpha(keras.callbacks.Callback):
    def __init__(self, values):
        super().__init__()
        self.values = values
        self.count = 0

    def on_train_batch_begin(self, batch, logs=None):
        set_alpha(self.model, self.values[self.count])
        self.count += 1


def test_train_step_sees_each_new_alpha():
    x = lorenz_windows(40, 30)
    values = [round(v, 3) for v in np.linspace(0.95, 0.05, 10)]
    model = DSRModel(hidden_dim=8, alpha=1.0)
    model.compile(optimizer="adam")
    rec = Recorder()
    model.fit(x, batch_size=8, epochs=2, verbose=0, callbacks=[PerBatchAlpha(values), rec])
    np.testing.assert_allclose(rec.seen, values, atol=1e-6)
    assert abs(model.alpha - values[-1]) < 1e-6


@pytest.mark.parametrize(
    "schedule, expected",
    [
        (ConstantAlpha(0.4), [0.4] * 6),
        (LinearAlpha(1.0, 0.5, decay_steps=4), [1.0, 0.875, 0.75, 0.625, 0.5, 0.5]),
        (ExponentialAlpha(0.9, 0.1, decay_rate=0.5, decay_steps=1),
         [0.1 + 0.8 * 0.5 ** k for k in range(6)]),
    ],
)
def test_schedules_reach_the_train_step(schedule, expected):
    x = lorenz_windows(12, 30)
    model = DSRModel(hidden_dim=8)
    model.compile(optimizer="adam")
    rec = Recorder()
    model.fit(x, batch_size=4, epochs=2, verbose=0, callbacks=[schedule, rec])
    np.testing.assert_allclose(rec.seen, expected, atol=1e-6)


def test_default_model_anneals_alpha_adaptively():
    x = lorenz_windows(48, 30)
    model = DSRModel(hidden_dim=8)  # alpha="adaptive": the lab's AdaptiveForcing
    model.compile(optimizer="adam")
    rec = Recorder()
    model.fit(x, batch_size=8, epochs=1, verbose=0, callbacks=[rec])
    assert rec.seen[:4] == [1.0] * 4  # alpha_0 = 1; the 5th batch (k = 5) updates first
    assert rec.seen[4] < 1.0
    assert model.get_config()["gtf"]["class_name"] == "AdaptiveForcing"


def test_adaptive_rule():
    rule = AdaptiveForcing(k=5, gamma=0.999, alpha_0=1.0)
    value = lambda alpha, g: float(to_np(rule.update(ops.convert_to_tensor(alpha),
                                                     ops.convert_to_tensor(g))))
    assert value(1.0, 2.0) == pytest.approx(0.999 * 1.0 + 0.001 * 0.5)
    assert value(0.1, 4.0) == pytest.approx(0.75)  # an increase is taken at once
    assert value(0.75, 0.5) == pytest.approx(0.999 * 0.75)  # G < 1: estimate 0
    assert value(0.3, float("nan")) == pytest.approx(0.3)  # no finite estimate: unchanged


def test_weak_forcing_falls_back_and_is_logged():
    x = lorenz_windows(8, 60)
    model = DSRModel(cell=PLRNN(latent_dim=3, seed=1), alpha=0.0, solver_options={"max_iter": 1})
    model.build(x.shape)
    ref = DSRModel(cell=PLRNN(latent_dim=3, seed=1), alpha=0.0, method="sequential")
    ref.build(x.shape)
    ref.set_weights(model.get_weights())
    np.testing.assert_allclose(to_np(model(x)), to_np(ref(x)), atol=1e-5, rtol=1e-5)
    model.compile(optimizer="adam")
    hist = model.fit(x, batch_size=8, epochs=1, verbose=0)
    assert hist.history["deer_fallbacks"][-1] == 1.0


def test_generate_matches_cell_loop():
    x = lorenz_windows(2, 20)
    model = DSRModel(hidden_dim=16, latent_dim=4, latent_init="learned")
    model.build(x.shape)
    obs, latent = model.generate(x[:, 0], 50, return_latent=True)
    z = to_np(model.gtf.initial_state(ops.convert_to_tensor(x[:, 0])))
    for t in range(50):
        z = to_np(model.cell(ops.convert_to_tensor(z)))
        np.testing.assert_allclose(latent[:, t], z, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(obs, latent[..., :3], atol=1e-6)
    assert model.generate(x[0, 0], 7).shape == (7, 3)


def test_generate_sees_new_weights():
    """The compiled free run is cached (JAX, TensorFlow); it must use the current weights."""
    x = lorenz_windows(2, 20)
    model = DSRModel(hidden_dim=16)
    model.build(x.shape)
    before = model.generate(x[:, 0], 30)
    model.set_weights([w * 0.5 for w in model.get_weights()])
    after = model.generate(x[:, 0], 30)
    z = to_np(model.gtf.initial_state(ops.convert_to_tensor(x[:, 0])))
    for t in range(30):
        z = to_np(model.cell(ops.convert_to_tensor(z)))
        np.testing.assert_allclose(after[:, t], z[:, :3], atol=1e-5, rtol=1e-5)
    assert np.abs(after - before).max() > 1e-3


@pytest.mark.parametrize("chunk", [16, 7])
def test_chunked_gtf_deer_matches_loop_and_bptt(chunk):
    """``solver_options={"chunk_size": C}`` (T = 79 not a multiple of C): the same
    predictions as the Python loop and the same gradients as sequential BPTT."""
    x = lorenz_windows(3, 80)
    grads = {}
    for method, options in (("deer", {"chunk_size": chunk}), ("sequential", {})):
        model = DSRModel(cell=make_cell("clipped", 4, seed=5), alpha=0.3, method=method,
                         latent_init="learned", solver_options=options)
        model.build(x.shape)
        if method == "sequential":
            model.set_weights(weights)
        else:
            assert model.gtf.chunk_size == chunk
        weights = model.get_weights()
        grads[method] = mse_value_and_grads(model, x)
        if method == "deer":
            pred = to_np(model(x))
    np.testing.assert_allclose(grads["deer"][0], grads["sequential"][0], rtol=1e-5)
    for g, r in zip(grads["deer"][1], grads["sequential"][1]):
        assert np.max(np.abs(g - r)) <= 1e-4 * max(np.max(np.abs(r)), 1e-8)
    model = DSRModel(cell=make_cell("clipped", 4, seed=5), alpha=0.3, latent_init="learned")
    model.build(x.shape)
    model.set_weights(weights)
    np.testing.assert_allclose(pred, to_np(model(x)), atol=2e-5, rtol=1e-4)


def test_chunk_size_is_saved(tmp_path):
    x = lorenz_windows(4, 40)
    model = DSRModel(hidden_dim=8, alpha=0.5, solver_options={"chunk_size": 10})
    model.build(x.shape)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.gtf.chunk_size == 10
    np.testing.assert_allclose(to_np(loaded(x)), to_np(model(x)), atol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        DSRModel(hidden_dim=8, solver_options={"chunk_size": 0}).build(x.shape)


def test_save_load_round_trip(tmp_path):
    x = lorenz_windows(16, 40)
    model = DSRModel(hidden_dim=8, regularizers=[], alpha=0.5)
    model.compile(optimizer="adam")
    model.fit(x, batch_size=8, epochs=1, verbose=0, callbacks=[ConstantAlpha(0.3)])
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.generate(x[:, 0], 100), loaded.generate(x[:, 0], 100))
    assert loaded.alpha == pytest.approx(0.3)
    np.testing.assert_allclose(to_np(loaded(x)), to_np(model(x)), atol=1e-6)


CROSS = """
import sys, numpy as np, keras, keras_dsr
m = keras.saving.load_model(sys.argv[1], safe_mode=True)
np.save(sys.argv[3], m.generate(np.load(sys.argv[2]), 200))
"""


@pytest.mark.slow
def test_saved_under_one_backend_loads_under_the_others(tmp_path):
    if BACKEND != "jax":
        pytest.skip("run once, from the JAX test session (it starts the other backends)")
    x = lorenz_windows(16, 40)
    model = DSRModel(hidden_dim=8)
    model.compile(optimizer="adam")
    model.fit(x, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    np.save(tmp_path / "x0.npy", x[:, 0])
    ref = model.generate(x[:, 0], 200)
    for other in ("tensorflow", "torch"):
        out = tmp_path / f"{other}.npy"
        env = dict(os.environ, KERAS_BACKEND=other)
        proc = subprocess.run([sys.executable, "-c", CROSS, path, str(tmp_path / "x0.npy"), str(out)],
                              env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        np.testing.assert_allclose(np.load(out), ref, atol=1e-4, rtol=1e-4)


def test_bad_input():
    model = DSRModel(hidden_dim=8)
    model.compile(optimizer="adam")
    x = lorenz_windows(4, 20)
    nan_at = r"DSRModel.fit: `x` contains NaN or inf \(first at index \(1, 3, 2\)"
    with pytest.raises(ValueError, match=nan_at):
        bad = x.copy()
        bad[1, 3, 2] = np.nan
        model.fit(bad, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="at least 2 time steps"):
        model.fit(x[:, :1], epochs=1, verbose=0)
    with pytest.raises(TypeError, match="floating-point"):
        model.fit(x.astype("int32"), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\[batch, time, features\]"):
        model.fit(x[0], epochs=1, verbose=0)
    model.fit(x, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="must have 3 features"):
        model.fit(x[..., :2], epochs=1, verbose=0)
    with pytest.raises(ValueError, match="`alpha`"):
        DSRModel(alpha=1.5)
    with pytest.raises(ValueError, match="`alpha`"):
        set_alpha(model, -0.1)
    with pytest.raises(ValueError, match="`x0`"):
        model.generate(np.zeros((2, 4), "float32"), 10)
    with pytest.raises(ValueError, match="generate: steps must be an integer >= 1"):
        model.generate(x[:, 0], 0)
    with pytest.raises(ValueError, match="N <= M"):
        DSRModel(latent_dim=2).build((None, 10, 3))
    with pytest.raises(ValueError, match="`forcing`"):
        DSRModel(hidden_dim=8, forcing="some").build((None, 10, 3))
    with pytest.raises(ValueError, match="`observation`"):
        DSRModel(hidden_dim=8, observation="linear").build((None, 10, 3))
