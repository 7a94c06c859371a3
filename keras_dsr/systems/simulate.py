"""Simulate a benchmark system: integration, burn-in, noise, standardisation."""

import dataclasses
from typing import Optional

import numpy as np
from scipy.integrate import solve_ivp

from keras_dsr._checks import check_int
from keras_dsr.systems._registry import get_system

RTOL = 1e-10
ATOL = 1e-10


@dataclasses.dataclass
class Trajectory:
    """Result of :func:`simulate`.

    Attributes:
        x: observations ``[steps, N]`` (standardised and noisy as requested).
        clean: the same without observation noise ``[steps, N]`` (with process
            noise, this is the noise-driven true trajectory, observed exactly).
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


SDE_MAX_STEP = 1e-3


def integrate_sde(system, x0, t_eval, process_noise, rngs, max_step=SDE_MAX_STEP):
    """Integrate dx = f(x) dt + diag(sigma) dW from ``x0`` (t = 0), sampled at ``t_eval``.

    Additive (state-independent) noise of intensity ``sigma = process_noise``
    (raw state units per square-root time unit; a number or one value per state
    variable). Each step of size h <= ``max_step`` (h divides every sampling
    interval) is a classical RK4 step of the drift followed by the Wiener
    increment ``sigma * sqrt(h) * N(0, 1)`` (Euler-Maruyama for the noise, an
    operator splitting that keeps the drift accurate at the steps used here).

    ``x0`` is ``[K, D]`` (an ensemble); ``rngs`` holds one numpy Generator per
    trajectory, so each trajectory's noise depends only on its own generator.
    Returns ``[K, len(t_eval), D]``; raises RuntimeError when a state blows up.
    """
    x = np.array(x0, dtype=float)
    t_eval = np.asarray(t_eval, dtype=float)
    sigma = np.broadcast_to(np.asarray(process_noise, dtype=float), (x.shape[-1],))
    f = lambda y: system.rhs(y, system.params)  # noqa: E731
    out = np.empty((x.shape[0], t_eval.size, x.shape[1]))
    t_prev = 0.0
    for n, t_next in enumerate(t_eval):
        span = t_next - t_prev
        sub = max(1, int(np.ceil(span / max_step - 1e-9))) if span > 0 else 0
        if sub:
            h = span / sub
            noise = np.stack([r.standard_normal((sub, x.shape[1])) for r in rngs], axis=1)
            noise *= sigma * np.sqrt(h)
            with np.errstate(over="ignore", invalid="ignore"):
                for i in range(sub):
                    k1 = f(x)
                    k2 = f(x + 0.5 * h * k1)
                    k3 = f(x + 0.5 * h * k2)
                    k4 = f(x + h * k3)
                    x = x + (h / 6.0) * (k1 + 2 * k2 + 2 * k3 + k4) + noise[i]
            if not np.all(np.isfinite(x)):
                raise RuntimeError(
                    f"Stochastic integration of {system.name!r} blew up before t = "
                    f"{t_next:g}; process_noise={process_noise!r} may be too large."
                )
        out[:, n] = x
        t_prev = t_next
    return out


def _check_args(system, steps, dt, burn_in, noise):
    check_int(steps, "steps", 2)
    dt = system.dt if dt is None else dt
    if not np.isscalar(dt) or not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive number (time units), got {dt!r}.")
    burn_in = system.burn_in if burn_in is None else burn_in
    if not np.isscalar(burn_in) or not np.isfinite(burn_in) or burn_in < 0:
        raise ValueError(f"burn_in must be a number >= 0 (time units), got {burn_in!r}.")
    if not np.isscalar(noise) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a number >= 0, got {noise!r}.")
    return float(dt), float(burn_in)


def _check_process_noise(system, process_noise):
    try:
        sigma = np.asarray(process_noise, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"process_noise must be a number >= 0 or {system.dim} such numbers (one per "
            f"state variable), got {process_noise!r}."
        ) from e
    if sigma.ndim > 1 or (sigma.ndim == 1 and sigma.size != system.dim) or not np.all(
            np.isfinite(sigma)) or np.any(sigma < 0):
        raise ValueError(
            f"process_noise must be a number >= 0 or {system.dim} such numbers (one per "
            f"state variable), got {process_noise!r}."
        )
    if np.any(sigma > 0) and system.delay is not None:
        raise ValueError(
            f"process_noise is not supported for the delay system {system.name!r} "
            f"(use process_noise=0)."
        )
    return sigma


def simulate_ensemble(name, steps, seeds=(0, 1), dt=None, burn_in=None, noise=0.0,
                      standardize=True, x0=None, params=None, dtype="float64",
                      rtol=RTOL, atol=ATOL, process_noise=0.0):
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
    sigma = _check_process_noise(system, process_noise)
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
    if np.any(sigma > 0):
        # a generator of its own (spawned from the seed) so that the observation
        # noise draws stay what they are without process noise
        proc_rngs = [np.random.default_rng(np.random.SeedSequence(s).spawn(1)[0])
                     for s in seeds]
        times = burn_in + t
        all_states = integrate_sde(system, x0, times, sigma, proc_rngs)
    elif system.delay is not None:
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
             rtol=RTOL, atol=ATOL, process_noise=0.0):
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
            ``noise * std`` of each observed variable (std of the clean
            trajectory) is added (``noise=0.05`` is 5 %); ``Trajectory.clean``
            keeps the trajectory without it.
        process_noise: dynamical noise intensity sigma (a number, or one per
            state variable; raw state units per square-root time unit): the
            system is integrated as the SDE dx = f(x) dt + sigma dW, burn-in
            included, with :func:`integrate_sde` (RK4 drift + Euler-Maruyama
            noise, internal step <= 1e-3 time units) instead of DOP853. The
            noise has a generator of its own derived from ``seed`` (same seed,
            same path); ``x``/``clean``/``states`` then hold the noise-driven
            trajectory (``clean``: before observation noise). ``0`` (default)
            is the deterministic ODE solve, unchanged. Not for delay systems.
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
        atol=atol, process_noise=process_noise,
    )[0]
