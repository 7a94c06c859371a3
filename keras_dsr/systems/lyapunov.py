r"""True largest Lyapunov exponent of a system (variational equations + QR).

Benettin's method: integrate the state x together with tangent vectors Q
(dQ/dt = J(x) Q, the variational equations) with ``solve_ivp``; every ``chunk``
time units re-orthonormalise Q = Q' R by QR and accumulate log |R_ii|. After a
transient,

    lambda_i = sum_k log |R_ii^(k)| / (total time).

An ensemble of ``n_traj`` independent initial conditions is integrated as one
vectorised ODE and the estimates are averaged, which lowers the variance for the
same wall time.
"""

import numpy as np
from scipy.integrate import solve_ivp

from keras_dsr.systems._registry import System, get_system
from keras_dsr.systems.simulate import integrate


def _ensemble_start(system, n_traj, seed):
    """n_traj independent states on the attractor.

    The default initial condition is perturbed (sd 0.01, ``seed``) and the
    ensemble integrated for the system's burn-in time, long enough for the
    perturbations to grow to the attractor's size, so the members decorrelate.
    """
    rng = np.random.default_rng(seed)
    x0 = system.x0(system.params)
    x0 = x0 + 0.01 * rng.standard_normal((n_traj, x0.size))
    return integrate(system, x0, np.array([0.0, system.burn_in]), rtol=1e-9, atol=1e-9)[:, -1]


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
    system = get_system(system)
    if system.delay is not None:
        if int(n_exponents) != 1:
            raise ValueError("Delay systems: only n_exponents=1 is supported.")
        from keras_dsr.systems.delay import lyapunov_max_dde

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
    K = n_traj

    def rhs(t, y):
        x = y[: K * D].reshape(K, D)
        q = y[K * D:].reshape(K, D, p)
        dx = system.rhs(x, system.params)
        dq = system.jac(x, system.params) @ q
        return np.concatenate([dx.ravel(), dq.ravel()])

    n_transient = int(np.ceil(transient / chunk))
    n_avg = int(np.ceil(time / chunk))
    sums = np.zeros((K, p))
    for k in range(n_transient + n_avg):
        y0 = np.concatenate([X.ravel(), Q.ravel()])
        sol = solve_ivp(rhs, (0.0, chunk), y0, method="DOP853", rtol=rtol, atol=atol)
        if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
            raise RuntimeError(f"Variational integration of {system.name!r} failed: {sol.message}")
        y = sol.y[:, -1]
        X = y[: K * D].reshape(K, D)
        Q, R = np.linalg.qr(y[K * D:].reshape(K, D, p))
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
