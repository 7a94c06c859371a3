"""DEER / quasi-DEER / damped Newton against the sequential loop, on every backend."""

import numpy as np
import pytest
from keras import ops
from scipy.integrate import solve_ivp

from conftest import BACKEND, compiled, to_np, value_and_grads
from keras_dsr.ops import batch_jacobian, deer_solve, sequential_solve

METHODS = ["deer", "quasi", "damped"]


def python_loop(step, z0, inputs, t):
    """Plain Python loop over t, the independent reference."""
    z, out = z0, []
    for i in range(t):
        z = step(z, None if inputs is None else inputs[..., i, :])
        out.append(z)
    return np.stack(out, axis=-2)


# A contractive map with external inputs: z' = tanh(z W + u C).
def contractive_params(rng, m=4, k=2):
    w = (rng.normal(size=(m, m)) * 0.4).astype("float32")
    c = rng.normal(size=(k, m)).astype("float32")
    return w, c


def contractive_step(w, c):
    w, c = ops.convert_to_tensor(w), ops.convert_to_tensor(c)
    return lambda z, u: ops.tanh(ops.matmul(z, w) + ops.matmul(u, c))


def contractive_numpy(w, c):
    return lambda z, u: np.tanh(z @ w + u @ c)


# A shallow PLRNN (docs/method.md §Models), GTF-forced with the data as input (docs/method.md §GTF-DEER):
# z' = (1 - alpha) [a*z + W1 relu(W2 z + h2) + h1] + alpha * zhat.
def shplrnn_params(rng, m=3, hidden=16):
    return dict(
        a=rng.uniform(0.5, 0.95, size=(m,)).astype("float32"),
        w1=(rng.normal(size=(hidden, m)) / (2.0 * np.sqrt(hidden))).astype("float32"),
        w2=(rng.normal(size=(m, hidden)) / np.sqrt(m)).astype("float32"),
        h1=(0.1 * rng.normal(size=(m,))).astype("float32"),
        h2=(0.5 * rng.normal(size=(hidden,))).astype("float32"),
    )


def shplrnn_step(a, w1, w2, h1, h2, alpha=0.2):
    a, w1, w2, h1, h2 = (ops.convert_to_tensor(x) for x in (a, w1, w2, h1, h2))

    def step(z, zhat):
        free = a * z + ops.matmul(ops.relu(ops.matmul(z, w2) + h2), w1) + h1
        return (1.0 - alpha) * free + alpha * zhat

    return step


def shplrnn_jacobian(a, w1, w2, h1, h2, alpha=0.2):
    a, w1, w2, h1, h2 = (ops.convert_to_tensor(x) for x in (a, w1, w2, h1, h2))

    def jac(z, zhat):
        mask = ops.cast(ops.matmul(z, w2) + h2 > 0, z.dtype)  # [..., L]
        # d/dz_j of sum_l W1[l, i] relu(...)_l = sum_l W1[l,i] mask_l W2[j,l]
        inner = ops.einsum("li,...l,jl->...ij", w1, mask, w2)
        eye = ops.eye(a.shape[0], dtype=z.dtype)
        return (1.0 - alpha) * (eye * a + inner)

    return jac


def shplrnn_numpy(p, alpha=0.2):
    relu = lambda x: np.maximum(x, 0)
    return lambda z, zhat: (1 - alpha) * (
        p["a"] * z + relu(z @ p["w2"] + p["h2"]) @ p["w1"] + p["h1"]
    ) + alpha * zhat


