"""keras_dsr.lyapunov.local_growth (and lyapunov_max_jacobians, which is its mean)
against closed forms and a plain step-by-step loop."""

import math

import numpy as np
import pytest

from keras_dsr.lyapunov import local_growth, lyapunov_max_jacobians


def _rotation(theta):
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _plain_loop(J, v0):
    """Benettin, one step at a time: growth [T] and the unit vector before each step."""
    v = v0 / math.hypot(*v0)
    growth, vectors = [], []
    for Jt in J:
        vectors.append(v)
        w = Jt @ v
        r = math.hypot(*w)   # exact for tiny and huge w
        growth.append(math.log(r))
        v = w / r
    return np.array(growth), np.array(vectors)


def test_constant_diagonal_every_step_and_after_alignment():
    a = np.array([-2.0, 0.5, 1.5])
    T = 100
    growth, u = local_growth(np.tile(np.diag(a), (T, 1, 1)))   # from (1, 1, 1) / sqrt 3
    w = a[None] ** np.arange(T + 1)[:, None]                  # J^t (1, 1, 1)
    norms = np.linalg.norm(w, axis=1)
    np.testing.assert_allclose(growth, np.log(norms[1:] / norms[:-1]), rtol=1e-12)
    np.testing.assert_allclose(u, w[:-1] / norms[:-1, None], atol=1e-12)
    # aligned: log of the largest |eigenvalue|; the vector flips sign with -2
    np.testing.assert_allclose(growth[60:], np.log(2.0), rtol=1e-12)
    np.testing.assert_allclose(u[60:, 0], (-1.0) ** np.arange(60, T), atol=1e-12)


@pytest.mark.parametrize("scale", [1.3, 1e30, 1e-30])   # 1e+-30: 16 steps leave the range
def test_rotation_scaling_grows_by_its_scale_at_every_step(scale):
    theta, T = 0.7, 50
    v0 = np.array([3.0, 4.0])
    growth, u = local_growth(np.tile(scale * _rotation(theta), (T, 1, 1)), v0)
    np.testing.assert_allclose(growth, np.log(scale), rtol=1e-12, atol=1e-12)
    want = np.stack([_rotation(t * theta) @ (v0 / 5.0) for t in range(T)])
    np.testing.assert_allclose(u, want, atol=1e-12)


def test_varying_rotation_scaling():
    rng = np.random.default_rng(3)
    T = 37
    s, theta = np.exp(rng.normal(size=T)), rng.uniform(-np.pi, np.pi, T)
    growth, u = local_growth(s[:, None, None] * np.stack([_rotation(th) for th in theta]),
                             np.array([1.0, 0.0]))
    np.testing.assert_allclose(growth, np.log(s), rtol=1e-12, atol=1e-12)
    angle = np.concatenate([[0.0], np.cumsum(theta)[:-1]])
    np.testing.assert_allclose(u, np.stack([np.cos(angle), np.sin(angle)], axis=1),
                               atol=1e-12)


def test_matches_the_plain_loop_across_blocks_and_ragged_ends():
    rng = np.random.default_rng(5)
    J = rng.normal(size=(4096 + 37, 3, 3))
    J[100] *= 1e-250   # norms below 1e-150 (and squares that underflow) at steps 100-111
    J[2000] *= 1e250   # and above 1e150: those steps go one by one
    v0 = rng.normal(size=3)
    growth, u = local_growth(J, v0)
    ref_growth, ref_u = _plain_loop(J, v0)
    np.testing.assert_allclose(growth, ref_growth, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(u, ref_u, atol=1e-9)


def test_lyapunov_max_jacobians_is_the_mean_growth_from_its_seed():
    rng = np.random.default_rng(8)
    J = rng.normal(size=(300, 3, 3))
    ref, _ = _plain_loop(J, np.random.default_rng(4).standard_normal(3))
    np.testing.assert_allclose(lyapunov_max_jacobians(J, dt=0.5, transient=20, seed=4),
                               ref[20:].mean() / 0.5, rtol=1e-10)


def test_annihilated_vector():
    J = np.tile(np.diag([2.0, 0.0]), (40, 1, 1))
    J[20] = np.diag([0.0, 1.0])       # kills the aligned vector e_1
    growth, u = local_growth(J)
    np.testing.assert_allclose(growth[1:20], np.log(2.0), rtol=1e-12)
    assert np.all(growth[20:] == -np.inf)
    np.testing.assert_array_equal(u[21:], 0.0)
    assert lyapunov_max_jacobians(J, transient=5) == -np.inf


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(jacobians=np.zeros((5, 2, 3))), ValueError, r"jacobians must have shape \[T, M, M\]"),
    (dict(jacobians=np.full((5, 2, 2), np.nan)), FloatingPointError, "NaN or inf"),
    (dict(jacobians=np.zeros((5, 2, 2)), v0=np.zeros(2)), ValueError, "v0 must be a finite"),
    (dict(jacobians=np.zeros((5, 2, 2)), v0=np.ones(3)), ValueError, r"length 2, got shape \(3,\)"),
])
def test_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        local_growth(**kwargs)
