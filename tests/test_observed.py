"""Observation-space evaluation: forced warm-up against plain numpy loops and a known truth."""

import keras
import numpy as np
import pytest

from keras_dsr import measures
from keras_dsr import observed as O
from keras_dsr.cells import PLRNN
from keras_dsr.models import DSRModel


def _model(m, n, observation="identity", seed=0):
    """A PLRNN model with weights set by hand; returns (model, numpy weights)."""
    rng = np.random.default_rng(seed)
    model = DSRModel(cell=PLRNN(m, seed=seed), observation=observation,
                     use_bias=observation == "affine")
    model.build((None, 10, n))
    a = rng.uniform(0.3, 0.8, m)
    W = 0.4 * rng.standard_normal((m, m)) * (1 - np.eye(m))
    h = 0.1 * rng.standard_normal(m)
    model.cell.a.assign(a.astype("float32"))
    model.cell.W.assign(W.astype("float32"))
    model.cell.h.assign(h.astype("float32"))
    w = {"a": a, "W": W, "h": h}
    if observation == "affine":
        B = rng.standard_normal((n, m))
        b = rng.standard_normal(n)
        model.gtf.kernel.assign(B.T.astype("float32"))
        model.gtf.bias.assign(b.astype("float32"))
        w.update(B=B, b=b)
    return model, w


def _F(w, z):
    return w["a"] * z + np.maximum(z, 0) @ w["W"].T + w["h"]


def _loop_warm_start(w, x, n, alpha):
    """The forced warm-up written out: z_t = F(z) + alpha P (x_t - O(F(z)))."""
    m = w["a"].size
    if "B" in w:
        P = np.linalg.pinv(w["B"])                        # [M, N]
        obs = lambda z: w["B"] @ z + w["b"]                # noqa: E731
        z = P @ (x[0] - w["b"])
    else:
        P = np.eye(m)[:, :n]
        obs = lambda z: z[:n]                              # noqa: E731
        z = np.concatenate([x[0], np.zeros(m - n)])
    for t in range(1, len(x)):
        z = _F(w, z)
        z = z + alpha * P @ (x[t] - obs(z))
    return z


@pytest.mark.parametrize("observation", ["identity", "affine"])
@pytest.mark.parametrize("alpha", [1.0, 0.4])
def test_warm_start_matches_a_plain_loop(observation, alpha, rng):
    m, n = 5, 2
    model, w = _model(m, n, observation)
    x = rng.standard_normal((3, 12, n))
    z = O.warm_start(model, x, alpha=alpha)
    ref = np.stack([_loop_warm_start(w, xi, n, alpha) for xi in x])
    np.testing.assert_allclose(z, ref, rtol=1e-4, atol=1e-4)
    # one window [W, N] gives [M]; W = 1 is the model's own init(x_0)
    np.testing.assert_allclose(O.warm_start(model, x[0], alpha=alpha), ref[0], atol=1e-4)
    np.testing.assert_allclose(O.warm_start(model, x[:, :1]),
                               np.stack([_loop_warm_start(w, xi[:1], n, 1.0) for xi in x]),
                               atol=1e-5)