@pytest.mark.parametrize("method", METHODS)
def test_contractive_values_match_loop(rng, method):
    w, c = contractive_params(rng)
    u = rng.normal(size=(3, 200, 2)).astype("float32")
    z0 = rng.normal(size=(3, 4)).astype("float32")
    run = compiled(lambda z0, u: deer_solve(contractive_step(w, c), z0, u, method=method))
    z, info = run(z0, u)
    ref = python_loop(contractive_numpy(w, c), z0, u, 200)
    np.testing.assert_allclose(to_np(z), ref, atol=1e-5, rtol=0)
    assert bool(to_np(info["converged"])) and not bool(to_np(info["fell_back"]))
    assert 1 <= int(to_np(info["iterations"])) <= 30
    seq = to_np(compiled(lambda z0, u: sequential_solve(contractive_step(w, c), z0, u))(z0, u))
    np.testing.assert_allclose(seq, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("analytic", [True, False])
def test_shplrnn_values_match_loop(rng, method, analytic):
    p = shplrnn_params(rng)
    zhat = rng.normal(size=(2, 300, 3)).astype("float32")
    z0 = zhat[:, 0]
    jac = shplrnn_jacobian(**p) if analytic else None
    run = compiled(
        lambda z0, zhat: deer_solve(
            shplrnn_step(**p), z0, zhat, jacobian_fn=jac, method=method, initial_guess=zhat
        )
    )
    z, info = run(z0, zhat)
    ref = python_loop(shplrnn_numpy(p), z0, zhat, 300)
    np.testing.assert_allclose(to_np(z), ref, atol=1e-5, rtol=1e-5)
    assert bool(to_np(info["converged"]))


def _relative_error(got, ref):
    return np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_shplrnn_gradients_match_bptt(rng, method):
    p = shplrnn_params(rng)
    zhat = rng.normal(size=(2, 120, 3)).astype("float32")
    z0 = zhat[:, 0] + 0.1
    weights = rng.normal(size=zhat.shape).astype("float32")

    def loss(solver):
        def fn(a, w1, w2, h1, h2, z0, zhat):
            step = shplrnn_step(a, w1, w2, h1, h2)
            if solver == "bptt":
                z = sequential_solve(step, z0, zhat)
            else:
                jac = shplrnn_jacobian(a, w1, w2, h1, h2)
                z, _ = deer_solve(step, z0, zhat, jacobian_fn=jac, method=solver, initial_guess=zhat)
            return ops.sum(z * ops.convert_to_tensor(weights))

        return fn

    args = [p["a"], p["w1"], p["w2"], p["h1"], p["h2"], z0, zhat]
    v_ref, g_ref = value_and_grads(loss("bptt"), args)
    v, g = value_and_grads(loss(method), args)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    for name, got, ref in zip(["a", "w1", "w2", "h1", "h2", "z0", "zhat"], g, g_ref):
        assert _relative_error(got, ref) < 1e-4, (name, _relative_error(got, ref))


def test_contractive_gradients_autodiff_jacobian(rng):
    w, c = contractive_params(rng)
    u = rng.normal(size=(2, 150, 2)).astype("float32")
    z0 = rng.normal(size=(2, 4)).astype("float32")
    weights = rng.normal(size=(2, 150, 4)).astype("float32")

    def loss(seq):
        def fn(w, c, z0, u):
            step = contractive_step(w, c)
            z = sequential_solve(step, z0, u) if seq else deer_solve(step, z0, u)[0]
            return ops.sum(z * ops.convert_to_tensor(weights))

        return fn

    _, g_ref = value_and_grads(loss(True), [w, c, z0, u])
    _, g = value_and_grads(loss(False), [w, c, z0, u])
    for got, ref in zip(g, g_ref):
        assert _relative_error(got, ref) < 1e-4


def test_batch_jacobian_matches_analytic(rng):
    p = shplrnn_params(rng)
    z = rng.normal(size=(2, 5, 3)).astype("float32")
    zhat = rng.normal(size=(2, 5, 3)).astype("float32")
    auto = to_np(batch_jacobian(shplrnn_step(**p), ops.convert_to_tensor(z), ops.convert_to_tensor(zhat)))
    exact = to_np(shplrnn_jacobian(**p)(ops.convert_to_tensor(z), zhat))
    assert auto.shape == (2, 5, 3, 3)
    np.testing.assert_allclose(auto, exact, rtol=1e-5, atol=1e-6)


# --- chaos: Lorenz-63, Euler-stepped at dt = 0.01 -----------------------------------

DT = 0.01


def lorenz_euler(z, u=None):
    x, y, w = z[..., 0:1], z[..., 1:2], z[..., 2:3]
    dz = ops.concatenate([10.0 * (y - x), x * (28.0 - w) - y, x * y - (8.0 / 3.0) * w], axis=-1)
    return z + DT * dz


def lorenz_data(t):
    def rhs(_, s):
        x, y, w = s
        return [10.0 * (y - x), x * (28.0 - w) - y, x * y - 8.0 / 3.0 * w]

    times = np.arange(t + 1) * DT
    sol = solve_ivp(rhs, (0, times[-1]), [1.0, 1.0, 20.0], t_eval=times, method="DOP853", rtol=1e-10, atol=1e-10)
    return sol.y.T.astype("float32")


@pytest.mark.slow
def test_chaotic_unforced_falls_back_to_sequential():
    t = 10_000
    z0 = np.array([[1.0, 1.0, 20.0]], "float32")
    z, info = compiled(lambda z0: deer_solve(lorenz_euler, z0, length=t))(z0)
    assert bool(to_np(info["fell_back"])) and not bool(to_np(info["converged"]))
    assert bool(to_np(info["finite"]))
    ref = python_loop(lambda z, u: z + DT * np.stack(
        [10 * (z[..., 1] - z[..., 0]), z[..., 0] * (28 - z[..., 2]) - z[..., 1],
         z[..., 0] * z[..., 1] - 8 / 3 * z[..., 2]], -1), z0.astype(np.float64), None, 200)
    got = to_np(z)
    assert np.all(np.isfinite(got))
    # Chaos amplifies float32 rounding, so compare the first 200 steps to the float64 loop
    # and the whole trajectory to the backend's own sequential solve.
    np.testing.assert_allclose(got[:, :200], ref, rtol=1e-3, atol=1e-3)
    seq = to_np(compiled(lambda z0: sequential_solve(lorenz_euler, z0, length=t))(z0))
    np.testing.assert_array_equal(got, seq)


@pytest.mark.slow
def test_chaotic_forced_converges_fast():
    t, alpha = 10_000, 0.3
    data = lorenz_data(t)
    zhat = data[None, 1:]
    z0 = data[None, 0]

    def forced(z, u):
        return (1.0 - alpha) * lorenz_euler(z) + alpha * u

    z, info = compiled(lambda z0, zhat: deer_solve(forced, z0, zhat, initial_guess=zhat))(z0, zhat)
    assert bool(to_np(info["converged"])) and not bool(to_np(info["fell_back"]))
    assert int(to_np(info["iterations"])) <= 10
    seq = to_np(compiled(lambda z0, zhat: sequential_solve(forced, z0, zhat))(z0, zhat))
    np.testing.assert_allclose(to_np(z), seq, atol=1e-3 * np.max(np.abs(seq)), rtol=0)
    np.testing.assert_allclose(to_np(z), seq, atol=1e-5, rtol=1e-5)


def test_max_iter_exhaustion_falls_back(rng):
    # A slowly converging quasi solve capped at one iteration must fall back.
    p = shplrnn_params(rng)
    zhat = rng.normal(size=(1, 100, 3)).astype("float32")
    step = shplrnn_step(**p)
    z, info = compiled(lambda z0, zhat: deer_solve(step, z0, zhat, method="quasi", max_iter=1))(zhat[:, 0], zhat)
    assert bool(to_np(info["fell_back"]))
    np.testing.assert_allclose(to_np(z), python_loop(shplrnn_numpy(p), zhat[:, 0], zhat, 100), atol=1e-5)
    # Without fallback the caller sees the failure flagged, not hidden.
    _, info2 = deer_solve(step, zhat[:, 0], zhat, method="quasi", max_iter=1, fallback=False)
    assert not bool(to_np(info2["converged"])) and not bool(to_np(info2["fell_back"]))


def test_bad_input():
    z0 = np.zeros((2, 3), "float32")
    u = np.zeros((2, 5, 1), "float32")
    step = lambda z, u: z
    with pytest.raises(TypeError, match="`step_fn`"):
        deer_solve("not callable", z0, u)
    with pytest.raises(TypeError, match="`jacobian_fn`"):
        deer_solve(step, z0, u, jacobian_fn=3)
    with pytest.raises(ValueError, match="`method`"):
        deer_solve(step, z0, u, method="newton")
    with pytest.raises(ValueError, match="`inputs`"):
        deer_solve(step, z0, np.zeros((3, 5, 1), "float32"))
    with pytest.raises(ValueError, match="`inputs`"):
        deer_solve(step, z0, np.zeros((5, 1), "float32"))
    with pytest.raises(ValueError, match="`initial_guess`"):
        deer_solve(step, z0, u, initial_guess=np.zeros((2, 5, 4), "float32"))
    with pytest.raises(ValueError, match="length"):
        deer_solve(step, z0)
    with pytest.raises(ValueError, match="sequence length T must be an integer >= 1, got 0"):
        deer_solve(step, z0, length=0)
    with pytest.raises(ValueError, match="sequence length T must be an integer >= 1, got 0"):
        deer_solve(step, z0, np.zeros((2, 0, 1), "float32"))
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1"):
        deer_solve(step, z0, u, max_iter=0)
    with pytest.raises(ValueError, match="`z0`"):
        deer_solve(step, np.float32(1.0), length=3)


def test_reduce_max_is_the_plain_maximum():
    """The Newton loop's residual reduction: every element counts, inf and NaN too."""
    from keras_dsr.ops._tensor import reduce_max

    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 300, 3)).astype("float32") * 1e3
    x[2, 123, 1] = 7777.5
    assert float(to_np(compiled(reduce_max)(x))) == 7777.5
    assert float(to_np(reduce_max(np.float32([1e-40, 3e38, -np.inf])))) == np.float32(3e38)
    x[0, 0, 0] = np.inf
    assert float(to_np(compiled(reduce_max)(x))) == np.inf
    x[1, 5, 2] = np.nan
    assert np.isnan(float(to_np(compiled(reduce_max)(x))))
    assert int(to_np(reduce_max(np.int32([3, -9, 12])))) == 12
