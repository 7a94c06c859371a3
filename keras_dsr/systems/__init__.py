"""Benchmark dynamical systems: equations, simulation and true Lyapunov exponents.

Example:
    >>> from keras_dsr import systems
    >>> tr = systems.simulate("lorenz63", steps=10_000, seed=0)
    >>> tr.x.shape
    (10000, 3)
"""

from keras_dsr.systems._registry import System, get_system, list_systems, register_system
from keras_dsr.systems import delay, flows  # noqa: F401  (registers the systems)
from keras_dsr.systems.simulate import Trajectory, integrate, simulate, simulate_ensemble
from keras_dsr.lyapunov import lyapunov_max, lyapunov_spectrum  # noqa: E402

__all__ = [
    "System", "Trajectory", "get_system", "integrate", "list_systems",
    "lyapunov_max", "lyapunov_spectrum", "register_system", "simulate",
    "simulate_ensemble",
]
