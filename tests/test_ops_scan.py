"""associative_scan and linear_recurrence against plain Python loops, on every backend."""

import numpy as np
import pytest
from keras import ops

from conftest import BACKEND, supports_float64, to_np
from keras_dsr.ops import associative_scan, linear_recurrence


def loop_recurrence(a, b, h0, reverse):
    """h_t = A_t h_{t-1} + b_t (or with t running backwards), float64 reference."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    dense = a.ndim == b.ndim + 1
    h = np.zeros(b.shape[:-2] + (b.shape[-1],)) if h0 is None else h0.astype(np.float64)
    out = np.zeros(b.shape)
    steps = range(b.shape[-2] - 1, -1, -1) if reverse else range(b.shape[-2])
    for t in steps:
        if dense:
            h = np.einsum("...ij,...j->...i", a[..., t, :, :], h) + b[..., t, :]
        else:
            h = a[..., t, :] * h + b[..., t, :]
        out[..., t, :] = h
    return out


def random_problem(rng, batch, t, m, dense, dtype="float32"):
    if dense:
        a = rng.normal(size=batch + (t, m, m)) / (1.2 * np.sqrt(m))
    else:
        a = rng.uniform(-1.0, 1.0, size=batch + (t, m))
    b = rng.normal(size=batch + (t, m))
    h0 = rng.normal(size=batch + (m,))
    return a.astype(dtype), b.astype(dtype), h0.astype(dtype)


@pytest.mark.parametrize("t", [1, 2, 3, 7, 64, 1000])
@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_linear_recurrence_matches_loop(rng, t, dense, reverse):
    a, b, h0 = random_problem(rng, (2,), t, 3, dense)
    for init in (None, h0):
        got = to_np(linear_recurrence(a, b, init, reverse=reverse))
        ref = loop_recurrence(a, b, init, reverse)
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("dense", [False, True])
def test_linear_recurrence_batch_dims(rng, dense):
    a, b, h0 = random_problem(rng, (2, 3), 17, 4, dense)
    got = to_np(linear_recurrence(a, b, h0))
    np.testing.assert_allclose(got, loop_recurrence(a, b, h0, False), rtol=1e-4, atol=2e-5)
    # No batch dims at all: [T, M].
    got1 = to_np(linear_recurrence(a[0, 1], b[0, 1], h0[0, 1]))
    np.testing.assert_allclose(got1, got[0, 1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dense", [False, True])
def test_linear_recurrence_float64_kept(rng, dense):
    if not supports_float64():
        pytest.skip("JAX runs without jax_enable_x64: float64 is not kept by the backend")
    a, b, h0 = random_problem(rng, (2,), 300, 3, dense, dtype="float64")
    out = linear_recurrence(a, b, h0)
    assert ops.dtype(out) == "float64"
    np.testing.assert_allclose(to_np(out), loop_recurrence(a, b, h0, False), rtol=1e-11, atol=1e-12)


def test_linear_recurrence_keeps_dtype_and_device(rng):
    a, b, h0 = random_problem(rng, (2,), 9, 3, True)
    a, b, h0 = (ops.convert_to_tensor(x) for x in (a, b, h0))
    out = linear_recurrence(a, b, h0)
    assert ops.dtype(out) == "float32"
    if BACKEND == "torch":
        assert out.device == b.device
    if BACKEND == "jax":
        assert out.devices() == b.devices()


def test_associative_scan_noncommutative_reverse(rng):
    # Matrix products do not commute: checks the operand order in both directions.
    mats = rng.normal(size=(13, 2, 2)).astype("float32")

    def fn(x, y):
        return (ops.matmul(y[0], x[0]),)  # earlier first, later second

    fwd = to_np(associative_scan(fn, (mats,))[0])
    bwd = to_np(associative_scan(fn, (mats,), reverse=True)[0])
    acc = np.eye(2)
    for i in range(13):
        acc = mats[i] @ acc
        np.testing.assert_allclose(fwd[i], acc, rtol=1e-4, atol=1e-5)
    acc = np.eye(2)
    for i in range(12, -1, -1):
        acc = mats[i] @ acc
        np.testing.assert_allclose(bwd[i], acc, rtol=1e-4, atol=1e-5)


def test_associative_scan_axis(rng):
    x = rng.normal(size=(3, 11, 2)).astype("float32")
    got = to_np(associative_scan(lambda a, b: (a[0] + b[0],), (x,), axis=1)[0])
    np.testing.assert_allclose(got, np.cumsum(x, axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "a_shape, b_shape, h0_shape, match",
    [
        ((2, 5, 3), (2, 5, 4), None, "diagonal `a`"),
        ((2, 5, 3, 2), (2, 5, 3), None, "dense `a`"),
        ((2, 5, 3, 3, 3), (2, 5, 3), None, "rank"),
        ((5,), (5,), None, "rank >= 2"),
        ((2, 5, 3), (2, 5, 3), (2, 4), "`h0`"),
        ((2, 0, 3), (2, 0, 3), None, "T = 0"),
    ],
)
def test_linear_recurrence_bad_input(a_shape, b_shape, h0_shape, match):
    a = np.zeros(a_shape, "float32")
    b = np.zeros(b_shape, "float32")
    h0 = None if h0_shape is None else np.zeros(h0_shape, "float32")
    with pytest.raises(ValueError, match=match):
        linear_recurrence(a, b, h0)


def test_associative_scan_bad_input():
    with pytest.raises(TypeError, match="`fn`"):
        associative_scan(3, (np.zeros((3, 2)),))
    with pytest.raises(TypeError, match="`elems`"):
        associative_scan(lambda a, b: a, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="same length"):
        associative_scan(lambda a, b: a, (np.zeros((3, 2)), np.zeros((4, 2))))
