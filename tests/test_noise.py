"""Observation noise and dynamical (process) noise in ``keras_dsr.systems.simulate``."""

import numpy as np
import pytest

from keras_dsr.systems import System, get_system, integrate, simulate, simulate_ensemble
from keras_dsr.systems.simulate import integrate_sde

# numpy/scipy only: the Keras backend does not enter (conftest runs these under JAX).
pytestmark = pytest.mark.backend_independent


@pytest.mark.parametrize("level", [0.1, 0.3])
def test_observation_noise_level_is_the_requested_fraction(level):
    T = 10_000
    tr = simulate("lorenz63", T, noise=level, seed=1, burn_in=10.0)
    measured = (tr.x - tr.clean).std(0)
    # standard error of a sample std of n Gaussian draws: sigma / sqrt(2 n)
    tol = 4 * level / np.sqrt(2 * T)
    np.testing.assert_array_less(np.abs(measured - level), tol)
    # raw units: noise * std of each variable
    raw = simulate("lorenz63", T, noise=level, seed=1, burn_in=10.0, standardize=False)
    ratio = (raw.x - raw.clean).std(0) / raw.clean.std(0)
    np.testing.assert_array_less(np.abs(ratio - level), tol)
    # the clean trajectory is the ODE solution, unaffected by the noise
    np.testing.assert_allclose(raw.clean, tr.clean * tr.std + tr.mean, rtol=1e-12, atol=1e-12)


def test_zero_process_noise_is_the_deterministic_ode_solve():
    tr = simulate("lorenz63", 500, seed=2, burn_in=5.0, process_noise=0.0, noise=0.1)
    s = get_system("lorenz63")
    x0 = s.x0(s.params) + 0.01 * np.random.default_rng(2).standard_normal(3)
    np.testing.assert_array_equal(tr.states, integrate(s, x0, 5.0 + np.arange(500) * s.dt))
    # and the observation noise draws are those of the seed's generator
    rng = np.random.default_rng(2)
    rng.standard_normal(3)
    np.testing.assert_array_equal(tr.x, tr.clean + 0.1 * rng.standard_normal((500, 3)))


def test_process_noise_is_reproducible_and_changes_the_trajectory():
    kw = dict(burn_in=2.0, seed=4)
    a = simulate("lorenz63", 300, process_noise=0.5, **kw)
    b = simulate("lorenz63", 300, process_noise=0.5, **kw)
    c = simulate("lorenz63", 300, process_noise=0.0, **kw)
    d = simulate("lorenz63", 300, process_noise=0.5, burn_in=2.0, seed=5)
    np.testing.assert_array_equal(a.states, b.states)
    assert np.abs(a.states - c.states).max() > 0.1
    assert np.abs(a.states - d.states).max() > 0.1
    # an ensemble member equals the single run with the same seed
    e = simulate_ensemble("lorenz63", 300, seeds=(4, 5), process_noise=0.5, burn_in=2.0)
    np.testing.assert_array_equal(e[0].states, a.states)
    np.testing.assert_array_equal(e[1].states, d.states)


def _ou_system(theta):
    return System(
        name="ou_test", dim=1, params=dict(theta=theta),
        rhs=lambda x, p: -p["theta"] * x, jac=lambda x, p: -p["theta"] * np.ones(x.shape + (1,)),
        dt=0.1, x0=lambda p: np.zeros(1), burn_in=0.0, equations="x' = -theta x",
    )


def test_process_noise_ornstein_uhlenbeck_statistics():
    # dx = -theta x dt + sigma dW: stationary variance sigma^2 / (2 theta), lag-k
    # autocorrelation exp(-theta k dt) (closed forms)
    theta, sigma, dt, T = 10.0, 2.0, 0.01, 20_000
    tr = simulate(_ou_system(theta), T, dt=dt, burn_in=1.0, seed=0, process_noise=sigma,
                  standardize=False)
    x = tr.states[:, 0]
    var = sigma ** 2 / (2 * theta)
    # effective sample size of an AR(1) with coefficient r: T (1 - r^2) / (1 + r^2)
    r = np.exp(-theta * dt)
    n_eff = T * (1 - r ** 2) / (1 + r ** 2)
    assert abs(x.var() / var - 1) < 4 * np.sqrt(2 / n_eff)
    xc = x - x.mean()
    rho1 = np.dot(xc[:-1], xc[1:]) / np.dot(xc, xc)
    assert abs(rho1 - r) < 0.01


def test_integrate_sde_without_noise_is_rk4_close_to_dop853():
    s = get_system("lorenz63")
    x0 = s.x0(s.params)
    t = np.arange(1, 101) * 0.01
    got = integrate_sde(s, x0[None], t, 0.0, [np.random.default_rng(0)])[0]
    np.testing.assert_allclose(got, integrate(s, x0, t), atol=1e-6)


def test_process_noise_bad_arguments():
    with pytest.raises(ValueError, match="process_noise must be a number >= 0 or 3"):
        simulate("lorenz63", 10, process_noise=-0.1)
    with pytest.raises(ValueError, match="process_noise must be a number >= 0 or 3"):
        simulate("lorenz63", 10, process_noise=[0.1, 0.2])
    with pytest.raises(ValueError, match="process_noise must be a number >= 0"):
        simulate("lorenz63", 10, process_noise="a lot")
    with pytest.raises(ValueError, match="not supported for the delay system 'mackey_glass'"):
        simulate("mackey_glass", 10, process_noise=0.1)
    with pytest.raises(RuntimeError, match="blew up"):
        simulate("lorenz63", 10, burn_in=1.0, process_noise=1e200)


def test_process_noise_per_variable():
    # noise on x only: with sigma = (s, 0, 0) the drift carries it into y and z, but a
    # one-step check shows only x receives the increment
    s = get_system("lorenz63")
    x0 = s.x0(s.params)[None]
    a = integrate_sde(s, x0, [1e-3], [1.0, 0.0, 0.0], [np.random.default_rng(7)])[0, 0]
    b = integrate_sde(s, x0, [1e-3], 0.0, [np.random.default_rng(7)])[0, 0]
    xi = np.random.default_rng(7).standard_normal((1, 3))[0]
    np.testing.assert_allclose(a - b, [np.sqrt(1e-3) * xi[0], 0.0, 0.0], atol=1e-14)
