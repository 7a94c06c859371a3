r"""Lyapunov exponents: Benettin's QR method on maps, flows, delay systems and models.

One method throughout: tangent vectors are carried along an orbit by the
linearised dynamics and re-orthonormalised by QR; the exponents are the averaged
logs of the diagonal of R (for one vector, of its norm), after a transient that
aligns the vectors:

    lambda_i = sum_k log |R_ii^(k)| / (total time).

* Maps (:func:`lyapunov_max_jacobians`): the step Jacobians ``J_t`` along an orbit;
  :func:`local_growth` gives the growth at each step and the vector before it.
  A DSR model's (:func:`lyapunov_max_model`) come from ``model.cell.jacobian``
  along its free run.
* Flows (:func:`lyapunov_spectrum`, :func:`lyapunov_max`): the variational
  equations ``dQ/dt = J(x) Q`` integrated with the state by ``solve_ivp``
  (DOP853), for an ensemble of ``n_traj`` orbits as one vectorised ODE (the
  estimates are averaged, which lowers the variance for the same wall time).
  Along a given sampled trajectory (:func:`lyapunov_max_trajectory`), the same
  integration over each sampling interval gives the propagators that the map
  method then multiplies.
* Delay systems (:func:`lyapunov_max_dde`): the tangent "vector" is the function
  delta on the last delay interval, ``d delta/dt = (df/dx) delta(t) + (df/dx_tau)
  delta(t - tau)``, renormalised in L2 (64 samples) at the end of each interval.

Example:
    >>> J = np.tile(np.diag([2.0, 0.5]), (100, 1, 1))
    >>> bool(abs(lyapunov_max_jacobians(J, transient=10) - np.log(2.0)) < 1e-12)
    True
"""

import numpy as np
from scipy.integrate import solve_ivp

from keras_dsr._checks import check_int

__all__ = ["local_growth", "lyapunov_max", "lyapunov_max_dde", "lyapunov_max_jacobians",
           "lyapunov_max_model", "lyapunov_max_system", "lyapunov_max_trajectory",
           "lyapunov_spectrum"]


# ------------------------------------------------------------------ maps
def _jacobians(jacobians):
    J = np.asarray(jacobians, dtype=np.float64)
    if J.ndim != 3 or J.shape[1] != J.shape[2]:
        raise ValueError(f"jacobians must have shape [T, M, M], got {J.shape}.")
    if not np.all(np.isfinite(J)):
        raise FloatingPointError("jacobians contain NaN or inf; the growth is undefined.")
    return J


