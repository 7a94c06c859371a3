"""The :class:`System` record and the registry of benchmark systems."""

import dataclasses
from typing import Callable, Optional

import numpy as np

_REGISTRY = {}


@dataclasses.dataclass(frozen=True)
class System:
    """A benchmark dynamical system dx/dt = f(x; params).

    Attributes:
        name: registry key, e.g. ``"lorenz63"``.
        dim: dimension D of the integrated state.
        params: default parameter values (a dict of floats).
        rhs: ``rhs(x, p) -> dx/dt`` on states ``x`` of shape ``[..., D]``
            (vectorised over leading axes); ``p`` is the parameter dict.
        jac: ``jac(x, p) -> df/dx`` of shape ``[..., D, D]``.
        dt: default sampling interval (time units).
        x0: ``x0(p) -> [D]`` default initial condition.
        burn_in: default transient (time units) integrated and discarded.
        equations: the equations, as text (also in the docstring of the module).
        lyapunov_ref: a published largest Lyapunov exponent (per time unit) for
            the default parameters, or ``None``.
        lyapunov_time: averaging time (time units) per trajectory that
            :func:`lyapunov_max` uses by default for this system.
        lyapunov_traj: number of trajectories it averages by default.
        observe: ``observe(states) -> observations``; default identity.
        inputs: ``inputs(states, t) -> external inputs [T, K]`` for non-autonomous
            systems (e.g. the Duffing drive), else ``None``.
        obs_dim: number of observed variables N.
        delay: for delay differential equations, the name of the delay
            parameter tau; then ``rhs(x, x_tau, p)`` and ``jac(x, x_tau, p) ->
            (df/dx, df/dx_tau)`` take the delayed state as well, the history
            before t = 0 is constant (= x0), and integration proceeds by the
            method of steps (one ``solve_ivp`` per delay interval).
    """

    name: str
    dim: int
    params: dict
    rhs: Callable
    jac: Callable
    dt: float
    x0: Callable
    burn_in: float
    equations: str
    lyapunov_ref: Optional[float] = None
    lyapunov_time: float = 500.0
    lyapunov_traj: int = 16
    observe: Optional[Callable] = None
    inputs: Optional[Callable] = None
    obs_dim: Optional[int] = None
    dim_param: Optional[str] = None  # name of a parameter that sets ``dim``
    delay: Optional[str] = None  # delay systems: name of the delay parameter

    def with_params(self, **overrides):
        """A copy with some parameters replaced (unknown names raise ValueError)."""
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            raise ValueError(
                f"Unknown parameter(s) {unknown} for system {self.name!r}; "
                f"expected some of {sorted(self.params)}."
            )
        params = dict(self.params)
        params.update({k: v for k, v in overrides.items()})
        dim = self.dim
        obs_dim = self.obs_dim
        if self.dim_param is not None:
            dim = int(params[self.dim_param])
            if dim < 4:
                raise ValueError(
                    f"{self.name}: {self.dim_param} must be an integer >= 4, got "
                    f"{params[self.dim_param]!r}."
                )
            params[self.dim_param] = dim
            obs_dim = dim
        return dataclasses.replace(self, params=params, dim=dim, obs_dim=obs_dim)

    def f(self, x, x_tau=None):
        """Vector field at ``x`` ([..., D]) (and ``x_tau`` for delay systems)."""
        if self.delay is not None:
            return self.rhs(np.asarray(x, dtype=float), np.asarray(x_tau, dtype=float),
                            self.params)
        return self.rhs(np.asarray(x, dtype=float), self.params)

    def jacobian(self, x, x_tau=None):
        """Jacobian df/dx at ``x`` ([..., D]) -> [..., D, D].

        For delay systems a pair ``(df/dx, df/dx_tau)``.
        """
        if self.delay is not None:
            return self.jac(np.asarray(x, dtype=float), np.asarray(x_tau, dtype=float),
                            self.params)
        return self.jac(np.asarray(x, dtype=float), self.params)

    def observation(self, states):
        """Map integrated states [T, D] to observations [T, N]."""
        return states if self.observe is None else self.observe(states)

    @property
    def n_obs(self):
        """Number of observed variables N."""
        return self.dim if self.obs_dim is None else self.obs_dim


def register_system(system):
    """Add a :class:`System` to the registry (its name must be new)."""
    if not isinstance(system, System):
        raise TypeError(f"system must be a keras_dsr.systems.System, got {type(system)}")
    if system.name in _REGISTRY:
        raise ValueError(f"A system named {system.name!r} is already registered.")
    _REGISTRY[system.name] = system
    return system


def list_systems():
    """Names of all registered systems, sorted.

    Example:
        >>> "lorenz63" in list_systems()
        True
    """
    return sorted(_REGISTRY)


def get_system(name, **params):
    """The registered :class:`System` ``name``, optionally with new parameters.

    Args:
        name: a name from :func:`list_systems` (case-insensitive; ``-``, ``_`` and
            spaces are ignored, so ``"Lorenz-63"`` works), or a :class:`System` (returned, re-parametrised).
        **params: parameter overrides, e.g. ``get_system("lorenz63", rho=24.5)`` or
            ``get_system("lorenz96", dim=20, F=10.0)``.

    Example:
        >>> get_system("lorenz63", rho=24.5).params["rho"]
        24.5
    """
    if isinstance(name, System):
        return name.with_params(**params) if params else name
    if not isinstance(name, str):
        raise TypeError(f"name must be a system name (str) or a System, got {type(name)}")
    key = name.strip().lower().replace("-", "").replace(" ", "").replace("_", "")
    key = {k.replace("_", ""): k for k in _REGISTRY}.get(key)
    if key is None:
        raise ValueError(
            f"Unknown system {name!r}; expected one of {list_systems()}."
        )
    system = _REGISTRY[key]
    return system.with_params(**params) if params else system
