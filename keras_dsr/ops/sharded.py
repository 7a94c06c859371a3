"""Sequence parallelism: linear recurrences and DEER with time sharded over devices (JAX).

One long trajectory ``[..., T, M]`` is split along time into D contiguous shards,
one per device of a mesh axis. A linear recurrence ``h_t = A_t h_{t-1} + b_t``
(docs/method.md, "Linear scans") is then solved in three phases inside ``jax.shard_map``:

1. each device scans its own shard of affine maps ``(A_t, b_t)``: for every local
   t the composition ``(P_t, q_t)`` of its shard's maps up to t, so that
   ``h_t = P_t h_in + q_t`` with ``h_in`` the state entering the shard;
2. the D shard totals (the last ``(P, q)`` of each shard) are all-gathered and
   scanned, with ``h0`` folded in, giving every shard's ``h_in``
   (an exclusive scan over devices: O(D) data, O(log D) depth);
3. each device applies its carry-in: ``h_t = P_t h_in + q_t``.

Communication is one all-gather of D states and maps per solve; the work per
device is that of an unsharded scan of length T / D (plus the fix-up). DEER
(:func:`sharded_deer_solve`) runs every Newton iteration's linear recurrence this
way; the one-step map and its Jacobians are elementwise in time, and XLA
partitions them along the same axis (the inputs are placed sharded).

JAX only: on TensorFlow and PyTorch these functions raise ``NotImplementedError``.
"""

import functools

import keras

from keras_dsr.ops._tensor import as_tensor, matvec
from keras_dsr.ops.linear import _combine_dense, _combine_diagonal, _validate
from keras_dsr.ops.newton import deer_solve
from keras_dsr.ops.scan import associative_scan
from keras_dsr.ops.solvers import ShardedScan

DEFAULT_AXIS = "time"


def _require_jax(name):
    backend = keras.backend.backend()
    if backend != "jax":
        raise NotImplementedError(
            f"{name} needs the JAX backend (jax.shard_map); the active Keras backend is "
            f"{backend!r}. Set KERAS_BACKEND=jax before importing keras, or use the "
            "unsharded keras_dsr.ops functions."
        )


def _shard_map(fn, mesh, in_specs, out_specs):
    """``jax.shard_map`` (jax >= 0.6) or ``jax.experimental.shard_map`` (older jax)."""
    import jax

    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)
    from jax.experimental.shard_map import shard_map

    return shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs)


def time_mesh(devices=None, axis_name=DEFAULT_AXIS):
    """A 1-D ``jax.sharding.Mesh`` over ``devices`` (default: all) named ``axis_name``.

    Example:
        >>> mesh = time_mesh()            # e.g. Mesh('time': 4) on 4 GPUs
    """
    _require_jax("time_mesh")
    import jax
    import numpy as np

    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("time_mesh: `devices` is empty.")
    if not isinstance(axis_name, str):
        raise TypeError(f"`axis_name` must be a string, got {type(axis_name).__name__}.")
    return jax.sharding.Mesh(np.array(devices), (axis_name,))


def _resolve_mesh(mesh, axis_name):
    """``(mesh, axis_name, D)`` with defaults filled in and checked."""
    import jax

    if mesh is None:
        mesh = time_mesh(axis_name=axis_name or DEFAULT_AXIS)
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"`mesh` must be a jax.sharding.Mesh or None, got {type(mesh).__name__}.")
    if axis_name is None:
        if len(mesh.axis_names) != 1:
            raise ValueError(
                f"`axis_name` is required with a mesh of several axes {mesh.axis_names}: "
                "name the axis to shard time over."
            )
        axis_name = mesh.axis_names[0]
    if axis_name not in mesh.axis_names:
        raise ValueError(f"`axis_name`={axis_name!r} is not an axis of `mesh` {mesh.axis_names}.")
    return mesh, axis_name, int(mesh.shape[axis_name])


def _check_divisible(t, devices, axis_name, what):
    if t % devices:
        raise ValueError(
            f"{what} (T = {t}) must be divisible by the {devices} devices of mesh axis "
            f"{axis_name!r}; pad or trim the sequence to a multiple of {devices}."
        )


def _time_spec(rank, time_axis, axis_name):
    from jax.sharding import PartitionSpec

    spec = [None] * rank
    spec[time_axis] = axis_name
    return PartitionSpec(*spec)


