"""Solver strategies for :func:`keras_dsr.ops.deer_solve`, as objects.

Two kinds of strategy, in the style of diffrax's ``solver=...`` objects:

* the **nonlinear solver** (``method=``): how each Newton iteration linearises the
  map. :class:`Newton` (exact DEER, dense Jacobians), :class:`QuasiNewton`
  (diagonal Jacobians, O(T M) memory), :class:`DampedNewton` (Jacobians clipped
  to a norm bound: scan products cannot overflow) and :class:`Sequential` (no
  Newton at all: the compiled loop);
* the **linear solver** (``linear_solver=``): how each iteration's linear
  recurrence ``h_t = A_t h_{t-1} + b_t`` is solved. :class:`Scan` (one parallel
  scan over all T steps), :class:`ChunkedScan` (chunks of C steps one after
  another, the coefficients made chunk by chunk) and :class:`ShardedScan` (time
  split over devices, JAX).

Every strategy is registered with Keras (``keras.saving.serialize_keras_object``
round trip), compares equal to another with the same class and configuration,
and has a string shortcut: ``"deer"``, ``"quasi"``, ``"damped"``,
``"sequential"`` (:data:`METHODS`, the one list of method names) and ``"scan"``.

Example:
    >>> z, info = deer_solve(f, z0, u, method=DampedNewton(0.9),
    ...                      linear_solver=ChunkedScan(256))
"""

import keras
from keras import ops

from keras_dsr._checks import check_int, check_number
from keras_dsr.ops.linear import chunked_recurrence, linear_recurrence

__all__ = [
    "ChunkedScan",
    "DampedNewton",
    "LinearSolver",
    "METHODS",
    "Newton",
    "NonlinearSolver",
    "QuasiNewton",
    "Scan",
    "Sequential",
    "ShardedScan",
    "get_linear_solver",
    "get_solver",
    "method_option",
]

_register = keras.saving.register_keras_serializable(package="keras_dsr")


class _Strategy:
    """Configuration-only object: equality, hash, repr and Keras config from ``get_config``."""

    name = None

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _key(self):
        return (type(self), tuple(sorted(self.get_config().items())))

    def __eq__(self, other):
        return isinstance(other, _Strategy) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# --------------------------------------------------------------- nonlinear solvers
class NonlinearSolver(_Strategy):
    """Base of the ``method`` strategies.

    ``parallel``: False for the sequential loop. ``exact``: the iterations use the
    full Jacobian, so the converged iterate needs no final full-Jacobian step.
    ``linearise(full, diagonal, zp, u)`` returns one iteration's ``(f, J)`` given
    the callables ``full`` (``(f, J)`` with dense J) and ``diagonal`` (``(f,
    diag J)``).
    """

    parallel = True
    exact = False

    def linearise(self, full, diagonal, zp, u):
        raise NotImplementedError


@_register
class Newton(NonlinearSolver):
    """Exact DEER: dense Jacobians ``[..., T, M, M]``, quadratic convergence (``"deer"``)."""

    name = "deer"
    exact = True

    def linearise(self, full, diagonal, zp, u):
        return full(zp, u)


@_register
class QuasiNewton(NonlinearSolver):
    """quasi-DEER: only ``diag(J_t)``; O(T M) memory and work, more iterations (``"quasi"``)."""

    name = "quasi"

    def linearise(self, full, diagonal, zp, u):
        return diagonal(zp, u)


@_register
class DampedNewton(NonlinearSolver):
    """Newton with each ``J_t`` scaled to infinity norm <= ``max_norm`` (``"damped"``).

    Scan products cannot grow, so chaotic or badly started problems never
    overflow; the fixed point is the same, and where the map is already that
    contractive the steps are exact Newton steps.
    """

    name = "damped"

    def __init__(self, max_norm=1.0):
        self.max_norm = check_number(max_norm, "max_norm", low=0, strict=True,
                                     where="DampedNewton")

    def get_config(self):
        return {"max_norm": self.max_norm}

    def linearise(self, full, diagonal, zp, u):
        f, jac = full(zp, u)
        norm = ops.max(ops.sum(ops.abs(jac), axis=-1), axis=-1)[..., None, None]
        scale = ops.minimum(ops.ones_like(norm), self.max_norm / ops.maximum(norm, 1e-30))
        return f, jac * scale


