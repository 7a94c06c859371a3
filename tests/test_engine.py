"""The training engine: GTF schedules in the compiled step, in-step failure handling."""

import numpy as np
import pytest
import scipy.linalg

import keras
from keras import ops

from conftest import BACKEND, to_np
from keras_dsr.callbacks import AdaptiveGTF, ExponentialAlpha, LinearAlpha
from keras_dsr.cells import ShallowPLRNN
from keras_dsr.models import DSRModel
from keras_dsr.models.engine import TrainingDiverged
from keras_dsr.ops.norms import jacobian_norm_estimate
from keras_dsr.schedules import (AdaptiveForcing, ConstantForcing, ExponentialForcing,
                                 LinearForcing)
from keras_dsr.systems import simulate


def windows(n=32, t=60, seed=0):
    traj = simulate("lorenz63", 4000, seed=seed).x.astype("float32")
    starts = np.random.default_rng(seed).integers(0, len(traj) - t, n)
    return np.stack([traj[s:s + t] for s in starts])


class Sequence(keras.utils.PyDataset):
    """Fixed batches, in order (a NaN may be injected into one)."""

    def __init__(self, x, batch, nan_batch=None):
        super().__init__()
        self.x, self.batch, self.nan_batch = x, batch, nan_batch

    def __len__(self):
        return len(self.x) // self.batch

    def __getitem__(self, i):
        out = self.x[i * self.batch:(i + 1) * self.batch].copy()
        if i == self.nan_batch:
            out[0, 3, 0] = np.nan
        return out


class Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.logs = []

    def on_train_batch_end(self, batch, logs=None):
        self.logs.append({k: float(v) for k, v in logs.items()})


# ---------------------------------------------------------------- estimators
def numpy_jacobians(cell, zhat):
    """Jacobians of a ShallowPLRNN at ``zhat`` [B, T, M], from its weights, in numpy."""
    a, w1, w2 = (to_np(v).astype("float64") for v in (cell.a, cell.W1, cell.W2))
    h2 = to_np(cell.h2).astype("float64")
    d = (zhat @ w2.T + h2 > 0).astype("float64")                       # [B, T, L]
    return np.diag(a) + np.einsum("il,btl,lj->btij", w1, d, w2)


def numpy_estimate(jac, estimator):
    per_seq = []
    for seq in jac:
        if estimator == "product_upper_bound":
            per_seq.append(np.exp(np.mean([np.log(np.linalg.norm(j, 2)) for j in seq])))
        elif estimator == "explog_approx":
            mean_log = np.mean([scipy.linalg.logm(j) for j in seq], axis=0)
            per_seq.append(np.linalg.norm(scipy.linalg.expm(mean_log), 2))
        elif estimator == "arithmetic_mean":
            per_seq.append(np.linalg.norm(np.mean(seq, axis=0), 2))
        else:  # batch_maximum
            per_seq.append(max(np.linalg.norm(j, 2) for j in seq))
    return max(per_seq)


@pytest.mark.parametrize("estimator", ["product_upper_bound", "explog_approx",
                                       "arithmetic_mean", "batch_maximum"])
def test_estimators_match_numpy_and_scipy(estimator):
    rng = np.random.default_rng(3)
    jac = rng.normal(size=(3, 6, 4, 4)) * 0.6 + np.eye(4)
    got = float(to_np(jacobian_norm_estimate(ops.convert_to_tensor(jac.astype("float32")),
                                             estimator)))
    assert got == pytest.approx(numpy_estimate(jac, estimator), rel=2e-4)


@pytest.mark.parametrize("estimator", ["product_upper_bound", "explog_approx"])
def test_adaptive_alpha_sequence_equals_numpy_rule(estimator):
    """Same batches, same order, lr 0 (fixed weights): alpha per batch equals the
    lab's rule in numpy (estimate on the current batch's zhat_2..zhat_T before its
    forward pass, every k-th step)."""
    x = windows(40, 30)
    k, gamma, batch = 2, 0.7, 4
    cell = ShallowPLRNN(latent_dim=5, hidden_dim=12, seed=4)
    model = DSRModel(cell=cell, gtf=AdaptiveForcing(estimator, k=k, gamma=gamma))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    rec = Recorder()
    model.fit(Sequence(x, batch), epochs=1, verbose=0, shuffle=False, callbacks=[rec])
    alpha, expected = 1.0, []
    for step in range(1, len(x) // batch + 1):
        xb = x[(step - 1) * batch:step * batch].astype("float64")
        if step % k == 0:
            zhat = np.concatenate([xb[:, 1:], np.zeros(xb[:, 1:].shape[:2] + (2,))], -1)
            g = numpy_estimate(numpy_jacobians(cell, zhat), estimator)
            est = max(0.0, 1.0 - 1.0 / g)
            alpha = est if est > alpha else gamma * alpha + (1 - gamma) * est
        expected.append(alpha)
    np.testing.assert_allclose([r["alpha"] for r in rec.logs], expected, atol=2e-5)
    assert expected[-1] < 0.9  # the rule did move alpha


@pytest.mark.parametrize("observation", ["identity", "affine"])
def test_steps_per_execution_gives_the_same_training(observation):
    x = windows(64, 40)
    results = []
    for spe in (1, 8):
        keras.utils.set_random_seed(1)
        model = DSRModel(cell=ShallowPLRNN(latent_dim=5, hidden_dim=12, seed=2),
                         gtf=AdaptiveForcing(k=2, gamma=0.5), observation=observation)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), steps_per_execution=spe)
        hist = model.fit(Sequence(x, 4), epochs=2, verbose=0, shuffle=False)
        results.append((hist.history, model.get_weights(), model.alpha))
    (h1, w1, a1), (h8, w8, a8) = results
    for key in ("loss", "alpha", "gtf_norm"):
        np.testing.assert_allclose(h1[key], h8[key], rtol=1e-4, atol=1e-6)
    for u, v in zip(w1, w8):
        np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-6)
    assert a1 == pytest.approx(a8, abs=1e-6) and a1 < 1.0