def local_growth(jacobians, v0=None):
    """Per-step log growth of one renormalised tangent vector (Benettin), and the vectors.

    With ``u_0 = v0 / |v0|``: ``growth[t] = log |J_t u_t|``, ``u_{t+1} = J_t u_t /
    |J_t u_t|``. Once ``u_t`` is aligned with the leading direction, the mean of
    ``growth`` is lambda_max per step (:func:`lyapunov_max_jacobians`); where along the
    orbit it is large shows where the expansion happens. A vector annihilated by some
    ``J_t`` (``J_t u_t = 0``) has growth ``-inf`` from that step on and zero vectors after.

    The products of 16 consecutive Jacobians are formed with batched matrix products
    and the vector renormalised once per 16 steps (the growths are the ratios of
    successive norms); 16 steps whose norms leave [1e-150, 1e150] are redone one by one.

    Args:
        jacobians: ``[T, M, M]``, J_t = d z_{t+1} / d z_t along an orbit; finite.
        v0: the starting vector ``[M]`` (normalised here); default ``(1, ..., 1)``.

    Returns:
        ``(growth [T], vectors [T, M])``: the log growth at each step and the unit
        vector ``u_t`` before it.

    Example:
        >>> growth, u = local_growth(np.tile(np.diag([2.0, 0.5]), (40, 1, 1)))
        >>> bool(abs(growth[-1] - np.log(2.0)) < 1e-12), u[-1].round(6).tolist()
        (True, [1.0, 0.0])
    """
    J = _jacobians(jacobians)
    (T, M, _), chunk = J.shape, 16
    v = np.ones(M) if v0 is None else np.asarray(v0, dtype=np.float64)
    if v.shape != (M,) or not np.all(np.isfinite(v)) or not np.any(v):
        raise ValueError(f"v0 must be a finite nonzero vector of length {M}, got shape "
                         f"{v.shape}.")
    v = v / np.linalg.norm(v)
    growth, vectors = np.empty(T), np.empty((T, M))
    for b in range(0, T, 256 * chunk):  # blocks bound the memory of the products
        Jb = J[b:b + 256 * chunk]
        n = Jb.shape[0] // chunk
        P = Jb[:n * chunk].reshape(n, chunk, M, M).copy()  # P[k, i] = J_i ... J_0 of chunk k
        W, R, V = np.empty((n, chunk, M)), np.ones((n, chunk)), np.empty((n, M))
        with np.errstate(all="ignore"):
            for i in range(1, chunk):
                P[:, i] = P[:, i] @ P[:, i - 1]
            for k in range(n):  # W[k, i] = P[k, i] V[k]: the vector after step i, unscaled
                V[k] = v
                np.matmul(P[k], v, out=W[k])
                r = np.sqrt(np.einsum("ij,ij->i", W[k], W[k]))
                if r.min() > 1e-150 and r.max() < 1e150:  # squares in range; False for NaN
                    R[k], v = r, W[k, -1] / r[-1]
                else:  # redone step by step, as the ragged end is
                    R[k], v = np.nan, _steps(Jb[k * chunk:(k + 1) * chunk], v, growth,
                                             vectors, b + k * chunk)
        ok = ~np.isnan(R[:, 0])
        g = np.diff(np.log(R[ok]), axis=1, prepend=0.0)
        u = np.concatenate([V[ok, None], W[ok, :-1] / R[ok, :-1, None]], axis=1)
        rows = (b + chunk * np.flatnonzero(ok))[:, None] + np.arange(chunk)
        growth[rows], vectors[rows] = g, u
        v = _steps(Jb[n * chunk:], v, growth, vectors, b + n * chunk)
    return growth, vectors


def _steps(J, v, growth, vectors, t0):
    """One step at a time through ``J``: fills ``growth`` and ``vectors`` from ``t0``."""
    for t, Jt in enumerate(J, start=t0):
        vectors[t] = v
        w = Jt @ v
        m = np.abs(w).max()
        r = m * np.linalg.norm(w / m) if m > 0 else 0.0  # no overflow or underflow
        growth[t] = np.log(r) if r > 0 else -np.inf
        v = w / r if r > 0 else w
    return v


def lyapunov_max_jacobians(jacobians, dt=1.0, transient=0, seed=0):
    """Largest Lyapunov exponent from a sequence of step Jacobians (Benettin).

    The mean of :func:`local_growth` (from a random unit vector, ``seed``) over the
    steps after ``transient``, per time unit: ``lambda_max = sum_{t >= transient}
    growth[t] / ((T - transient) dt)``.

    Args:
        jacobians: ``[T, M, M]``, J_t = d z_{t+1} / d z_t along a trajectory.
        dt: time per step (time units), so the result is per time unit.
        transient: leading steps used only to align the vector.

    Example:
        >>> J = np.tile(np.diag([2.0, 0.5]), (100, 1, 1))
        >>> bool(abs(lyapunov_max_jacobians(J, transient=10) - np.log(2.0)) < 1e-12)
        True
    """
    J = _jacobians(jacobians)
    if not dt > 0:
        raise ValueError(f"dt must be > 0 (time units per step), got {dt!r}.")
    T = J.shape[0]
    if not 0 <= int(transient) < T:
        raise ValueError(f"transient must be in [0, {T}), got {transient!r}.")
    growth, _ = local_growth(J, np.random.default_rng(seed).standard_normal(J.shape[1]))
    return float(growth[int(transient):].sum() / ((T - int(transient)) * dt))


