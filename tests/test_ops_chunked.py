"""Chunked linear recurrences and chunked DEER against the unchunked ones, on every backend."""

import numpy as np
import pytest
from keras import ops

from conftest import compiled, to_np, value_and_grads
from keras_dsr.ops import deer_solve, linear_recurrence
from test_ops_deer import shplrnn_jacobian, shplrnn_params, shplrnn_step
from test_ops_scan import random_problem


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("t, chunk", [(24, 8), (23, 8), (5, 1), (7, 3), (6, 50)])
def test_chunked_linear_recurrence_matches_unchunked(rng, dense, reverse, t, chunk):
    a, b, h0 = random_problem(rng, (2, 3), t, 3, dense)
    for init in (None, h0):
        ref = to_np(linear_recurrence(a, b, init, reverse=reverse))
        got = to_np(linear_recurrence(a, b, init, reverse=reverse, chunk_size=chunk))
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dense", [False, True])
def test_chunked_linear_recurrence_gradients(rng, dense):
    a, b, h0 = random_problem(rng, (2,), 30, 3, dense)
    w = rng.normal(size=b.shape).astype("float32")

    def loss(chunk):
        def fn(a, b, h0):
            h = linear_recurrence(a, b, h0, chunk_size=chunk)
            return ops.sum(h * ops.convert_to_tensor(w))

        return fn

    v_ref, g_ref = value_and_grads(loss(None), [a, b, h0])
    v, g = value_and_grads(loss(7), [a, b, h0])
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    for got, ref in zip(g, g_ref):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_chunked_linear_recurrence_bad_chunk_size():
    a = np.ones((1, 4, 2), "float32")
    for bad in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="chunk_size"):
            linear_recurrence(a, a, chunk_size=bad)


def _deer_loss(p, weights, method, chunk):
    def fn(a, w1, w2, h1, h2, z0, zhat):
        step = shplrnn_step(a, w1, w2, h1, h2)
        jac = shplrnn_jacobian(a, w1, w2, h1, h2)
        z, _ = deer_solve(step, z0, zhat, jacobian_fn=jac, method=method,
                          initial_guess=zhat, chunk_size=chunk)
        return ops.sum(z * ops.convert_to_tensor(weights))

    return fn


@pytest.mark.parametrize("method", ["deer", "quasi", "damped"])
def test_chunked_deer_matches_unchunked(rng, method):
    """Values, diagnostics and gradients (w.r.t. weights, z0 and inputs) of a
    GTF-forced shPLRNN with T = 130 in chunks of 32 (4 full chunks and a short one)."""
    p = shplrnn_params(rng)
    zhat = rng.normal(size=(2, 130, 3)).astype("float32")
    z0 = zhat[:, 0] + 0.1
    step, jac = shplrnn_step(**p), shplrnn_jacobian(**p)

    def solve(chunk):
        return compiled(
            lambda z0, zhat: deer_solve(step, z0, zhat, jacobian_fn=jac, method=method,
                                        initial_guess=zhat, chunk_size=chunk)
        )(z0, zhat)

    (z_ref, info_ref), (z, info) = solve(None), solve(32)
    np.testing.assert_allclose(to_np(z), to_np(z_ref), rtol=1e-5, atol=1e-6)
    assert int(to_np(info["iterations"])) == int(to_np(info_ref["iterations"]))
    assert bool(to_np(info["converged"])) and not bool(to_np(info["fell_back"]))

    weights = rng.normal(size=zhat.shape).astype("float32")
    args = [p["a"], p["w1"], p["w2"], p["h1"], p["h2"], z0, zhat]
    v_ref, g_ref = value_and_grads(_deer_loss(p, weights, method, None), args)
    v, g = value_and_grads(_deer_loss(p, weights, method, 32), args)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    for name, got, ref in zip(["a", "w1", "w2", "h1", "h2", "z0", "zhat"], g, g_ref):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5, err_msg=name)


def test_chunked_deer_without_inputs_autodiff_jacobian(rng):
    """No inputs (``length=T``) and autodiff Jacobians, chunked like unchunked."""
    w = ops.convert_to_tensor((rng.normal(size=(4, 4)) * 0.4).astype("float32"))
    z0 = rng.normal(size=(3, 4)).astype("float32")

    def step(z, u):
        return ops.tanh(ops.matmul(z, w)) + 0.5

    run = lambda chunk: compiled(lambda z0: deer_solve(step, z0, length=50, chunk_size=chunk))
    z_ref, _ = run(None)(z0)
    z, info = run(16)(z0)
    np.testing.assert_allclose(to_np(z), to_np(z_ref), rtol=1e-5, atol=1e-6)
    assert bool(to_np(info["converged"]))


def test_chunked_deer_bad_input(rng):
    z0 = np.zeros((1, 2), "float32")
    step = lambda z, u: 0.5 * z
    with pytest.raises(ValueError, match="chunk_size"):
        deer_solve(step, z0, length=8, chunk_size=0)
    with pytest.raises(ValueError, match="not both"):
        deer_solve(step, z0, length=8, chunk_size=4, linear_solver=linear_recurrence)