@_register
class Sequential(NonlinearSolver):
    """No Newton iterations: the compiled sequential loop, differentiated by BPTT."""

    name = "sequential"
    parallel = False


_SOLVERS = {cls.name: cls for cls in (Newton, QuasiNewton, DampedNewton, Sequential)}
METHODS = tuple(_SOLVERS)


def _from_dict(value, base, what):
    obj = keras.saving.deserialize_keras_object(value)
    if not isinstance(obj, base):
        raise TypeError(f"`{what}` config must describe a {base.__name__}, got {type(obj).__name__}.")
    return obj


def get_solver(method, max_jacobian_norm=1.0):
    """The :class:`NonlinearSolver` for ``method``.

    Args:
        method: a :class:`NonlinearSolver`, its serialised config (dict), or one
            of the names :data:`METHODS` (``"damped"`` takes ``max_jacobian_norm``).
        max_jacobian_norm: the bound of ``"damped"`` given by name.
    """
    if isinstance(method, NonlinearSolver):
        return method
    if isinstance(method, dict):
        return _from_dict(method, NonlinearSolver, "method")
    if isinstance(method, str) and method in _SOLVERS:
        return DampedNewton(max_jacobian_norm) if method == "damped" else _SOLVERS[method]()
    raise ValueError(
        f"`method` must be one of {METHODS} or a solver object (Newton(), QuasiNewton(), "
        f"DampedNewton(max_norm), Sequential()), got {method!r}."
    )


def method_option(method, where):
    """A layer's ``method`` argument checked: ``"auto"``, a name, or a solver object.

    Names stay names (so configs keep them); a serialised solver (dict) becomes the
    object. Bad values raise ``ValueError`` prefixed with ``where`` (the layer's name).
    """
    if isinstance(method, NonlinearSolver) or (isinstance(method, str) and method == "auto"):
        return method
    try:
        solver = get_solver(method)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err} ('auto' is accepted too.)") from None
    return solver if isinstance(method, dict) else solver.name


def serialize(strategy):
    """A name for a default-configured strategy, else its Keras config (for ``get_config``)."""
    if isinstance(strategy, _Strategy):
        if strategy.name is not None and strategy == _by_name(strategy.name):
            return strategy.name
        return keras.saving.serialize_keras_object(strategy)
    return strategy


def _by_name(name):
    return Scan() if name == "scan" else get_solver(name)


# ------------------------------------------------------------------ linear solvers
def _flip_time(a, b):
    dense = len(a.shape) > len(b.shape)
    return ops.flip(a, axis=-3 if dense else -2), ops.flip(b, axis=-2)


class LinearSolver(_Strategy):
    """Base of the ``linear_solver`` strategies.

    ``self(a, b, h0)`` solves ``h_t = A_t h_{t-1} + b_t`` as
    :func:`~keras_dsr.ops.linear_recurrence` does; ``solve(coefficients, xs, h0,
    reverse, remat)`` solves the recurrence whose coefficients are
    ``coefficients(*xs) -> (a, b)`` (a chunking solver calls it chunk by chunk);
    ``chunk_lengths(t)`` lists the time lengths ``coefficients`` is called with.
    """

    def __call__(self, a, b, h0=None):
        raise NotImplementedError

    def solve(self, coefficients, xs, h0, reverse=False, remat=False):
        del remat
        a, b = coefficients(*xs)
        if not reverse:
            return self(a, b, h0)
        # Time reversed, a backward recurrence is a forward one.
        return ops.flip(self(*_flip_time(a, b), h0), axis=-2)

    def chunk_lengths(self, t):
        return [t]


@_register
class Scan(LinearSolver):
    """One parallel associative scan over all T steps (:func:`linear_recurrence`)."""

    name = "scan"

    def __call__(self, a, b, h0=None):
        return linear_recurrence(a, b, h0)

    def solve(self, coefficients, xs, h0, reverse=False, remat=False):
        return linear_recurrence(*coefficients(*xs), h0, reverse=reverse)


