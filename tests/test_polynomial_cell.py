"""PolynomialFlow against independent references: a numpy Runge-Kutta loop, finite
differences, closed forms (linear fields: the Taylor polynomial of expm; Lorenz-63's
own field: scipy's flow map), and its behaviour in GTF-DEER training.

Run once per backend: KERAS_BACKEND=jax|tensorflow|torch pytest tests/test_polynomial_cell.py
"""

from math import comb

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

import keras_dsr  # noqa: F401  (selects the default backend before keras)
import keras
from keras import ops

from conftest import np_jacobian_fd, value_and_grads

from keras_dsr.cells import DSRCell, PolynomialFlow, monomial_exponents
from keras_dsr.models import DSRModel
from keras_dsr.systems import simulate

M = 3


def np_field(w, z, degree, bound=None):
    """f(z) = W (phi(z) / s), s the Gaussian RMS of each monomial (independent formula)."""
    if bound is not None:
        z = np.clip(z, -bound, bound)
    exps = monomial_exponents(z.shape[-1], degree)
    phi = np.prod(z[..., None, :] ** exps, axis=-1)  # [..., P]
    dfact = {0: 1.0, 1: 1.0, 2: 3.0, 3: 15.0, 4: 105.0}   # (2e - 1)!!
    s = np.sqrt([np.prod([dfact[int(e)] for e in row]) for row in exps])
    return (phi / s) @ w.T


def np_step(w, z, degree, integrator, substeps, bound=None):
    """Plain numpy Runge-Kutta / Euler loop (float64), the reference map."""
    z = np.asarray(z, np.float64)
    h = 1.0 / substeps
    for _ in range(substeps):
        k1 = np_field(w, z, degree, bound)
        if integrator == "euler":
            z = z + h * k1
            continue
        k2 = np_field(w, z + h / 2 * k1, degree, bound)
        k3 = np_field(w, z + h / 2 * k2, degree, bound)
        k4 = np_field(w, z + h * k3, degree, bound)
        z = z + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return z


def weights(cell):
    return np.asarray(ops.convert_to_numpy(cell.W), np.float64)


@pytest.mark.parametrize("m, degree", [(1, 1), (2, 2), (3, 3), (4, 2), (2, 4)])
def test_monomials_are_all_of_them_once(m, degree):
    exps = monomial_exponents(m, degree)
    assert exps.shape == (comb(m + degree, degree), m)
    assert len({tuple(e) for e in exps}) == len(exps)
    assert exps.min() >= 0 and exps.sum(1).max() == degree
    assert list(exps.sum(1)) == sorted(exps.sum(1))      # ordered by total degree
    assert exps[0].sum() == 0                             # the constant comes first


@pytest.mark.parametrize("integrator, substeps, degree", [
    ("rk4", 1, 3), ("rk4", 3, 2), ("euler", 1, 3), ("euler", 4, 3)])
def test_map_and_jacobian_match_numpy_reference(integrator, substeps, degree):
    cell = PolynomialFlow(M, degree=degree, integrator=integrator, substeps=substeps,
                          init_scale=0.05, seed=1)
    z = np.random.default_rng(0).normal(size=(2, 5, M)).astype("float32")
    out = ops.convert_to_numpy(cell(z))
    jac = ops.convert_to_numpy(cell.jacobian(z))
    diag = ops.convert_to_numpy(cell.jacobian_diagonal(z))
    w = weights(cell)
    z64 = z.astype(np.float64)
    ref = np_step(w, z64, degree, integrator, substeps)
    ref_j = np_jacobian_fd(lambda v: np_step(w, v, degree, integrator, substeps), z64)
    assert out.shape == (2, 5, M) and jac.shape == (2, 5, M, M) and diag.shape == (2, 5, M)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jac, ref_j, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(diag, np.diagonal(ref_j, axis1=-2, axis2=-1), rtol=1e-4, atol=1e-5)