def lyapunov_max_model(model, x0, steps=10_000, dt=1.0, transient=1_000, batch=512,
                       seed=0):
    """lambda_max of a DSR model (per time unit).

    Generates ``transient + steps + 1`` steps from ``x0`` with
    ``model.generate(..., return_latent=True)``, evaluates
    ``model.cell.jacobian`` at the latent states (in batches of ``batch``) and
    runs :func:`lyapunov_max_jacobians`, discarding the first ``transient``
    steps from the average and dividing by ``dt``.

    Args:
        model: a DSR model with ``generate`` and ``cell.jacobian``.
        x0: initial observation ``[N]`` or ``[1, N]``.
        steps: steps averaged.
        dt: sampling interval of the data the model was trained on (time units).

    Example:
        >>> lam = lyapunov_max_model(model, x_test[0], dt=0.01)  # doctest: +SKIP
    """
    if not hasattr(model, "generate") or not hasattr(getattr(model, "cell", None), "jacobian"):
        raise TypeError("model must have generate(..., return_latent=True) and "
                        f"cell.jacobian(z); got {type(model)}.")
    check_int(steps, "steps")
    check_int(transient, "transient", 0)
    from keras_dsr.measures import _generate, _to_numpy

    x0 = np.asarray(x0, dtype=np.float32).reshape(1, -1)
    _, z = _generate(model, x0, int(transient) + int(steps) + 1, return_latent=True)
    z = z[0]
    if not np.all(np.isfinite(z)):
        raise FloatingPointError("The generated trajectory diverged (NaN/inf); "
                                 "lambda_max of the model is undefined.")
    z = z[:-1]  # J at z_t maps a perturbation of z_t to z_{t+1}
    jac = np.concatenate([
        np.asarray(_to_numpy(model.cell.jacobian(z[i:i + batch].astype(np.float32))),
                   dtype=np.float64)
        for i in range(0, z.shape[0], batch)
    ])
    return lyapunov_max_jacobians(jac, dt=dt, transient=int(transient), seed=seed)


def lyapunov_max_trajectory(system, states, dt=None, transient=None, seed=0, rtol=1e-8,
                            atol=1e-8):
    """lambda_max along a given trajectory of a known system (per time unit).

    Between consecutive samples the tangent propagator
    ``Phi_t = d phi_dt(x) / dx`` at ``x = states[t]`` is obtained by integrating
    the variational equations ``dQ/dt = J(x) Q`` together with the state from
    ``states[t]`` over dt (``solve_ivp``, DOP853, one ODE for all t); Benettin on
    ``Phi_t`` gives lambda_max.

    Args:
        system: a name or ``System`` from :mod:`keras_dsr.systems`.
        states: raw (not standardised) states ``[T, D]`` sampled every dt, or a
            :class:`~keras_dsr.systems.Trajectory` (its ``states`` and ``dt``).
        dt: sampling interval (required unless a Trajectory is given).
        transient: steps used only for alignment (default: 10 %).
        rtol, atol: ``solve_ivp`` tolerances.

    Example:
        >>> tr = simulate("lorenz63", 20_000)            # doctest: +SKIP
        >>> lyapunov_max_trajectory("lorenz63", tr)        # doctest: +SKIP
        0.9...
    """
    from keras_dsr.measures import _as_2d
    from keras_dsr.systems import get_system

    system = get_system(system)
    if system.delay is not None:
        raise ValueError(f"{system.name!r} is a delay system: its tangent space is a "
                         "function space; use keras_dsr.systems.lyapunov_max instead.")
    if hasattr(states, "states") and hasattr(states, "dt"):
        dt = states.dt if dt is None else dt
        states = states.states
    x = _as_2d(states, "states")
    if x.shape[1] != system.dim:
        raise ValueError(f"states must have {system.dim} columns (the integrated state "
                         f"of {system.name!r}), got {x.shape[1]}.")
    if dt is None or not dt > 0:
        raise ValueError(f"dt must be a positive sampling interval, got {dt!r}.")
    D = system.dim
    _, Q = _variational(system, x[:-1], np.broadcast_to(np.eye(D), (x.shape[0] - 1, D, D)),
                        float(dt), rtol, atol)
    transient = Q.shape[0] // 10 if transient is None else int(transient)
    return lyapunov_max_jacobians(Q, dt=dt, transient=transient, seed=seed)


