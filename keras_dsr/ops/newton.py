"""DEER: nonlinear recurrences solved by Newton's method over parallel scans.

A recurrence ``z_t = f(z_{t-1}, u_t)`` (t = 1..T, given ``z_0``) is solved for the
whole trajectory at once. Around a guess ``z^(k)`` the map is linearised,

    z_t^(k+1) = J_t z_{t-1}^(k+1) + [f(z_{t-1}^(k), u_t) - J_t z_{t-1}^(k)],
    J_t = df/dz (z_{t-1}^(k), u_t),

and each such linear recurrence is one parallel scan (:func:`linear_recurrence`).
This is Newton's method on the stacked equations; it reaches the sequential result
to float tolerance (Lim et al. 2024, "Parallelizing non-linear sequential models
over the sequence length"; Gonzalez et al. 2024 for quasi-DEER and damped steps).

Gradients never flow through the iterations; they are the implicit-function-
theorem gradient at the converged trajectory ``z*``, equal to the BPTT gradient of
the sequential recurrence. On JAX it is defined directly (``jax.custom_vjp``): the
forward pass is the Newton solve only, and the backward pass is one reverse-time
linear scan of the transposed Jacobians at ``z*``, ``lambda_t = g_t +
J_{t+1}^T lambda_{t+1}``, whose result is pulled back through one vectorised
vector-Jacobian product of the map (parameters, ``z_0``, inputs). On TensorFlow and
PyTorch one more Newton step is taken at ``z*`` (held under ``stop_gradient``), with
the full Jacobian and with the parameters, ``z_0`` and the inputs live; its
derivative is the same gradient and its backward pass the same reverse scan.

Failure (a non-finite iterate, or ``max_iter`` without convergence) is detected
inside the compiled computation; the values returned are then those of the
sequential recurrence, and the diagnostics say so (``fell_back``). Their gradient
is BPTT's: on JAX the same adjoint recurrence at the sequential solution, run step
by step; on TensorFlow and PyTorch autodiff through the loop.
"""

import keras
from keras import ops

from keras_dsr._checks import check_int
from keras_dsr.ops._tensor import as_tensor, matvec, reduce_max

from keras_dsr.ops.implicit import jax_implicit
from keras_dsr.ops.jacobian import no_grad, value_and_batch_jacobian
from keras_dsr.ops.solvers import METHODS, get_linear_solver, get_solver  # noqa: F401


def default_tolerances(dtype, method=None):
    """Stopping tolerances ``(atol, rtol)`` for a dtype and method.

    The float32 values are the DEER authors' (atol 1e-4, rtol 1e-3). They serve
    every method: the solve always ends with one full-Jacobian Newton step, which
    squares the remaining error (quadratic convergence), so the iterations only
    need to reach Newton's basin, whether they were exact (``deer``), diagonal
    (``quasi``) or clipped (``damped``).
    """
    del method  # the same for every method: see the docstring.
    name = keras.backend.standardize_dtype(dtype)
    if name == "float64":
        return (1e-8, 1e-6)
    if name in ("float16", "bfloat16"):
        return (1e-2, 1e-2)
    return (1e-4, 1e-3)


def _shift(z, z0):
    """Previous states ``[z_0, z_1, .., z_{T-1}]`` of a trajectory ``[..., T, M]``."""
    return ops.concatenate([ops.expand_dims(z0, -2), z[..., :-1, :]], axis=-2)


def _diagonal(jac):
    return ops.diagonal(jac, axis1=-2, axis2=-1)


def _time_axis(arr, name, z0, last, t):
    """T of ``arr`` ``[..., T, last]`` (``last`` None: any) with the leading dims of ``z0``;
    it must equal ``t`` when that is known."""
    lead = tuple(z0.shape[:-1])
    want = "K" if last is None else "M"
    if (len(arr.shape) != len(z0.shape) + 1 or tuple(arr.shape[:-2]) != lead
            or (last is not None and arr.shape[-1] != last)):
        raise ValueError(
            f"`{name}` must have shape [..., T, {want}] with the leading dims of `z0` "
            f"{tuple(z0.shape)}; got {tuple(arr.shape)}."
        )
    if t is not None and t != arr.shape[-2]:
        raise ValueError(f"`{name}` has T={arr.shape[-2]} steps, but the sequence length "
                         f"(`length` or `inputs`) is {t}.")
    return arr.shape[-2]