@_register
class ChunkedScan(LinearSolver):
    """Chunks of ``size`` steps, one after another, a parallel scan within each.

    The coefficients ``[..., C, M, M]`` are made per chunk, so no ``[..., T, M,
    M]`` tensor exists: memory O(T M) plus one chunk's, depth O((T/C) log C)
    (:func:`keras_dsr.ops.linear.chunked_recurrence`). ``size >= T`` is :class:`Scan`.
    """

    def __init__(self, size):
        self.size = check_int(size, "size", where="ChunkedScan")

    def get_config(self):
        return {"size": self.size}

    def __call__(self, a, b, h0=None):
        return linear_recurrence(a, b, h0, chunk_size=self.size)

    def solve(self, coefficients, xs, h0, reverse=False, remat=False):
        t = xs[0].shape[len(h0.shape) - 1]
        if t is not None and self.size >= t:
            return Scan().solve(coefficients, xs, h0, reverse)
        return chunked_recurrence(coefficients, xs, h0, self.size, reverse=reverse, remat=remat)

    def chunk_lengths(self, t):
        return [t] if self.size >= t else sorted({self.size, t % self.size} - {0})


@_register
class ShardedScan(LinearSolver):
    """Time split over the devices of a mesh axis (JAX; :func:`sharded_linear_recurrence`).

    Args:
        axis_name: the mesh axis time is sharded over; default the mesh's only axis.
        mesh: a ``jax.sharding.Mesh``; default all devices on one axis. A mesh
            object is not part of the configuration: a reloaded ShardedScan uses
            the default mesh with ``axis_name``.
    """

    def __init__(self, axis_name=None, mesh=None):
        if axis_name is not None and not isinstance(axis_name, str):
            raise TypeError(f"ShardedScan: `axis_name` must be a string or None, got {axis_name!r}.")
        self.axis_name, self.mesh = axis_name, mesh

    def get_config(self):
        return {"axis_name": self.axis_name}

    def __call__(self, a, b, h0=None):
        from keras_dsr.ops.sharded import sharded_linear_recurrence

        return sharded_linear_recurrence(a, b, h0, mesh=self.mesh, axis_name=self.axis_name)


class _FunctionScan(LinearSolver):
    """A plain callable ``(a, b, h0) -> h`` used as a linear solver (not serialisable)."""

    def __init__(self, fn):
        self.fn = fn

    def get_config(self):
        raise TypeError("A linear solver given as a function has no config; use a LinearSolver.")

    def _key(self):
        return (type(self), self.fn)

    def __repr__(self):
        return f"_FunctionScan({self.fn!r})"

    def __call__(self, a, b, h0=None):
        return self.fn(a, b, h0)


def get_linear_solver(linear_solver=None, chunk_size=None):
    """The :class:`LinearSolver` for ``linear_solver`` / ``chunk_size``.

    Args:
        linear_solver: None (``Scan()``, or ``ChunkedScan(chunk_size)``), ``"scan"``,
            a :class:`LinearSolver`, its serialised config (dict), or a callable
            ``(a, b, h0) -> h`` with the semantics of :func:`linear_recurrence`.
        chunk_size: None or a positive int; only with ``linear_solver=None``.
    """
    chunk_size = check_int(chunk_size, "chunk_size", allow_none=True)
    if linear_solver is None:
        return Scan() if chunk_size is None else ChunkedScan(chunk_size)
    if chunk_size is not None:
        raise ValueError("Pass `chunk_size` or `linear_solver`, not both.")
    if isinstance(linear_solver, LinearSolver):
        return linear_solver
    if isinstance(linear_solver, dict):
        return _from_dict(linear_solver, LinearSolver, "linear_solver")
    if linear_solver == "scan":
        return Scan()
    if callable(linear_solver):
        return _FunctionScan(linear_solver)
    raise TypeError(
        "`linear_solver` must be None, 'scan', a LinearSolver (Scan(), ChunkedScan(size), "
        f"ShardedScan()) or a callable (a, b, h0) -> h; got {linear_solver!r}."
    )
