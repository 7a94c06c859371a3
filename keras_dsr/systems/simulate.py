"""Simulate a benchmark system: integration, burn-in, noise, standardisation."""

import dataclasses
from typing import Optional

import numpy as np
from scipy.integrate import solve_ivp

from keras_dsr.systems._registry import get_system

RTOL = 1e-10
ATOL = 1e-10


@dataclasses.dataclass
class Trajectory:
    """Result of :func:`simulate`.

    Attributes:
        x: observations ``[steps, N]`` (standardised and noisy as requested).
        clean: the same without observation noise ``[steps, N]``.
        states: raw integrated states ``[steps, D]`` (not standardised).
        t: sample times ``[steps]`` (time units, counted after the burn-in).
        dt: sampling interval (time units).
        mean, std: per-variable statistics ``[N]`` used for standardisation
            (zeros / ones when ``standardize=False``); raw = x * std + mean.
        inputs: external inputs ``[steps, K]`` aligned with ``x`` (e.g. the
            Duffing drive), or ``None`` for autonomous systems.
        system: the :class:`~keras_dsr.systems.System` (with its parameters).
        seed: the seed used.
    """

    x: np.ndarray
    clean: np.ndarray
    states: np.ndarray
    t: np.ndarray
    dt: float
    mean: np.ndarray
    std: np.ndarray
    inputs: Optional[np.ndarray]
    system: object
    seed: Optional[int]

    def unstandardize(self, y):
        """Map standardised observations ``y [..., N]`` back to raw units."""
        return np.asarray(y) * self.std + self.mean

    def standardize(self, y):
        """Map raw observations ``y [..., N]`` to this trajectory's standard units."""
        return (np.asarray(y) - self.mean) / self.std


def integrate(system, x0, t_eval, rtol=RTOL, atol=ATOL):
    """Integrate ``system`` from ``x0`` (at t = 0) and sample at ``t_eval``.

    DOP853 with tight tolerances. ``x0`` is one state ``[D]`` (returns
    ``[len(t_eval), D]``) or an ensemble ``[K, D]`` integrated as one vectorised
    ODE (returns ``[K, len(t_eval), D]``). Raises RuntimeError when the
    integrator fails or the state blows up.
    """
    t_eval = np.asarray(t_eval, dtype=float)
    x0 = np.asarray(x0, dtype=float)
    shape = x0.shape
    if x0.ndim == 1:
        fun = lambda t, y: system.rhs(y, system.params)  # noqa: E731
    else:
        fun = lambda t, y: system.rhs(y.reshape(shape), system.params).ravel()  # noqa: E731
    sol = solve_ivp(
        fun, (0.0, float(t_eval[-1])), x0.ravel(), method="DOP853",
        t_eval=t_eval, rtol=rtol, atol=atol,
    )
    if not sol.success or sol.y.shape[1] != t_eval.size or not np.all(np.isfinite(sol.y)):
        raise RuntimeError(
            f"Integration of {system.name!r} failed ({sol.message}); the parameters "
            f"{system.params} may make the flow unbounded."
        )
    if x0.ndim == 1:
        return sol.y.T
    return np.moveaxis(sol.y.reshape(shape + (t_eval.size,)), -1, -2)


def _check_args(system, steps, dt, burn_in, noise):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2, got {steps!r}.")
    dt = system.dt if dt is None else dt
    if not np.isscalar(dt) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive number (time units), got {dt!r}.")
    burn_in = system.burn_in if burn_in is None else burn_in
    if not np.isscalar(burn_in) or not np.isfinite(burn_in) or burn_in < 0:
        raise ValueError(f"burn_in must be a number >= 0 (time units), got {burn_in!r}.")
    if not np.isscalar(noise) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}.")
    return float(dt), float(burn_in)