def _set_linear_field(cell, a):
    """W such that f(z) = A z (columns 1..M of phi are z_1..z_M)."""
    w = np.zeros((cell.latent_dim, cell.num_features), "float32")
    w[:, 1:1 + cell.latent_dim] = a          # the linear monomials have scale 1
    cell.set_weights([w])


def test_linear_field_closed_forms():
    """f(z) = A z: one RK4 step is the degree-4 Taylor polynomial of expm(A); many
    substeps converge to expm(A) itself (map and Jacobian alike)."""
    rng = np.random.default_rng(2)
    a = 0.4 * rng.normal(size=(M, M))
    z = rng.normal(size=(4, M)).astype("float32")
    taylor = sum(np.linalg.matrix_power(a, k) / np.prod(range(1, k + 1)) for k in range(5))
    one = PolynomialFlow(M, degree=2)
    one.build((M,))
    _set_linear_field(one, a)
    np.testing.assert_allclose(ops.convert_to_numpy(one(z)), z @ taylor.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(one.jacobian(z)),
                               np.broadcast_to(taylor, (4, M, M)), rtol=1e-5, atol=1e-6)
    many = PolynomialFlow(M, degree=1, substeps=20)
    many.build((M,))
    _set_linear_field(many, a)
    expm = scipy.linalg.expm(a)
    np.testing.assert_allclose(ops.convert_to_numpy(many(z)), z @ expm.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.convert_to_numpy(many.jacobian(z)),
                               np.broadcast_to(expm, (4, M, M)), rtol=1e-5, atol=1e-5)


def test_lorenz63_field_is_in_the_model_class():
    """Lorenz-63's field written into W: the cell is scipy's flow map over dt = 0.01."""
    dt, (s, r, b) = 0.01, (10.0, 28.0, 8.0 / 3.0)
    exps = [tuple(e) for e in monomial_exponents(3, 3)]
    col = {e: i for i, e in enumerate(exps)}
    w = np.zeros((3, len(exps)))
    w[0, col[(1, 0, 0)]], w[0, col[(0, 1, 0)]] = -s, s
    w[1, col[(1, 0, 0)]], w[1, col[(0, 1, 0)]], w[1, col[(1, 0, 1)]] = r, -1.0, -1.0
    w[2, col[(1, 1, 0)]], w[2, col[(0, 0, 1)]] = 1.0, -b
    cell = PolynomialFlow(3, degree=3, substeps=2)
    cell.build((3,))
    cell.set_weights([(dt * w * cell.feature_scales).astype("float32")])
    z = np.array([[1.0, 2.0, 20.0], [-5.0, -7.0, 25.0]])

    def flow(z0):
        rhs = lambda t, v: [s * (v[1] - v[0]), v[0] * (r - v[2]) - v[1], v[0] * v[1] - b * v[2]]
        return scipy.integrate.solve_ivp(rhs, (0, dt), z0, method="DOP853",
                                         rtol=1e-12, atol=1e-12).y[:, -1]

    expected = np.stack([flow(v) for v in z])
    got = ops.convert_to_numpy(cell(z.astype("float32")))
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-4)


def test_fit_field_recovers_lorenz63_coefficients():
    """Least squares on finite differences of a simulated (unstandardised) Lorenz-63
    trajectory gives its field: dt * (sigma, rho, beta terms), every other monomial ~0."""
    dt, (s, r, b) = 0.01, (10.0, 28.0, 8.0 / 3.0)
    x = simulate("lorenz63", 20_000, seed=0, standardize=False).clean
    cell = PolynomialFlow(3, degree=3)
    resid = cell.fit_field([x[:10_000], x[10_000:]])
    coef = weights(cell) / cell.feature_scales / dt           # [3, P] per time unit
    exps = [tuple(e) for e in monomial_exponents(3, 3)]
    expected = np.zeros_like(coef)
    for i, e, v in [(0, (1, 0, 0), -s), (0, (0, 1, 0), s), (1, (1, 0, 0), r),
                    (1, (0, 1, 0), -1.0), (1, (1, 0, 1), -1.0), (2, (1, 1, 0), 1.0),
                    (2, (0, 0, 1), -b)]:
        expected[i, exps.index(e)] = v
    np.testing.assert_allclose(coef, expected, atol=0.02)
    assert resid.shape == (3,) and np.all(resid < 1e-3)
    with pytest.raises(ValueError, match="`x`"):
        cell.fit_field(x[:, :2])
    with pytest.raises(ValueError, match="`x`"):
        cell.fit_field(x[:4])
    with pytest.raises(ValueError, match="ridge"):
        cell.fit_field(x, ridge=-1.0)