def _contracting_truth(steps):
    """A PLRNN that stays in its linear region (all units > 0): ``z' = A (z - c) + c``
    with A similar to a rotation (period 37 steps, on the observed units 0, 1 and
    the unobserved 2, 3 alike) plus decaying modes 0.5 and -0.3. The unobserved block
    of A has spectral radius < 0.5, so a warm-up that sets units 0, 1 to the data
    synchronises units 2, 3 at that rate. Returns (model, weights, latent [steps, 4])."""
    th = 2 * np.pi / 37
    S = np.eye(4) + 0.4 * np.random.default_rng(1).standard_normal((4, 4))
    lam = np.zeros((4, 4))
    lam[:2, :2] = [[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]
    lam[2, 2], lam[3, 3] = 0.5, -0.3
    A = S @ lam @ np.linalg.inv(S)
    assert max(abs(np.linalg.eigvals(A[2:, 2:]))) < 0.5 and abs(A[:2, 2:]).max() > 0.5
    c = 5.0 * np.ones(4)
    model, w = _model(4, 2)
    w.update(a=np.diag(A).copy(), W=A - np.diag(np.diag(A)), h=c - A @ c)
    for k in ("a", "W", "h"):
        getattr(model.cell, k).assign(w[k].astype("float32"))
    z, traj = c + S @ np.array([1.0, 0.0, 0.5, 0.5]), []
    for _ in range(steps):
        z = _F(w, z)
        traj.append(z)
    traj = np.array(traj)
    assert traj.min() > 1.0  # linear region throughout
    return model, w, traj


def test_warm_start_recovers_the_unobserved_states_of_the_generating_model():
    model, w, z = _contracting_truth(200)
    x = z[:, :2]
    est = O.warm_start(model, x[:60])
    np.testing.assert_allclose(est, z[59], atol=1e-4)
    # init(x) = [x, 0] is far off in the unobserved units
    assert np.abs(z[59, 2:]).max() > 0.1
    # so PE(n) is ~0 from warm-started states, and not from init(x_t)
    pe_warm = O.prediction_error_observed(model, x, n=5, warmup=40)
    pe_cold = measures.prediction_error(model, x, n=5)
    assert pe_warm < 1e-8 and pe_cold > 1e-3
    # PE on one channel: the numpy loop's prediction from the true states
    starts = np.arange(39, 200 - 5)
    pred = z[starts].copy()
    for _ in range(5):
        pred = _F(w, pred)
    ref = np.mean((pred[:, 1] - x[starts + 5, 1]) ** 2)
    assert ref < 1e-10
    assert O.prediction_error_observed(model, x, n=5, warmup=40, channels=[1]) < 1e-8


def test_evaluate_observed_scores_the_chosen_channels_against_a_loop():
    model, w, z = _contracting_truth(400)
    x = z[:, :2]
    warm = 30
    gen = O.generate_observed(model, x, warmup=warm)
    # reference: from the true state at the end of the warm-up, run the numpy map
    T, drop = x.shape[0], int(round(0.25 * x.shape[0]))
    s, ref = z[warm - 1], []
    for _ in range(T + drop):
        s = _F(w, s)
        ref.append(s[:2])
    ref = np.array(ref)[drop:]
    np.testing.assert_allclose(gen, ref, atol=1e-4)
    scores = O.evaluate_observed(model, x, ("dh", "dstsp", "pe"), channels=[1], warmup=warm,
                                 pe_steps=3)
    assert list(scores) == ["dh", "dstsp", "pe"]
    # the scores are those of channel 1 alone (histograms are sensitive to the 1e-5
    # float32 differences of points on bin edges, so they are computed on `gen`,
    # checked against the loop above)
    assert scores["dstsp"] == pytest.approx(
        measures.state_space_divergence(x[:, [1]], gen[:, [1]]), rel=1e-6)
    assert scores["dh"] == pytest.approx(
        measures.power_spectrum_distance(x[:, [1]], ref[:, [1]]), rel=1e-3, abs=1e-6)
    assert scores["dstsp"] != pytest.approx(
        measures.state_space_divergence(x, gen), rel=1e-3)
    assert scores["pe"] < 1e-8


def test_lyapunov_from_the_warm_started_state():
    model, w, z = _contracting_truth(100)
    lam = O.evaluate_observed(model, z[:, :2], ["lyap"], warmup=20, dt=0.5,
                              lyap_steps=400)["lyap"]
    # reference: Benettin on the numpy map's Jacobians along the same run
    s = z[19]
    jac = []
    for _ in range(1000 + 400 + 1):
        s = _F(w, s)
        jac.append(np.diag(w["a"]) + w["W"] * (s > 0)[None, :])
    ref = measures.lyapunov_max_jacobians(np.array(jac[:-1]), dt=0.5, transient=1000)
    assert lam == pytest.approx(ref, abs=1e-3)


def test_bad_input():
    model, _ = _model(3, 1)
    x = np.zeros((50, 1))
    with pytest.raises(ValueError, match="warmup"):
        O.generate_observed(model, x, warmup=0)
    with pytest.raises(ValueError, match="warmup"):
        O.generate_observed(model, x, warmup=50)
    with pytest.raises(ValueError, match="alpha"):
        O.warm_start(model, x, alpha=1.5)
    with pytest.raises(ValueError, match=r"x_warm must have shape \[W, 1\]"):
        O.warm_start(model, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="channels"):
        O.evaluate_observed(model, x, channels=[1])
    with pytest.raises(ValueError, match="Unknown measure"):
        O.evaluate_observed(model, x, measures=["kl"])
    with pytest.raises(TypeError, match="DSRModel"):
        O.warm_start(object(), x)
    unbuilt = DSRModel(cell=PLRNN(3))
    with pytest.raises(ValueError, match="not built"):
        O.warm_start(unbuilt, x)


@pytest.mark.slow
def test_reconstruct_observed_measures_train_test_and_floor_data_alike():
    from conftest import BACKEND
    from keras_dsr.recipes import Recipe
    from keras_dsr.reconstruction import simulate_split

    if BACKEND != "jax":
        pytest.skip("trains once, in the JAX session")
    recipe = Recipe(seq_len=50, steps=2, steps_per_epoch=2, hidden_dim=8, train_length=600,
                    steps_per_execution=1, seed=4)
    res, prep = O.reconstruct_observed("lorenz63", recipe, observe="x", embed="2:5",
                                       noise=0.1, test_length=400, warmup=20, verbose=0,
                                       channels="recorded")
    tr, te, other = simulate_split("lorenz63", 600, 400, seed=4, n_extra=1)
    noisy = tr.x + 0.1 * np.random.default_rng(4).standard_normal(tr.x.shape)
    lagged = lambda x: np.stack([x[:-5, 0], x[5:, 0]], axis=1)  # noqa: E731
    np.testing.assert_allclose(prep.x, lagged(noisy), rtol=1e-5, atol=1e-5)
    assert res.recipe.latent_dim is None and res.model.cell.latent_dim == 2
    assert res.generated.shape == (395, 2) and prep.channels == (0,)
    floor = {"dstsp": measures.state_space_divergence(lagged(te.x)[:, :1], lagged(other.x)[:, :1]),
             "dh": measures.power_spectrum_distance(lagged(te.x)[:, :1], lagged(other.x)[:, :1])}
    assert res.floor == pytest.approx(floor, rel=1e-6)
    assert set(res.scores) == {"dstsp", "dh"}


def test_reconstruct_observed_refuses_a_measurement_before_training():
    """Options that do not fit the data are a MeasurementError (a ValueError), raised
    before any training; the command turns exactly these into usage errors."""
    from keras_dsr.recipes import Recipe

    recipe = Recipe(latent_dim=2, seq_len=50, steps=2, steps_per_epoch=2, train_length=600)
    with pytest.raises(O.MeasurementError, match=r"latent \(M = 2\)"):
        O.reconstruct_observed("lorenz63", recipe, observe="x", embed="3:5", test_length=400,
                               verbose=0, callbacks=[_FailIfTrained()])
    assert issubclass(O.MeasurementError, ValueError)


class _FailIfTrained(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        raise AssertionError("training started")