def lyapunov_max_system(system, **kwargs):
    """True lambda_max of a known system by integrating its variational equations.

    Alias of :func:`lyapunov_max` (same arguments).
    """
    return lyapunov_max(system, **kwargs)


# ------------------------------------------------------------------ flows
def _ensemble_start(system, n_traj, seed):
    """n_traj independent states on the attractor.

    The default initial condition is perturbed (sd 0.01, ``seed``) and the
    ensemble integrated for the system's burn-in time, long enough for the
    perturbations to grow to the attractor's size, so the members decorrelate.
    """
    from keras_dsr.systems.simulate import integrate

    rng = np.random.default_rng(seed)
    x0 = system.x0(system.params)
    x0 = x0 + 0.01 * rng.standard_normal((n_traj, x0.size))
    return integrate(system, x0, np.array([0.0, system.burn_in]), rtol=1e-9, atol=1e-9)[:, -1]


def _variational(system, X, Q, duration, rtol, atol):
    """``(X, Q)`` after ``duration``: states ``X`` [K, D] and tangent vectors ``Q``
    [K, D, p] carried by the flow and its variational equations ``dQ/dt = J(x) Q``
    (``solve_ivp``, DOP853, all K as one ODE); RuntimeError if the integration fails."""
    K, D = X.shape
    p = Q.shape[-1]

    def rhs(t, y):
        x = y[: K * D].reshape(K, D)
        q = y[K * D:].reshape(K, D, p)
        return np.concatenate([system.rhs(x, system.params).ravel(),
                               (system.jac(x, system.params) @ q).ravel()])

    sol = solve_ivp(rhs, (0.0, duration), np.concatenate([X.ravel(), Q.ravel()]),
                    method="DOP853", rtol=rtol, atol=atol)
    if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
        raise RuntimeError(f"Variational integration of {system.name!r} failed: {sol.message}")
    y = sol.y[:, -1]
    return y[: K * D].reshape(K, D), y[K * D:].reshape(K, D, p)


def lyapunov_spectrum(system, n_exponents=1, time=None, transient=None, chunk=1.0,
                      n_traj=None, seed=0, rtol=1e-6, atol=1e-6):
    """Leading Lyapunov exponents (per time unit) of a registered system.

    Args:
        system: a name from :func:`list_systems` or a ``System``.
        n_exponents: how many exponents (1 <= n <= D).
        time: averaging time per trajectory in time units (default: the system's
            ``lyapunov_time``).
        transient: time to let the tangent vectors align before averaging
            (default: 25 % of ``time``, at least 10 chunks;
            alignment is slow when lambda_1 - lambda_2 is small, e.g. Rössler).
        chunk: time between QR re-orthonormalisations.
        n_traj: number of trajectories integrated together and averaged
            (default: the system's ``lyapunov_traj``).
        rtol, atol: solve_ivp (DOP853) tolerances; the 8th-order method's error
            at 1e-6 is far below the statistical error of the estimate.

    Returns:
        (lambdas [n_exponents], per-trajectory estimates [n_traj, n_exponents]).
    """
    from keras_dsr.systems import get_system

    system = get_system(system)
    if system.delay is not None:
        if int(n_exponents) != 1:
            raise ValueError("Delay systems: only n_exponents=1 is supported.")
        time = float(system.lyapunov_time if time is None else time)
        lam = lyapunov_max_dde(system, time=time, transient=transient, seed=seed)
        return np.array([lam]), np.array([[lam]])
    D = system.dim
    if not 1 <= int(n_exponents) <= D:
        raise ValueError(f"n_exponents must be in [1, {D}], got {n_exponents!r}.")
    p = int(n_exponents)
    time = float(system.lyapunov_time if time is None else time)
    if time <= 0 or chunk <= 0:
        raise ValueError(f"time and chunk must be > 0, got time={time}, chunk={chunk}.")
    transient = max(10.0 * chunk, 0.25 * time) if transient is None else float(transient)
    n_traj = int(system.lyapunov_traj if n_traj is None else n_traj)
    if n_traj < 1:
        raise ValueError(f"n_traj must be >= 1, got {n_traj}.")
    X = _ensemble_start(system, n_traj, seed)
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n_traj, D, p)))[0]
    n_transient = int(np.ceil(transient / chunk))
    n_avg = int(np.ceil(time / chunk))
    sums = np.zeros((n_traj, p))
    for k in range(n_transient + n_avg):
        X, Q = _variational(system, X, Q, chunk, rtol, atol)
        Q, R = np.linalg.qr(Q)
        if k >= n_transient:
            sums += np.log(np.abs(np.diagonal(R, axis1=-2, axis2=-1)))
    per_traj = sums / (n_avg * chunk)
    return per_traj.mean(0), per_traj


