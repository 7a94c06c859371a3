"""keras_dsr.robustness: free runs from many initial conditions, classified, against
maps whose fate is known in closed form."""

import numpy as np
import pytest

from keras_dsr.robustness import FATES, free_run_fates, initial_conditions, periodic


def _iterate(step):
    """A map ``step: [B, N] -> [B, N]`` as a generator ``(x0, steps) -> [B, steps, N]``."""
    def generate(x0, steps):
        x, out = np.asarray(x0, dtype=np.float64), []
        for _ in range(steps):
            x = step(x)
            out.append(x)
        return np.stack(out, axis=1)
    return generate


henon = _iterate(lambda x: np.stack([1 - 1.4 * x[:, 0] ** 2 + x[:, 1], 0.3 * x[:, 0]], 1))
HENON = henon([[0.1, 0.1]], 21_000)[0, 1_000:]
CENTER, RADIUS = HENON.mean(0), HENON.std(0).max()
TURN = 2 * np.pi / 37.3  # a cycle of 37.3 steps: not a whole number of steps


def _circle(x):
    """Radius relaxes to RADIUS around CENTER, angle turns by TURN: a limit cycle."""
    d = x - CENTER
    r = np.linalg.norm(d, axis=1, keepdims=True)
    angle = np.arctan2(d[:, 1], d[:, 0]) + TURN
    r = RADIUS + 0.5 * (r - RADIUS)
    return CENTER + r * np.stack([np.cos(angle), np.sin(angle)], 1)


def _tent(x):
    """A chaotic set of its own: the logistic map on each axis, beside Hénon's attractor."""
    u = np.mod((x - CENTER - 5.0) / (4 * RADIUS) + 0.5, 1.0)
    u = np.stack([3.99 * u[:, 0] * (1 - u[:, 0]), 3.9 * u[:, 1] * (1 - u[:, 1])], 1)
    return CENTER + 5.0 + 4 * RADIUS * (u - 0.5)


@pytest.mark.backend_independent
def test_periodic_finds_map_cycles_sampled_flow_cycles_and_no_chaos():
    cycle7 = np.tile(np.random.default_rng(0).normal(size=(7, 3)), (30, 1))
    assert periodic(cycle7) == 7.0
    theta = TURN * np.arange(600)
    assert periodic(np.stack([np.cos(theta), np.sin(theta)], 1), tol=1e-2) == \
        pytest.approx(37.3, abs=0.02)
    assert periodic(np.ones((50, 2))) == 1.0
    assert periodic(HENON[:2_000], tol=0.05) is None
    assert periodic(cycle7, max_period=5) is None


@pytest.mark.backend_independent
@pytest.mark.parametrize("step, fate", [
    (lambda x: 0.5 * x + 0.3, "fixed_point"),
    (_circle, "cycle"),
    (lambda x: 2.0 * x + 1.0, "diverged"),
    (_tent, "other"),
])
def test_every_initial_condition_meets_the_maps_known_fate(step, fate):
    fates = free_run_fates(_iterate(step), HENON, n=12, steps=3_000, burn_in=500)
    assert fates.labels == [fate] * 12, fates.labels
    if fate in ("fixed_point", "cycle"):  # never "reached", however lax the D_stsp bound
        lax = free_run_fates(_iterate(step), HENON, n=12, steps=3_000, burn_in=500,
                             max_dstsp=1e3)
        assert lax.labels == [fate] * 12
    assert fates.counts[fate] == 12 and fates.fractions[fate] == 1.0
    assert set(fates.counts) == set(FATES) and fates.failed == 1.0


@pytest.mark.backend_independent
def test_a_model_with_two_attractors_is_counted_per_initial_condition():
    # starts with x > 0.6 go to the limit cycle, the others stay on Hénon's attractor
    x0 = initial_conditions(HENON, n=40, spread=0.0, seed=3)
    to_cycle = x0[:, 0] > 0.6

    def generate(x0_, steps):
        out = henon(x0_, steps)
        out[to_cycle] = _iterate(_circle)(x0_[to_cycle], steps)
        return out

    fates = free_run_fates(generate, HENON, x0=x0, steps=4_000, burn_in=500)
    expected = np.where(to_cycle, "cycle", "reached").tolist()
    assert fates.labels == expected
    assert fates.counts["cycle"] == int(to_cycle.sum()) > 0
    assert fates.fractions["reached"] == pytest.approx(1 - to_cycle.mean())
    assert fates.to_dict()["n"] == 40 and np.all(fates.dstsp[~to_cycle] <= fates.max_dstsp)


