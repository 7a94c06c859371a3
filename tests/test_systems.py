"""Benchmark systems: registry, equations, simulation, true Lyapunov exponents."""

import numpy as np
import pytest

from keras_dsr import measures, systems
from keras_dsr.systems import get_system, list_systems, simulate

# Simulation, Jacobians and true exponents are numpy/scipy: the Keras backend does not
# enter, so one pytest run (JAX) checks them; conftest skips them under the others.
pytestmark = pytest.mark.backend_independent

REQUIRED = [
    "lorenz63", "rossler", "lorenz96", "chua", "thomas", "halvorsen", "aizawa",
    "sprott_b", "sprott_c", "lorenz84", "chen", "lu", "rucklidge", "shimizu_morioka",
    "hindmarsh_rose", "duffing",
]


def test_registry_has_the_standard_systems():
    names = list_systems()
    assert len(names) >= 12
    for n in REQUIRED:
        assert n in names
        s = get_system(n)
        assert s.dt > 0 and s.equations and set(s.params)


def test_get_system_errors_and_overrides():
    with pytest.raises(ValueError, match="Unknown system 'lorenz99'"):
        get_system("lorenz99")
    with pytest.raises(ValueError, match=r"Unknown parameter\(s\) \['tau'\]"):
        get_system("lorenz63", tau=1.0)
    with pytest.raises(TypeError, match="name must be"):
        get_system(3)
    assert get_system("Lorenz-63", rho=24.5).params["rho"] == 24.5
    assert get_system("lorenz63").params["rho"] == 28.0  # the registry is not mutated
    l96 = get_system("lorenz96", dim=20, F=10.0)
    assert l96.dim == 20 and l96.n_obs == 20 and l96.x0(l96.params).shape == (20,)
    with pytest.raises(ValueError, match="dim must be an integer >= 4"):
        get_system("lorenz96", dim=3)


@pytest.mark.parametrize("name", REQUIRED)
def test_jacobian_matches_finite_differences(name):
    s = get_system(name)
    rng = np.random.default_rng(0)
    x = s.x0(s.params) + rng.normal(size=s.dim)
    x[np.abs(np.abs(x) - 1.0) < 1e-3] += 0.01  # keep away from Chua's kinks
    J = s.jacobian(x)
    eps = 1e-6
    fd = np.stack([(s.f(x + eps * e) - s.f(x - eps * e)) / (2 * eps) for e in np.eye(s.dim)], -1)
    np.testing.assert_allclose(J, fd, rtol=1e-5, atol=1e-6)
    # vectorised over leading axes
    X = np.stack([x, x + 0.1])
    np.testing.assert_allclose(s.f(X)[0], s.f(x))
    np.testing.assert_allclose(s.jacobian(X)[1], s.jacobian(x + 0.1))


def test_lorenz_rhs_closed_form():
    s = get_system("lorenz63")
    np.testing.assert_allclose(s.f([1.0, 2.0, 3.0]), [10.0, 1 * (28 - 3) - 2, 2 - 8.0])