def test_nonfinite_step_is_not_applied_and_counted():
    """A batch with a NaN (non-finite loss and gradients) changes nothing: training on
    [b0, NaN, b2, b3] equals training on [b0, b2, b3], and the step is counted."""
    x = windows(16, 40)
    runs = {}
    for name, data in (("with_nan", Sequence(x, 4, nan_batch=1)),
                       ("without", Sequence(np.delete(x, slice(4, 8), axis=0), 4))):
        model = DSRModel(cell=ShallowPLRNN(latent_dim=4, hidden_dim=8, seed=0),
                         gtf=ConstantForcing(0.3))
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        hist = model.fit(data, epochs=1, verbose=0, shuffle=False)
        runs[name] = (model.get_weights(), hist.history)
    for u, v in zip(runs["with_nan"][0], runs["without"][0]):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7)
    assert runs["with_nan"][1]["skipped_steps"] == [1.0]
    assert runs["without"][1]["skipped_steps"] == [0.0]
    np.testing.assert_allclose(runs["with_nan"][1]["loss"], runs["without"][1]["loss"],
                               rtol=1e-6)


def test_injected_nonfinite_gradient_leaves_weights_unchanged():
    """A loss whose value is finite but whose gradient is NaN: no update, counted,
    and past ``max_bad_steps`` training stops with TrainingDiverged."""
    x = windows(16, 40)

    @ops.custom_gradient
    def nan_gradient(x):  # the identity, whose gradient is NaN
        def grad(*args, upstream=None):
            if upstream is None:
                (upstream,) = args
            return ops.full_like(upstream, float("nan"))

        return x, grad

    def nan_gradient_loss(y_true, y_pred):
        return ops.mean((y_true - nan_gradient(y_pred)) ** 2)  # a finite value

    model = DSRModel(cell=ShallowPLRNN(latent_dim=4, hidden_dim=8, seed=0),
                     gtf=ConstantForcing(0.3), max_bad_steps=3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=nan_gradient_loss)
    model.build(x.shape)
    before = model.get_weights()
    hist = model.fit(Sequence(x[:12], 4), epochs=1, verbose=0, shuffle=False)
    assert hist.history["skipped_steps"] == [3.0]
    for u, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(TrainingDiverged, match="4 consecutive"):
        model.fit(Sequence(x, 4), epochs=1, verbose=0, shuffle=False)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_finite_divergence_is_detected():
    x = windows(64, 40)
    model = DSRModel(cell=ShallowPLRNN(latent_dim=3, hidden_dim=16, seed=0),
                     gtf=ConstantForcing(0.0), max_bad_steps=5)
    model.compile(optimizer=keras.optimizers.SGD(1e3))
    with pytest.raises(TrainingDiverged):
        model.fit(Sequence(x, 4), epochs=5, verbose=0, shuffle=False)
    assert all(np.isfinite(w).all() for w in model.get_weights())


@pytest.mark.parametrize("callback, schedule", [
    (AdaptiveGTF(k=2, gamma=0.6), AdaptiveForcing(k=2, gamma=0.6)),
    (LinearAlpha(1.0, 0.2, decay_steps=5), LinearForcing(1.0, 0.2, decay_steps=5)),
    (ExponentialAlpha(0.9, 0.1, 0.5, 2), ExponentialForcing(0.9, 0.1, 0.5, 2)),
])
def test_callbacks_install_the_same_schedule(callback, schedule):
    x = windows(32, 30)
    out = []
    for kwargs, cbs in (({"gtf": schedule}, []), ({"gtf": ConstantForcing(0.5)}, [callback])):
        model = DSRModel(cell=ShallowPLRNN(latent_dim=3, hidden_dim=8, seed=1), **kwargs)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        rec = Recorder()
        model.fit(Sequence(x, 4), epochs=1, verbose=0, shuffle=False, callbacks=cbs + [rec])
        out.append(([r["alpha"] for r in rec.logs], model.get_weights()))
    np.testing.assert_allclose(out[0][0], out[1][0], atol=1e-6)
    for u, v in zip(out[0][1], out[1][1]):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)


def test_saved_model_holds_schedule_and_alpha_not_diagnostics(tmp_path):
    x = windows(16, 30)
    model = DSRModel(cell=ShallowPLRNN(latent_dim=5, hidden_dim=8, seed=1),
                     gtf=AdaptiveForcing(k=1, gamma=0.5), observation="affine")
    model.compile(optimizer="adam")
    model.fit(Sequence(x, 4), epochs=1, verbose=0, shuffle=False)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.schedule == AdaptiveForcing(k=1, gamma=0.5)
    assert loaded.alpha == pytest.approx(model.alpha)
    names = [v.path for v in loaded.weights]
    assert not any(w in n for n in names for w in ("iterations", "fell_back", "jacobian_norm"))
    np.testing.assert_allclose(loaded.generate(x[:, 0], 50), model.generate(x[:, 0], 50),
                               atol=1e-6)