def test_fit_field_ridge_is_the_tikhonov_solution():
    """ridge > 0: W^T = (Phi^T Phi + ridge I)^-1 Phi^T D, with Phi the scaled features
    and D the fourth-order differences (written out here independently)."""
    x = simulate("lorenz63", 3_000, seed=1).x.astype(np.float64)
    cell = PolynomialFlow(3, degree=2)
    cell.fit_field(x, ridge=0.5)
    d = (x[:-4] - 8 * x[1:-3] + 8 * x[3:-1] - x[4:]) / 12.0
    xc = x[2:-2]
    cols = [np.ones(len(xc))] + [xc[:, i] for i in range(3)]
    cols += [xc[:, i] * xc[:, j] / (np.sqrt(3.0) if i == j else 1.0)
             for i in range(3) for j in range(i, 3)]
    phi = np.stack(cols, axis=1)
    expected = np.linalg.solve(phi.T @ phi + 0.5 * np.eye(phi.shape[1]), phi.T @ d).T
    np.testing.assert_allclose(weights(cell), expected, rtol=1e-4, atol=1e-6)
    unridged = PolynomialFlow(3, degree=2)
    unridged.fit_field(x)
    assert np.linalg.norm(weights(cell)) < np.linalg.norm(weights(unridged))


def test_feature_scales_are_gaussian_rms():
    """Each scaled monomial has unit mean square on independent standard-normal data."""
    from keras_dsr.cells.polynomial import feature_scales

    exps = monomial_exponents(3, 3)
    z = np.random.default_rng(11).normal(size=(400_000, 3))
    phi = np.prod(z[:, None, :] ** exps, axis=-1) / feature_scales(exps)
    np.testing.assert_allclose((phi ** 2).mean(0), 1.0, rtol=0.05)


def test_bound_clips_the_state_seen_by_the_field():
    """bound=B: f(clip(z, -B, B)); the same map inside the box, Jacobian columns of
    clipped coordinates zero, and a bounded step from a huge state (no overflow)."""
    cell = PolynomialFlow(M, init_scale=0.05, bound=1.5, seed=12)
    free = PolynomialFlow(M, init_scale=0.05, seed=12)
    rng = np.random.default_rng(13)
    z = rng.uniform(-3.0, 3.0, size=(40, M))
    z = z[np.all(np.abs(np.abs(z) - 1.5) > 0.05, axis=1)].astype("float32")  # off the kinks
    got = ops.convert_to_numpy(cell(z))
    w = weights(cell)
    np.testing.assert_allclose(got, np_step(w, z.astype(np.float64), 3, "rk4", 1, bound=1.5),
                               rtol=1e-5, atol=1e-5)
    ref_j = np_jacobian_fd(lambda v: np_step(w, v, 3, "rk4", 1, bound=1.5), z)
    np.testing.assert_allclose(ops.convert_to_numpy(cell.jacobian(z)), ref_j, rtol=1e-4, atol=1e-5)
    small = (0.1 * z).astype("float32")          # inside the box: same as unbounded
    np.testing.assert_allclose(ops.convert_to_numpy(cell(small)),
                               ops.convert_to_numpy(free(small)), rtol=1e-6, atol=1e-7)
    huge = np.full((1, M), 1e6, "float32")
    step = ops.convert_to_numpy(cell(huge)) - huge
    assert np.all(np.isfinite(step)) and np.abs(step).max() < 1e3