def _local_solve(a, b, h0, *, dense, reverse, axis_name, devices):
    """Body of the shard_map: one device's shard of ``a`` and ``b`` (time axis -2 of b)."""
    import jax
    import jax.numpy as jnp

    time_axis = b.ndim - 2
    combine = _combine_dense if dense else _combine_diagonal
    if reverse:  # a reverse recurrence is a forward one on the time-flipped sequence
        a = jnp.flip(a, axis=time_axis)
        b = jnp.flip(b, axis=time_axis)
    # 1. local prefix compositions: h_t = P_t h_in + q_t within this shard.
    p, q = associative_scan(combine, (a, b), axis=time_axis)
    p_tot = jax.lax.index_in_dim(p, -1, axis=time_axis, keepdims=False)
    q_tot = jax.lax.index_in_dim(q, -1, axis=time_axis, keepdims=False)
    # 2. every device gathers the D totals (in time order) and scans them.
    p_all = jax.lax.all_gather(p_tot, axis_name)  # [D, ..., M(, M)]
    q_all = jax.lax.all_gather(q_tot, axis_name)  # [D, ..., M]
    if reverse:
        p_all, q_all = jnp.flip(p_all, 0), jnp.flip(q_all, 0)
    if h0 is not None:  # fold h0 into the first shard's total
        first = matvec(p_all[0], h0) if dense else p_all[0] * h0
        q_all = q_all.at[0].add(first)
    _, h_out = associative_scan(combine, (p_all, q_all), axis=0)  # state leaving shard d
    h_start = jnp.zeros_like(q_all[:1]) if h0 is None else h0[None]
    h_in_all = jnp.concatenate([h_start, h_out[:-1]], axis=0)  # state entering shard d
    index = jax.lax.axis_index(axis_name)
    if reverse:
        index = devices - 1 - index
    h_in = jnp.expand_dims(h_in_all[index], time_axis)  # [..., 1, M]
    # 3. fix-up with the carry-in.
    h = (matvec(p, h_in) if dense else p * h_in) + q
    if reverse:
        h = jnp.flip(h, axis=time_axis)
    return h


def sharded_linear_recurrence(a, b, h0=None, reverse=False, *, mesh=None, axis_name=None):
    """:func:`~keras_dsr.ops.linear_recurrence` with time sharded over devices (JAX).

    Solves ``h_t = A_t h_{t-1} + b_t`` (``reverse=True``: ``h_t = A_t h_{t+1} +
    b_t`` from ``h_{T+1} = h0``) exactly as :func:`linear_recurrence` does, with
    the time axis split into D equal contiguous shards, one per device of
    ``mesh``'s axis ``axis_name``: a local scan per device, an all-gather of the D
    shard totals and a scan over them (the carry into each shard), and a local
    fix-up. Results equal the unsharded scan's up to float rounding, and are
    differentiable (``jax.grad`` goes through ``shard_map``).

    Args:
        a: ``[..., T, M]`` (diagonal) or ``[..., T, M, M]`` (dense) coefficients.
        b: ``[..., T, M]`` offsets; time is axis -2 (axis -3 of a dense ``a``).
        h0: optional ``[..., M]`` initial state (replicated on every device).
        reverse: run time backwards, as in :func:`linear_recurrence`.
        mesh: a ``jax.sharding.Mesh``; default :func:`time_mesh` over all devices.
        axis_name: the mesh axis that time is sharded over; default the mesh's
            only axis (``"time"`` for the default mesh). Other mesh axes replicate.

    Returns:
        ``h`` ``[..., T, M]``, sharded along time over ``axis_name``.

    Raises:
        ValueError: T is not divisible by the number of devices on ``axis_name``
            (or the shapes are wrong, as in :func:`linear_recurrence`).
        NotImplementedError: the Keras backend is not JAX.

    Example:
        >>> # 4 devices (e.g. XLA_FLAGS=--xla_force_host_platform_device_count=4)
        >>> a = keras.ops.full((2, 1024, 3), 0.9); b = keras.ops.ones((2, 1024, 3))
        >>> h = sharded_linear_recurrence(a, b)   # == linear_recurrence(a, b)
    """
    _require_jax("sharded_linear_recurrence")
    mesh, axis_name, devices = _resolve_mesh(mesh, axis_name)
    a, b = as_tensor(a), as_tensor(b)
    h0 = None if h0 is None else as_tensor(h0)
    dense = _validate(a, b, h0)
    a = a.astype(b.dtype)
    t = b.shape[-2]
    _check_divisible(t, devices, axis_name, "the time axis of `b` (and `a`)")
    fn = _compiled_solver(mesh, axis_name, devices, a.ndim, b.ndim, dense, bool(reverse),
                          h0 is not None)
    return fn(a, b) if h0 is None else fn(a, b, h0.astype(b.dtype))