def _validate(step_fn, z0, inputs, length, initial_guess, jacobian_fn, max_iter):
    if not callable(step_fn):
        raise TypeError(f"`step_fn` must be callable f(z_prev, u), got {type(step_fn)}.")
    if jacobian_fn is not None and not callable(jacobian_fn):
        raise TypeError(
            f"`jacobian_fn` must be callable J(z_prev, u) or None, got {type(jacobian_fn)}."
        )
    if len(z0.shape) < 1:
        raise ValueError(f"`z0` must have shape [..., M], got shape {tuple(z0.shape)}.")
    m = z0.shape[-1]
    t = length
    for arr, name, last in ((inputs, "inputs", None), (initial_guess, "initial_guess", m)):
        if arr is not None:
            t = _time_axis(arr, name, z0, last, t)
    if t is None:
        raise ValueError(
            "The sequence length is unknown: pass `inputs` [..., T, K], "
            "`initial_guess` [..., T, M] or `length`=T."
        )
    check_int(max_iter, "max_iter", allow_none=True)
    return check_int(t, "the sequence length T")


def sequential_solve(step_fn, z0, inputs=None, length=None):
    """Reference solve of ``z_t = f(z_{t-1}, u_t)``, t = 1..T, by a compiled loop.

    Args:
        step_fn: ``f(z_prev [..., M], u [..., K] or None) -> [..., M]``.
        z0: ``[..., M]`` initial state.
        inputs: optional ``[..., T, K]``; time is axis -2.
        length: T, required when ``inputs`` is None.

    Returns:
        ``[..., T, M]``: ``z_1 .. z_T``. Differentiable (plain BPTT).

    Example:
        >>> z = sequential_solve(lambda z, u: 0.5 * z + 1.0, keras.ops.zeros((2, 3)), length=4)
    """
    z0 = as_tensor(z0)
    if inputs is not None:
        inputs = as_tensor(inputs)
    t = _validate(step_fn, z0, inputs, length, None, None, None)

    def body(carry, u):
        nxt = step_fn(carry, u)
        return nxt, nxt

    xs = None if inputs is None else ops.moveaxis(inputs, -2, 0)
    _, zs = ops.scan(body, z0, xs, length=t)
    return ops.moveaxis(zs, 0, -2)