def test_input_term_and_interface():
    cell = PolynomialFlow(M, input_dim=2, init_scale=0.1, seed=3)
    z = np.random.default_rng(4).normal(size=(6, M)).astype("float32")
    u = np.random.default_rng(5).normal(size=(6, 2)).astype("float32")
    base = ops.convert_to_numpy(cell(z))
    c = ops.convert_to_numpy(cell.C)
    np.testing.assert_allclose(ops.convert_to_numpy(cell(z, u)), base + u @ c, rtol=1e-5, atol=1e-6)
    assert isinstance(cell, DSRCell) and cell.state_size == M and cell.num_features == 20
    np.testing.assert_array_equal(cell.exponents, monomial_exponents(M, 3))


def test_seed_and_init_scale():
    a = PolynomialFlow(M, seed=7, init_scale=0.01)
    b = PolynomialFlow(M, seed=7, init_scale=0.01)
    for c in (a, b):
        c.build((M,))
    np.testing.assert_array_equal(weights(a), weights(b))
    assert 0.003 < weights(a).std() < 0.03
    zero = PolynomialFlow(M, init_scale=0.0)
    zero.build((M,))
    z = np.ones((2, M), "float32")
    np.testing.assert_array_equal(ops.convert_to_numpy(zero(z)), z)   # identity map


def test_config_and_keras_file_round_trip(tmp_path):
    cell = PolynomialFlow(M, degree=2, integrator="euler", substeps=3, init_scale=0.2,
                          bound=4.0, seed=4, name="poly")
    model = keras.Sequential([keras.Input((M,)), cell])
    cfg = cell.get_config()
    assert PolynomialFlow.from_config(cfg).get_config() == cfg
    z = np.random.default_rng(6).normal(size=(5, M)).astype("float32")
    expected = ops.convert_to_numpy(model(z))
    model.save(tmp_path / "poly.keras")
    loaded = keras.saving.load_model(tmp_path / "poly.keras")
    assert isinstance(loaded.layers[0], PolynomialFlow)
    assert loaded.layers[0].get_config() == cfg
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(z)), expected)


@pytest.mark.parametrize("kwargs, arg", [
    ({"degree": 0}, "degree"), ({"degree": 2.0}, "degree"), ({"integrator": "rk45"}, "integrator"),
    ({"substeps": 0}, "substeps"), ({"init_scale": -1.0}, "init_scale"),
    ({"init_scale": float("nan")}, "init_scale"), ({"bound": 0.0}, "bound"),
    ({"bound": float("inf")}, "bound"), ({"input_dim": -1}, "input_dim")])
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        PolynomialFlow(M, **kwargs)


def test_gtf_deer_loss_and_gradients_equal_sequential_bptt():
    """GTF-DEER on the polynomial cell: the loss and gradients of the sequential loop."""
    x = simulate("lorenz63", 400, seed=0).x[:320].reshape(4, 80, M).astype("float32")
    grads, start = {}, None
    for method in ("deer", "sequential"):
        model = DSRModel(cell=PolynomialFlow(M, init_scale=0.005, seed=9), alpha=0.25,
                         method=method)
        model.build(x.shape)
        if start is None:
            start = model.get_weights()
        model.set_weights(start)
        fixed = [v.value for v in model.non_trainable_variables]
        target = ops.convert_to_tensor(x[:, 1:])

        def loss(*trainable):
            pred, _ = model.stateless_call(list(trainable), fixed, ops.convert_to_tensor(x))
            return ops.mean((pred - target) ** 2)

        grads[method] = value_and_grads(loss, [v.value for v in model.trainable_variables])
    np.testing.assert_allclose(grads["deer"][0], grads["sequential"][0], rtol=1e-5)
    for g, r in zip(grads["deer"][1], grads["sequential"][1]):
        assert np.max(np.abs(g - r)) <= 1e-4 * max(np.max(np.abs(r)), 1e-8)


def test_parameter_bound_estimator_refuses_the_polynomial_cell():
    from keras_dsr.layers.gtf_deer import parameter_norm_bound

    cell = PolynomialFlow(M)
    cell.build((M,))
    with pytest.raises(ValueError, match="parameter_bound"):
        parameter_norm_bound(cell)