def simulate_ensemble(name, steps, seeds=(0, 1), dt=None, burn_in=None, noise=0.0,
                      standardize=True, x0=None, params=None, dtype="float64",
                      rtol=RTOL, atol=ATOL):
    """Simulate several trajectories at once (one vectorised ODE solve).

    Same arguments as :func:`simulate`, with ``seeds`` (a sequence of ints, one
    per trajectory) instead of ``seed`` and ``x0`` of shape ``[K, D]`` if given.
    Each trajectory is standardised with its own statistics. Much cheaper than
    K calls of :func:`simulate`, since solve_ivp's cost is mostly per step.

    Example:
        >>> test, other = simulate_ensemble("lorenz63", 2000, seeds=(0, 1))
        >>> test.x.shape == other.x.shape == (2000, 3)
        True
    """
    system = get_system(name, **(params or {}))
    dt, burn_in = _check_args(system, steps, dt, burn_in, noise)
    seeds = list(seeds)
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of integers.")
    rngs = [np.random.default_rng(s) for s in seeds]
    if x0 is None:
        base = system.x0(system.params)
        x0 = np.stack([
            base if (s is not None and s == 0) else base + 0.01 * r.standard_normal(base.shape)
            for s, r in zip(seeds, rngs)
        ])
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim == 1 and len(seeds) == 1:
        x0 = x0[None]
    if x0.shape != (len(seeds), system.dim):
        raise ValueError(
            f"x0 must have shape ({system.dim},) (or ({len(seeds)}, {system.dim}) for an "
            f"ensemble), got {x0.shape}."
        )
    t = np.arange(steps) * dt
    if system.delay is not None:
        from keras_dsr.systems.delay import integrate_dde

        all_states = integrate_dde(system, x0, burn_in + t, rtol=rtol, atol=atol)
    else:
        all_states = integrate(system, x0, burn_in + t, rtol=rtol, atol=atol)
    out = []
    for states, seed, rng in zip(all_states, seeds, rngs):
        clean = system.observation(states)
        if standardize:
            mean, std = clean.mean(0), clean.std(0)
            std = np.where(std > 0, std, 1.0)
        else:
            mean, std = np.zeros(clean.shape[1]), np.ones(clean.shape[1])
        clean_s = (clean - mean) / std
        x = clean_s
        if noise > 0:
            scale = noise * (clean.std(0) / std)
            x = clean_s + scale * rng.standard_normal(clean_s.shape)
        inputs = None
        if system.inputs is not None:
            inputs = np.asarray(system.inputs(states), dtype=dtype)
        out.append(Trajectory(
            x=np.asarray(x, dtype=dtype), clean=np.asarray(clean_s, dtype=dtype),
            states=states, t=t, dt=dt, mean=mean, std=std, inputs=inputs,
            system=system, seed=seed,
        ))
    return out


def simulate(name, steps, dt=None, burn_in=None, noise=0.0, seed=0,
             standardize=True, x0=None, params=None, dtype="float64",
             rtol=RTOL, atol=ATOL):
    """Simulate a registered system and return a :class:`Trajectory`.

    The ODE is integrated with ``scipy.integrate.solve_ivp`` (DOP853, rtol and
    atol 1e-10) for ``burn_in`` time units (discarded) and then sampled every
    ``dt`` for ``steps`` samples. Delay systems (Mackey–Glass) start from the
    constant history x0 and are integrated by the method of steps.

    Args:
        name: system name (see :func:`list_systems`) or a ``System``.
        steps: number of samples T (int >= 2).
        dt: sampling interval in time units (default: the system's ``dt``).
        burn_in: transient to discard, in time units (default: the system's).
        noise: observation noise level: Gaussian noise with standard deviation
            ``noise * std`` of each variable is added (``noise=0.05`` is 5 %).
        seed: integer seed: it sets the noise and, unless it is 0 or ``x0`` is
            given, a small random perturbation (sd 0.01) of the default initial
            condition before the burn-in, so different seeds give independent
            trajectories on the attractor. ``None`` draws fresh entropy.
        standardize: z-score each observed variable with the statistics of the
            clean trajectory; they are returned (``mean``, ``std``) so that
            generated trajectories map back with ``Trajectory.unstandardize``.
        x0: initial state ``[D]`` (default: the system's, perturbed by ``seed``).
        params: dict of parameter overrides, e.g. ``{"rho": 24.5}``.
        dtype: dtype of ``x``/``clean``/``inputs``.

    Returns:
        a :class:`Trajectory` (``x`` is ``[steps, N]``).

    Example:
        >>> tr = simulate("lorenz63", 1000, seed=1)
        >>> tr.x.shape, round(float(tr.x.std()), 3)
        ((1000, 3), 1.0)
    """
    return simulate_ensemble(
        name, steps, seeds=[seed], dt=dt, burn_in=burn_in, noise=noise,
        standardize=standardize, x0=x0, params=params, dtype=dtype, rtol=rtol,
        atol=atol,
    )[0]