def deer_solve(
    step_fn,
    z0,
    inputs=None,
    *,
    length=None,
    jacobian_fn=None,
    method="deer",
    initial_guess=None,
    atol=None,
    rtol=None,
    max_iter=None,
    max_jacobian_norm=1.0,
    fallback=True,
    linear_solver=None,
    chunk_size=None,
):
    """Solve ``z_t = f(z_{t-1}, u_t)`` (t = 1..T) in parallel by Newton's method.

    Args:
        step_fn: ``f(z_prev, u) -> z_next``, vectorised: ``z_prev`` ``[..., T, M]``
            and ``u`` ``[..., T, K]`` (or None) for all t at once.
            When ``jacobian_fn`` is None and ``step_fn`` has a method or attribute
            ``step_and_jacobian(z_prev, u) -> (z_next, J)`` (every keras_dsr cell
            and :class:`KerasCellAdapter` has), each Newton step evaluates the map
            and its dense Jacobian with it in one pass; likewise
            ``jacobian_diagonal(z_prev, u)`` serves ``"quasi"``.
        z0: ``[..., M]`` initial state ``z_0``.
        inputs: optional ``[..., T, K]`` inputs ``u_1..u_T`` (time is axis -2).
        length: T when neither ``inputs`` nor ``initial_guess`` gives it.
        jacobian_fn: optional analytic ``J(z_prev, u)`` returning ``[..., T, M, M]``
            (or the diagonal ``[..., T, M]``); by default :func:`batch_jacobian`.
        method: the nonlinear solver (:mod:`keras_dsr.ops.solvers`): an object,
            or its name. ``Newton()`` / ``"deer"`` (dense Jacobians, O(T M^2)
            memory, quadratic convergence), ``QuasiNewton()`` / ``"quasi"``
            (diagonal of J only, O(T M) memory, more iterations),
            ``DampedNewton(max_norm)`` / ``"damped"`` (each J_t rescaled to
            infinity norm <= max_norm: scan products cannot grow, so chaotic or
            badly started problems never overflow; same fixed point) or
            ``Sequential()`` / ``"sequential"`` (the compiled loop).
        initial_guess: ``[..., T, M]`` first iterate; default ``z0`` repeated. For
            teacher-forced training the data-inferred states are a good guess.
        atol, rtol: stop when ``max_t |z^(k+1) - z^(k)| <= atol + rtol |z^(k+1)|``
            elementwise; defaults from :func:`default_tolerances`.
        max_iter: iteration cap; default ``min(T, 100)`` (Newton on this triangular
            system is exact after at most T iterations).
        max_jacobian_norm: the norm bound of ``method="damped"`` given by name.
        fallback: when True (default), a failed solve (non-finite iterate or no
            convergence in ``max_iter``) returns the sequential result instead.
        linear_solver: the solver of each Newton step's linear recurrence (and,
            on JAX, of the gradient's reverse recurrence): ``Scan()`` (default,
            one parallel scan), ``ChunkedScan(C)``, ``ShardedScan()`` (time over
            devices, JAX), a serialised one, or a callable ``(a, b, h0) -> h``
            with the semantics of :func:`linear_recurrence`.
        chunk_size: shortcut for ``linear_solver=ChunkedScan(chunk_size)``: every
            Newton step runs chunk by chunk (C steps each, one after another, a
            parallel scan within each), its Jacobians ``[..., C, M, M]`` made per
            chunk, so no ``[..., T, M, M]`` tensor exists and the memory is
            O(T M) plus one chunk's, for the gradient too. Same values and
            gradients up to float rounding; depth O((T/C) log C). ``step_fn``
            and ``jacobian_fn`` are then called on chunks ``[..., C, M]``:
            anything that varies in time must come through ``inputs``.

    Returns:
        ``(z, info)``: ``z`` ``[..., T, M]`` = ``z_1 .. z_T``; ``info`` a dict of
        scalar tensors: ``iterations`` (Newton iterations before the final
        differentiable step), ``residual`` (last ``max |dz| / (atol + rtol |z|)``;
        <= 1 means converged), ``converged`` (bool), ``fell_back`` (bool: the
        values are the sequential recurrence's) and ``finite`` (bool: all of ``z``
        is finite; False only if the true recurrence itself overflows).

    Example:
        >>> f = lambda z, u: 0.5 * keras.ops.tanh(z) + u
        >>> u = keras.random.normal((4, 1000, 3))
        >>> z, info = deer_solve(f, keras.ops.zeros((4, 3)), u)
        >>> int(info["iterations"])  # a handful
    """
    z0 = as_tensor(z0)
    if inputs is not None:
        inputs = as_tensor(inputs)
    if initial_guess is not None:
        initial_guess = as_tensor(initial_guess)
    t = _validate(step_fn, z0, inputs, length, initial_guess, jacobian_fn, max_iter)
    solver = get_solver(method, max_jacobian_norm)
    linear_solver = get_linear_solver(linear_solver, chunk_size)
    dtype = z0.dtype
    if not solver.parallel:
        z = sequential_solve(step_fn, z0, inputs, t)
        info = {
            "iterations": as_tensor(0, "int32"),
            "residual": as_tensor(0.0, dtype),
            "converged": as_tensor(True),
            "fell_back": as_tensor(False),
            "finite": ops.all(ops.isfinite(z)),
        }
        return z, info
    d_atol, d_rtol = default_tolerances(dtype)
    atol = d_atol if atol is None else float(atol)
    rtol = d_rtol if rtol is None else float(rtol)
    max_iter = min(t, 100) if max_iter is None else max_iter

    # A cell may evaluate its map and Jacobian in one pass (``step_and_jacobian``,
    # e.g. the shared Runge-Kutta stages of PolynomialFlow); else the analytic
    # ``jacobian_fn`` next to ``step_fn``; else one autodiff pass gives both.
    cell_linearise = getattr(step_fn, "step_and_jacobian", None) if jacobian_fn is None else None
    cell_diagonal = getattr(step_fn, "jacobian_diagonal", None) if jacobian_fn is None else None

    def full_linearisation(zp, u):
        """``(f(zp, u), J(zp, u))``, the dense Jacobian."""
        if jacobian_fn is not None:
            jac = jacobian_fn(zp, u)
            if len(jac.shape) == len(zp.shape) + 1:
                return step_fn(zp, u), jac
        if cell_linearise is not None:
            return cell_linearise(zp, u)
        return value_and_batch_jacobian(step_fn, zp, u)

    def diagonal_linearisation(zp, u):
        """``(f(zp, u), diag J(zp, u))``."""
        if jacobian_fn is not None:
            f, jac = step_fn(zp, u), jacobian_fn(zp, u)
        elif cell_diagonal is not None:
            f, jac = step_fn(zp, u), cell_diagonal(zp, u)
        else:
            f, jac = value_and_batch_jacobian(step_fn, zp, u)
        return f, (_diagonal(jac) if len(jac.shape) == len(zp.shape) + 1 else jac)

    def full_jacobian(zp, u):
        return ops.stop_gradient(full_linearisation(zp, u)[1])

    def iteration_linearisation(zp, u):
        """``(f, J)`` of one Newton iteration (no gradient): J as the solver wants it."""
        f, jac = solver.linearise(full_linearisation, diagonal_linearisation, zp, u)
        return ops.stop_gradient(f), ops.stop_gradient(jac)

    def iteration_linearisation_full(zp, u):
        f, jac = full_linearisation(zp, u)
        return ops.stop_gradient(f), ops.stop_gradient(jac)

    def final_linearisation(zp, u):
        """``(f, J)`` of the differentiable final step: ``f`` live, ``J`` constant."""
        return step_fn(zp, u), full_jacobian(zp, u)

    def newton_step(z, z_init, linearise, remat=False):
        """One Newton step around ``z`` (constant), with ``z_init`` the live z_0.

        A chunking linear solver makes the Jacobians and offsets chunk by chunk,
        never for all T steps at once.
        """

        def coefficients(zp, u=None):
            f, jac = linearise(zp, u)
            if len(jac.shape) == len(zp.shape) + 1:
                jz = matvec(jac, zp)
            else:
                jz = jac * zp
            return jac, f - jz

        zp = _shift(z, ops.stop_gradient(z_init))
        xs = (zp,) if inputs is None else (zp, inputs)
        return linear_solver.solve(coefficients, xs, z_init, remat=remat)

    if initial_guess is None:
        shape = tuple(ops.shape(z0)[:-1]) + (t, z0.shape[-1])
        guess = ops.broadcast_to(ops.expand_dims(z0, -2), shape)
    else:
        guess = ops.cast(initial_guess, dtype)
    z0_const = ops.stop_gradient(z0)
    guess = ops.stop_gradient(guess)

    def cond(k, z, res, finite):
        return ops.logical_and(ops.logical_and(k < max_iter, res > 1.0), finite)

    def body(k, z, res, finite):
        z_new = newton_step(z, z0_const, iteration_linearisation)
        ok = ops.all(ops.isfinite(z_new))
        scale = atol + rtol * ops.abs(z_new)
        res_new = reduce_max(ops.abs(z_new - z) / scale)
        z_next = ops.where(ok, z_new, z)
        res_next = ops.where(ok, res_new, as_tensor(float("inf"), dtype))
        return k + 1, z_next, res_next, ok

    with no_grad():
        state = (
            as_tensor(0, "int32"),
            guess,
            as_tensor(float("inf"), dtype),
            as_tensor(True),
        )
        k, z_star, res, finite_iter = ops.while_loop(cond, body, state)
    z_star = ops.stop_gradient(z_star)
    converged = ops.logical_and(res <= 1.0, finite_iter)

    if keras.backend.backend() == "jax":
        # The value is the Newton solution itself (exact DEER has converged
        # quadratically; the other methods get one full-Jacobian step, without
        # gradient, which squares their remaining error), or, when the solve
        # failed, the sequential loop's; the gradient is defined directly at
        # that solution: one reverse-time recurrence with the transposed
        # Jacobians (:func:`jax_implicit`), a parallel scan after Newton and
        # step by step (as BPTT) after the fallback. No extra forward solve,
        # and the forward pass keeps nothing for the branch not taken.
        if solver.exact:
            z_value = z_star
        else:
            with no_grad():
                z_value = ops.stop_gradient(
                    newton_step(z_star, z0_const, iteration_linearisation_full)
                )
        # Exact Newton's iterates were checked in the loop; the other methods'
        # full-Jacobian step can overflow for an expanding map.
        if solver.exact:
            use_newton = converged
        else:
            use_newton = ops.logical_and(converged, ops.all(ops.isfinite(z_value)))
        if fallback:
            inputs_const = None if inputs is None else ops.stop_gradient(inputs)
            z_sol = ops.stop_gradient(ops.cond(
                use_newton,
                lambda: z_value,
                lambda: sequential_solve(step_fn, z0_const, inputs_const, t),
            ))
        else:
            z_sol = z_value
        zp_sol = _shift(z_sol, z0_const)
        step_values = step_fn(_shift(z_sol, z0), inputs)
        xs = (zp_sol,) if inputs is None else (zp_sol, inputs)
        z = jax_implicit(step_values, z_sol, xs, full_jacobian, linear_solver,
                         sequential=ops.logical_not(use_newton) if fallback else None)
    else:
        # The final, differentiable step uses the full Jacobian whatever the
        # method: its derivative is then the exact (BPTT) gradient.
        z_final = newton_step(z_star, z0, final_linearisation, remat=True)
        # The values are checked too: for an expanding map the full-Jacobian
        # scan can overflow.
        use_newton = ops.logical_and(converged, ops.all(ops.isfinite(z_final)))
        if fallback:
            z = ops.cond(
                use_newton, lambda: z_final, lambda: sequential_solve(step_fn, z0, inputs, t)
            )
        else:
            z = z_final
    info = {
        "iterations": k,
        "residual": res,
        "converged": converged,
        "fell_back": ops.logical_and(ops.logical_not(use_newton), fallback),
        "finite": ops.all(ops.isfinite(z)),
    }
    return z, info