@functools.lru_cache(maxsize=64)
def _compiled_solver(mesh, axis_name, devices, a_rank, b_rank, dense, reverse, with_h0):
    """The jitted shard_map of :func:`_local_solve` (jit: an eager shard_map runs op by op)."""
    import jax
    from jax.sharding import PartitionSpec

    spec_b = _time_spec(b_rank, b_rank - 2, axis_name)
    spec_a = _time_spec(a_rank, b_rank - 2, axis_name)
    options = dict(dense=dense, reverse=reverse, axis_name=axis_name, devices=devices)
    if with_h0:
        fn = _shard_map(lambda a, b, h0: _local_solve(a, b, h0, **options), mesh,
                        in_specs=(spec_a, spec_b, PartitionSpec()), out_specs=spec_b)
    else:
        fn = _shard_map(lambda a, b: _local_solve(a, b, None, **options), mesh,
                        in_specs=(spec_a, spec_b), out_specs=spec_b)
    return jax.jit(fn)


def sharded_deer_solve(step_fn, z0, inputs=None, *, mesh=None, axis_name=None, **kwargs):
    """:func:`~keras_dsr.ops.deer_solve` with the time axis sharded over devices (JAX).

    Every Newton iteration's linear recurrence, and the final differentiable
    Newton step's, is :func:`sharded_linear_recurrence`; ``inputs`` and
    ``initial_guess`` are placed sharded along time so that the one-step map and
    its Jacobians are computed shard by shard. Values equal :func:`deer_solve`'s
    up to float rounding, and gradients (through the final Newton step) are the
    same exact BPTT gradients. A failed solve still falls back to the sequential
    loop, which then runs over the whole (gathered) sequence.

    Args:
        step_fn, z0, inputs: as in :func:`deer_solve` (``inputs`` ``[..., T, K]``).
        mesh, axis_name: as in :func:`sharded_linear_recurrence`.
        **kwargs: every other :func:`deer_solve` argument (``length``,
            ``jacobian_fn``, ``method``, ``initial_guess``, ``atol``, ``rtol``,
            ``max_iter``, ``max_jacobian_norm``, ``fallback``).

    Returns:
        ``(z, info)`` as :func:`deer_solve`: ``z`` ``[..., T, M]``.

    Raises:
        ValueError: T (from ``inputs``, ``initial_guess`` or ``length``) is not
            divisible by the number of devices on ``axis_name``.
        NotImplementedError: the Keras backend is not JAX.

    Example:
        >>> f = lambda z, u: 0.5 * keras.ops.tanh(z) + u
        >>> u = keras.random.normal((1, 100_000, 3))     # one long trajectory
        >>> z, info = sharded_deer_solve(f, keras.ops.zeros((1, 3)), u)
    """
    _require_jax("sharded_deer_solve")
    import jax
    from jax.sharding import NamedSharding

    mesh, axis_name, devices = _resolve_mesh(mesh, axis_name)
    if "linear_solver" in kwargs:
        raise TypeError("sharded_deer_solve: `linear_solver` is set by this function.")

    def place(x, name):
        x = as_tensor(x)
        if x.ndim < 2:
            return x  # deer_solve reports the shape error
        _check_divisible(x.shape[-2], devices, axis_name, f"the time axis of `{name}`")
        sharding = NamedSharding(mesh, _time_spec(x.ndim, x.ndim - 2, axis_name))
        return jax.lax.with_sharding_constraint(x, sharding)

    if inputs is not None:
        inputs = place(inputs, "inputs")
    if kwargs.get("initial_guess") is not None:
        kwargs["initial_guess"] = place(kwargs["initial_guess"], "initial_guess")
    length = kwargs.get("length")
    if isinstance(length, int) and not isinstance(length, bool) and length > 0:
        _check_divisible(length, devices, axis_name, "`length`")

    solver = ShardedScan(axis_name=axis_name, mesh=mesh)
    return deer_solve(step_fn, z0, inputs, linear_solver=solver, **kwargs)
