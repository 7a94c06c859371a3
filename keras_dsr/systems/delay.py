r"""Delay differential equations: Mackey–Glass, integrated by the method of steps.

Mackey–Glass (1977):

    dx/dt = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x(t),

with beta = 0.2, gamma = 0.1, n = 10, tau = 17 (chaotic; the classic benchmark),
constant history x(t) = x0 for t <= 0, sampled every dt = 1.

Method of steps: on each interval [k tau, (k+1) tau] the delayed state is known
(the dense output of the previous interval's ``solve_ivp`` solution, DOP853), so
the DDE is an ODE there. Breaking the integration at multiples of tau also puts
the steps at the points where derivatives of the solution jump.

The largest Lyapunov exponent of a delay system: :func:`keras_dsr.lyapunov.lyapunov_max_dde`.
"""

import numpy as np
from scipy.integrate import solve_ivp

from keras_dsr.systems._registry import System, register_system


def _mg(x, x_tau, p):
    return p["beta"] * x_tau / (1.0 + x_tau ** p["n"]) - p["gamma"] * x


def _mg_jac(x, x_tau, p):
    n = p["n"]
    u = x_tau ** n
    dtau = p["beta"] * (1.0 + (1.0 - n) * u) / (1.0 + u) ** 2
    shape = np.shape(x)[:-1] + (1, 1)
    return np.full(shape, -p["gamma"]), np.reshape(dtau, shape)


def integrate_dde(system, x0, t_eval, rtol=1e-10, atol=1e-10):
    """Integrate a delay system from constant history ``x0`` and sample at ``t_eval``.

    Returns states ``[len(t_eval), D]`` (or ``[K, len(t_eval), D]`` for ``x0 [K, D]``,
    integrated one after the other).
    """
    x0 = np.asarray(x0, dtype=float)
    if x0.ndim == 2:
        return np.stack([integrate_dde(system, x, t_eval, rtol, atol) for x in x0])
    tau = float(system.params[system.delay])
    p = system.params
    t_eval = np.asarray(t_eval, dtype=float)
    out = np.empty((t_eval.size, x0.size))
    prev = None
    y = x0.copy()
    k = 0
    t_end = float(t_eval[-1])
    while k * tau <= t_end:
        t0, t1 = k * tau, (k + 1) * tau

        def fun(t, yy, prev=prev):
            x_tau = x0 if prev is None else prev(t - tau)
            return system.rhs(yy, x_tau, p)

        sol = solve_ivp(fun, (t0, t1), y, method="DOP853", dense_output=True,
                        rtol=rtol, atol=atol)
        if not sol.success or not np.all(np.isfinite(sol.y[:, -1])):
            raise RuntimeError(f"Integration of {system.name!r} failed: {sol.message}")
        sel = (t_eval >= t0) & (t_eval <= t1)
        if sel.any():
            out[sel] = sol.sol(t_eval[sel]).T
        prev = sol.sol
        y = sol.y[:, -1]
        k += 1
    return out


MACKEY_GLASS = register_system(System(
    "mackey_glass", 1, dict(beta=0.2, gamma=0.1, n=10.0, tau=17.0), _mg, _mg_jac, 1.0,
    lambda p: np.array([1.2]), 500.0,
    "x' = beta x(t - tau) / (1 + x(t - tau)^n) - gamma x   (history x = x0 for t <= 0)",
    lyapunov_time=5000.0, lyapunov_traj=1, delay="tau",
))