def lyapunov_max(system, time=None, n_traj=None, seed=0, **kwargs):
    """True largest Lyapunov exponent (per time unit) of a system.

    Integrates the variational equations with ``solve_ivp`` (DOP853) and
    re-normalises by QR every ``chunk`` time units (see :func:`lyapunov_spectrum`
    for all arguments).

    Example:
        >>> lam = lyapunov_max("lorenz63")   # doctest: +SKIP
        >>> abs(lam - 0.9056) < 0.02 * 0.9056   # doctest: +SKIP
        True
    """
    lam, _ = lyapunov_spectrum(system, 1, time=time, n_traj=n_traj, seed=seed, **kwargs)
    return float(lam[0])


# ------------------------------------------------------------------ delay systems
def lyapunov_max_dde(system, time=5000.0, transient=None, seed=0, rtol=1e-8, atol=1e-8):
    """Largest Lyapunov exponent (per time unit) of a delay system (see module doc)."""
    from keras_dsr.systems.delay import integrate_dde

    tau = float(system.params[system.delay])
    p = system.params
    D = system.dim
    rng = np.random.default_rng(seed)
    x_hist = system.x0(p) + 0.01 * rng.standard_normal(D)
    # burn-in: start on the attractor
    x0 = integrate_dde(system, x_hist, np.array([0.0, system.burn_in]), rtol=rtol,
                       atol=atol)[-1]
    transient = max(10 * tau, 0.1 * time) if transient is None else float(transient)
    n_tr = int(np.ceil(transient / tau))
    n_avg = int(np.ceil(time / tau))
    # history on [-tau, 0]: the state is taken constant (a short transient), tangent 1
    prev = None
    scale = 1.0
    y = np.concatenate([x0, np.ones(D) / np.sqrt(D)])
    total = 0.0
    grid = np.linspace(0.0, tau, 64)
    for k in range(n_tr + n_avg):
        t0, t1 = k * tau, (k + 1) * tau

        def fun(t, yy, prev=prev, scale=scale):
            if prev is None:
                z = np.concatenate([x0, np.ones(D) / np.sqrt(D)])
            else:
                z = prev(t - tau)
            x, d = yy[:D], yy[D:]
            x_tau, d_tau = z[:D], z[D:] * scale
            A, B = system.jac(x, x_tau, p)
            return np.concatenate([system.rhs(x, x_tau, p), A @ d + B @ d_tau])

        sol = solve_ivp(fun, (t0, t1), y, method="DOP853", dense_output=True,
                        rtol=rtol, atol=atol)
        if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
            raise RuntimeError(f"Variational integration of {system.name!r} failed.")
        seg = sol.sol(t0 + grid)[D:]
        norm = np.sqrt(np.mean(np.sum(seg**2, axis=0)))
        if k >= n_tr:
            total += np.log(norm)
        prev, scale = sol.sol, 1.0 / norm
        y = np.concatenate([sol.y[:D, -1], sol.y[D:, -1] * scale])
    return total / (n_avg * tau)