def test_simulate_shapes_seeding_and_standardisation():
    a = simulate("lorenz63", 500, seed=3, burn_in=10.0)
    b = simulate("lorenz63", 500, seed=3, burn_in=10.0)
    c = simulate("lorenz63", 500, seed=4, burn_in=10.0)
    assert a.x.shape == (500, 3) and a.states.shape == (500, 3) and a.t.shape == (500,)
    np.testing.assert_array_equal(a.x, b.x)
    assert np.abs(a.x - c.x).max() > 0.1
    np.testing.assert_allclose(a.x.mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(a.x.std(0), 1.0, atol=1e-10)
    np.testing.assert_allclose(a.unstandardize(a.x), a.states, atol=1e-9)
    np.testing.assert_allclose(a.t[1] - a.t[0], 0.01)
    assert a.inputs is None
    raw = simulate("lorenz63", 500, seed=3, standardize=False, burn_in=10.0)
    np.testing.assert_allclose(raw.x, a.states, atol=1e-12)


def test_simulate_is_a_solution_of_the_ode():
    tr = simulate("lorenz63", 2001, dt=0.001, seed=1, standardize=False)
    s = tr.system
    # central differences of the samples equal the vector field (O(dt^2))
    d = (tr.states[2:] - tr.states[:-2]) / (2 * 0.001)
    f = s.f(tr.states[1:-1])
    assert np.abs(d - f).max() < 2e-3 * np.abs(f).max()


def test_simulate_noise_and_ensemble():
    tr = simulate("rossler", 2000, noise=0.1, seed=0, burn_in=20.0)
    resid = tr.x - tr.clean
    np.testing.assert_allclose(resid.std(0), 0.1, rtol=0.1)
    t1, t2 = systems.simulate_ensemble("lorenz63", 300, seeds=(0, 5), burn_in=20.0)
    assert t1.x.shape == t2.x.shape == (300, 3) and np.abs(t1.x - t2.x).max() > 0.1


def test_simulate_bad_arguments():
    with pytest.raises(ValueError, match="steps must be an integer >= 2"):
        simulate("lorenz63", 1)
    with pytest.raises(ValueError, match="dt must be a positive"):
        simulate("lorenz63", 10, dt=-0.1)
    with pytest.raises(ValueError, match="noise must be a number >= 0"):
        simulate("lorenz63", 10, noise=-1)
    with pytest.raises(ValueError, match="burn_in"):
        simulate("lorenz63", 10, burn_in=-1)
    with pytest.raises(ValueError, match=r"x0 must have shape \(3,\)"):
        simulate("lorenz63", 10, x0=[1.0, 2.0])


def test_duffing_drive_is_an_aligned_input():
    tr = simulate("duffing", 400, seed=0)
    s = tr.system
    assert tr.x.shape == (400, 2) and tr.inputs.shape == (400, 1)
    # the phase variable advances at omega: cos(phase) is the drive at the sample times
    phase0 = tr.states[0, 2]
    np.testing.assert_allclose(tr.states[:, 2], phase0 + s.params["omega"] * tr.t, atol=1e-8)
    np.testing.assert_allclose(tr.inputs[:, 0], np.cos(phase0 + s.params["omega"] * tr.t), atol=1e-8)


def test_hindmarsh_rose_is_slow_fast():
    tr = simulate("hindmarsh_rose", 2000, seed=0, standardize=False, burn_in=50.0)
    dx, dz = np.abs(np.diff(tr.states, axis=0)).mean(0)[[0, 2]]
    assert dx > 10 * dz  # z is the slow variable (time-scale ratio r = 0.006)


# Literature values (Sprott, "Chaos and Time-Series Analysis", 2003).
@pytest.mark.slow
def test_lyapunov_lorenz63_within_2_percent():
    lam = systems.lyapunov_max("lorenz63", time=60.0, n_traj=32)
    assert abs(lam - 0.9056) < 0.02 * 0.9056, lam


@pytest.mark.slow
def test_lyapunov_rossler_within_5_percent():
    lam = systems.lyapunov_max("rossler", time=300.0, n_traj=32)
    assert abs(lam - 0.0714) < 0.05 * 0.0714, lam


def test_lyapunov_spectrum_sum_is_mean_divergence():
    # sum of all exponents = time average of trace(J) (Liouville); Lorenz: -(s+1+b)
    lam, _ = systems.lyapunov_spectrum("lorenz63", 3, time=20.0, n_traj=4)
    np.testing.assert_allclose(lam.sum(), -(10 + 1 + 8 / 3), rtol=1e-3)
    assert lam[0] > 0.5 and abs(lam[1]) < 0.1


@pytest.mark.parametrize("name, divergence, time", [
    ("lu", -36 + 20 - 3, 40.0), ("rucklidge", -2 - 1, 40.0),
    ("sprott_c", -1.0, 200.0), ("shimizu_morioka", -0.75 - 0.45, 200.0)])
def test_constant_divergence_spectra(name, divergence, time):
    # constant divergence: the exponents sum to it exactly (Lü: -a + c - b; Rucklidge:
    # -kappa - 1; Sprott C: -1; Shimizu-Morioka: -a - b); one positive, one zero
    # exponent (a chaotic flow)
    # (over 40 time units the QR start-up transient of Lü's -20 exponent leaves ~0.2 %)
    lam, _ = systems.lyapunov_spectrum(name, 3, time=time, n_traj=2)
    np.testing.assert_allclose(lam.sum(), divergence, rtol=3e-3)
    assert lam[0] > 0.04 and abs(lam[1]) < 0.1 * lam[0], lam


# Simulated time span (time units) per system for the chaos check: weakly chaotic
# and slow systems need longer spans for the finite-time exponent to settle, and
# intermittent ones for the first half to visit the whole attractor (Lorenz-84 over 120
# time units: seed 1's second half went below its first half's range on one CPU; over
# 400, seeds 0-11 stay within it).
_SPAN = {"mackey_glass": 600, "lorenz63": 30, "rossler": 250, "lorenz96": 20, "chua": 60, "thomas": 200,
         "halvorsen": 30, "aizawa": 120, "sprott_b": 120, "lorenz84": 400, "chen": 10,
         "lu": 10, "rucklidge": 250, "sprott_c": 200, "shimizu_morioka": 400,
         "hindmarsh_rose": 600, "duffing": 250}


@pytest.mark.slow
@pytest.mark.parametrize("name", list_systems())
def test_every_system_is_bounded_and_chaotic(name):
    s = get_system(name)
    tr = simulate(name, int(round(_SPAN[name] / s.dt)), seed=1, standardize=False)
    obs = tr.system.observation(tr.states)
    assert np.all(np.isfinite(obs))
    # bounded: the second half stays within the range of the first half (+50 %)
    n = obs.shape[0] // 2
    half = obs[:n]
    span = half.max(0) - half.min(0)
    assert np.all(obs[n:].max(0) <= half.max(0) + 0.5 * span)
    assert np.all(obs[n:].min(0) >= half.min(0) - 0.5 * span)
    assert np.all(obs.std(0) > 0)  # not collapsed to a fixed point
    if s.delay is not None:
        # a delay system: tangent functions over the delay interval (method of steps)
        lam = systems.lyapunov_max(s, time=1500.0)
        assert lam > 0.002, lam
        return
    # chaotic: positive largest exponent along this trajectory (variational
    # propagators between samples + Benettin), per time unit
    lam = measures.lyapunov_max_trajectory(s, tr)
    assert lam > 0.005, lam


def test_mackey_glass_solves_the_delay_equation():
    tr = simulate("mackey_glass", 2001, dt=0.01, seed=0, standardize=False, burn_in=50.0)
    s = tr.system
    assert s.delay == "tau" and s.params["tau"] == 17.0 and tr.x.shape == (2001, 1)
    x = tr.states[:, 0]
    lag = 1700  # tau / dt samples
    # central differences equal the right-hand side with the delayed state
    d = (x[lag + 2:] - x[lag:-2]) / 0.02
    f = s.f(x[lag + 1:-1, None], x[1:-lag - 1, None])[:, 0]
    assert np.abs(d - f).max() < 1e-5 * (1 + np.abs(f).max())
    # derivatives of the right-hand side
    A, B = s.jacobian(np.array([[0.9]]), np.array([[1.1]]))
    eps = 1e-6
    fd_tau = (s.f([[0.9]], [[1.1 + eps]]) - s.f([[0.9]], [[1.1 - eps]])) / (2 * eps)
    np.testing.assert_allclose(A[0, 0, 0], -0.1)
    np.testing.assert_allclose(B[0, 0, 0], fd_tau[0, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="delay system"):
        measures.lyapunov_max_trajectory(s, tr)