@pytest.mark.backend_independent
def test_initial_conditions_lie_around_the_data():
    x0 = initial_conditions(HENON, n=500, spread=0.1, seed=0)
    assert x0.shape == (500, 2)
    d = np.min(np.linalg.norm(x0[:, None] - HENON[::20][None], axis=2), axis=1)
    assert np.median(d) < 0.2 * HENON.std(0).max()
    np.testing.assert_array_equal(initial_conditions(HENON, 5, seed=1),
                                  initial_conditions(HENON, 5, seed=1))


@pytest.mark.backend_independent
@pytest.mark.parametrize("kwargs, message", [
    (dict(n=0), "n must be an integer >= 1"),
    (dict(steps=5), "steps must be an integer >= 20"),
    (dict(bound_factor=1.0), "bound_factor must be a finite number > 1"),
    (dict(x0=np.zeros((3, 5))), "x0 has 5 variable"),
    (dict(max_dstsp=-1.0), "max_dstsp must be a finite number >= 0"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        free_run_fates(henon, HENON, **kwargs)


@pytest.mark.parametrize("a, fate", [(0.5, "fixed_point"), (1.5, "diverged")])
def test_a_keras_model_on_every_backend(a, fate):
    """A clipped shPLRNN reduced to z -> a z + 0.3 (W1 = W2 = 0): a fixed point at
    0.3 / (1 - a) for a = 0.5, growth for a = 1.5; scored against standardised Lorenz-63."""
    from keras_dsr.cells import ClippedShallowPLRNN
    from keras_dsr.models import DSRModel
    from keras_dsr.systems import simulate

    model = DSRModel(cell=ClippedShallowPLRNN(3, 8, seed=0), gtf=0.5)
    model.build((None, 10, 3))
    for w in model.cell.weights:
        name = w.path.split("/")[-1]
        w.assign(np.full(w.shape, {"a": a, "h1": 0.3}.get(name, 0.0), "float32"))
    x_ref = simulate("lorenz63", 4_000, seed=0).x
    fates = free_run_fates(model, x_ref, n=5, steps=200, burn_in=100)
    assert fates.labels == [fate] * 5
    if fate == "fixed_point":
        run = np.asarray(model.generate(fates.x0[:1].astype("float32"), 300))[0, -1]
        np.testing.assert_allclose(run, 0.3 / (1 - a), rtol=1e-5)


@pytest.mark.backend_independent
@pytest.mark.parametrize("off, met", [(0, True), (5, True), (6, False), (40, False)])
def test_the_zoo_robustness_criterion_is_five_percent_of_runs_off_the_attractor(off, met):
    """``check_scores`` with a robustness result: the other criteria met, the verdict is
    the fraction of 100 runs that missed the attractor against 5 %."""
    from keras_dsr.robustness import Fates
    from keras_dsr.zoo.criteria import check_scores

    labels = ["cycle"] * off + ["reached"] * (100 - off)
    counts = {f: labels.count(f) for f in FATES}
    fates = Fates(labels=labels, counts=counts, fractions={f: counts[f] / 100 for f in FATES},
                  dstsp=np.zeros(100), max_dstsp=0.3, x0=np.zeros((100, 3)))
    scores = {"dstsp": 0.1, "dh": 0.05, "lyap": 1.0, "pe": 1e-4}
    reference = {"floor": {"dstsp": 0.05, "dh": 0.04}, "lyap": 1.0}
    assert check_scores("rossler", scores, reference)[0]
    ok, lines = check_scores("rossler", scores, reference, robustness=fates,
                             gate_robustness=True)
    assert ok == met
    assert f"| {off} % (diverged 0, fixed point 0, cycle {off}, other 0) |" in lines[-2]
    assert lines[-2].endswith("| yes |" if met else "| NO |")
    # reported only (the default): the verdict is the other criteria's
    ok, lines = check_scores("rossler", scores, reference, robustness=fates)
    assert ok and "(reported)" in lines[-2]


@pytest.mark.backend_independent
def test_a_reference_calibrates_the_bound_on_its_own_runs_from_the_same_starts():
    """With the true map as ``reference``: the bound is the largest D_stsp of its runs
    from the same initial conditions (recomputed here) + 0.2, so every run of the true
    map counts as reached, and a model with a coexisting cycle still loses those runs."""
    from keras_dsr.measures import state_space_divergence

    x0 = initial_conditions(HENON, n=30, spread=0.05, seed=4)
    x0 = x0[np.all(np.isfinite(henon(x0, 3_500)), axis=(1, 2))]  # starts inside the basin
    fates = free_run_fates(henon, HENON, x0=x0, steps=3_000, burn_in=500, reference=henon)
    runs = henon(x0.astype("float32").astype(np.float64), 3_500)[:, 500:]  # as it starts
    half = HENON[:len(HENON) // 2]
    own = np.array([state_space_divergence(half, r) for r in runs])
    np.testing.assert_allclose(fates.reference_dstsp, own, rtol=1e-6)
    assert fates.max_dstsp == pytest.approx(own.max() + 0.2, rel=1e-6)
    assert fates.labels == ["reached"] * len(x0) and fates.to_dict()["calibrated"]
    assert fates.reference_counts == dict.fromkeys(FATES, 0) | {"reached": len(x0)}
    to_cycle = x0[:, 0] > 0.6

    def generate(x0_, steps):
        out = henon(x0_, steps)
        out[to_cycle] = _iterate(_circle)(x0_[to_cycle], steps)
        return out

    mixed = free_run_fates(generate, HENON, x0=x0, steps=3_000, burn_in=500, reference=henon)
    assert mixed.labels == np.where(to_cycle, "cycle", "reached").tolist()
    assert 0 < to_cycle.sum() < len(x0)
    # starts outside the basin: the true map leaves too, so they are not held against it
    wide = initial_conditions(HENON, n=40, spread=0.5, seed=1)
    fates = free_run_fates(henon, HENON, x0=wide, steps=1_000, burn_in=100, reference=henon)
    assert 0 < fates.counts["diverged"] == fates.reference_counts["diverged"] < 40
    assert fates.failed == 0.0 and fates.to_dict()["failed"] == 0.0
    assert free_run_fates(henon, HENON, x0=wide, steps=1_000, burn_in=100).failed > 0
    with pytest.raises(ValueError, match="every run of `reference` diverged"):
        free_run_fates(henon, HENON, x0=x0, steps=100, burn_in=10,
                       reference=_iterate(lambda x: 2.0 * x + 1.0))


@pytest.mark.backend_independent
def test_system_generator_integrates_the_true_equations_in_the_datas_units():
    """Lorenz-63 from standardised starts, against scipy's solve_ivp of the equations
    written out here (sigma 10, rho 28, beta 8/3): one step after x0 onward."""
    from scipy.integrate import solve_ivp

    from keras_dsr.robustness import system_generator
    from keras_dsr.systems import get_system

    dt = get_system("lorenz63").dt
    mean, std = np.array([0.5, 0.4, 23.0]), np.array([7.9, 9.0, 8.6])
    x0 = np.array([[0.1, 0.3, -0.2], [-1.0, -0.8, 1.2]])
    out = system_generator("lorenz63", mean=mean, std=std)(x0, 150)
    assert out.shape == (2, 150, 3)

    def f(t, u):
        x, y, z = u
        return [10.0 * (y - x), x * (28.0 - z) - y, x * y - 8.0 / 3.0 * z]

    for k in range(2):
        t = dt * np.arange(1, 151)
        sol = solve_ivp(f, (0, t[-1]), x0[k] * std + mean, t_eval=t, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(out[k], ((sol.y.T - mean) / std), atol=1e-4)
