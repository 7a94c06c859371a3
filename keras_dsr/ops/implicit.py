"""The JAX gradient of a converged DEER solve, defined directly (``jax.custom_vjp``)."""


def _zero_cotangent(x):
    import jax
    import jax.numpy as jnp
    import numpy as np

    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, jax.dtypes.float0)


def jax_implicit(step_values, z_star, xs, jacobian, linear_solver, sequential=None):
    """``z_star`` forward; backward: the adjoint of the converged recurrence (JAX).

    ``step_values`` = ``f(z*_{t-1}, u_t)`` computed with the parameters, ``z_0``
    and the inputs live. The returned tensor has the value ``z_star`` (the Newton
    solution: the forward pass runs nothing else; ``step_values`` is not needed
    and compiles away when no gradient is taken). Its cotangent ``g`` is carried
    back through the recurrence by one reverse-time linear recurrence with the
    transposed Jacobians at the solution,
    ``lambda_t = g_t + J_{t+1}^T lambda_{t+1}``, ``lambda_{T+1} = 0``, and
    ``lambda`` becomes the cotangent of ``step_values``: autodiff of
    ``f(z*_{t-1}, u_t)`` then yields ``sum_t lambda_t^T df/d(params, u_t)`` and
    ``J_1^T lambda_1`` for ``z_0``, the implicit-function-theorem gradient, which
    is BPTT's.

    ``xs`` = ``(z_prev*, u)`` (or ``(z_prev*,)``) define the Jacobians
    ``J_t = jacobian(*xs_t)``; ``jacobian`` may close over traced parameters,
    so it is closure-converted and its constants passed explicitly. The reverse
    recurrence is solved by ``linear_solver`` (a
    :class:`keras_dsr.ops.solvers.LinearSolver`; a chunked one makes the
    Jacobians chunk by chunk).

    ``sequential`` (a scalar bool tensor, or None for False): where True, the
    reverse recurrence runs step by step instead (a reverse ``lax.scan``, one
    Jacobian per step), as BPTT's backward pass does. DEER's fallback uses it:
    ``z_star`` is then the sequential solution, often of a problem whose Jacobian
    products overflow in a parallel scan; the step-by-step recursion forms none.
    Only the branch taken runs, and the forward pass stores nothing for the other.
    """
    import jax
    import jax.numpy as jnp

    xs = tuple(jax.lax.stop_gradient(x) for x in xs)
    z_star = jax.lax.stop_gradient(z_star)
    # J_{t+1} for t = 1..T-1 is the Jacobian at (z*_t, u_{t+1}); J_{T+1} is never
    # used (lambda_{T+1} = 0), so the last row repeats step T's arguments.
    nxt = tuple(jnp.concatenate([x[..., 1:, :], x[..., -1:, :]], axis=-2) for x in xs[1:])
    next_xs = (z_star,) + nxt
    # The converted function is traced for fixed shapes: one per chunk length.
    converted, consts = {}, []
    for n in linear_solver.chunk_lengths(z_star.shape[-2]):
        example = tuple(x[..., :n, :] for x in next_xs)
        fn, cs = jax.closure_convert(lambda z, *u: jacobian(z, u[0] if u else None), *example)
        converted[n] = (fn, len(consts), len(consts) + len(cs))
        consts.extend(jax.lax.stop_gradient(c) for c in cs)

    if sequential is not None:
        one = tuple(x[..., :1, :] for x in next_xs)
        fn1, cs1 = jax.closure_convert(lambda z, *u: jacobian(z, u[0] if u else None), *one)
        converted[1] = (fn1, len(consts), len(consts) + len(cs1))
        consts.extend(jax.lax.stop_gradient(c) for c in cs1)
        sequential = jax.lax.stop_gradient(jnp.asarray(sequential, bool))
    else:
        sequential = jnp.asarray(False)

    @jax.custom_vjp
    def identity(values, z, next_xs, consts, sequential):
        del values, next_xs, consts, sequential
        return z

    def fwd(values, z, next_xs, consts, sequential):
        return z, (next_xs, consts, sequential)

    def bwd(res, g):
        next_xs, consts, sequential = res

        def coefficients(g_c, *xs_c):
            fn, lo, hi = converted[g_c.shape[-2]]
            return jnp.swapaxes(fn(*xs_c, *consts[lo:hi]), -1, -2), g_c

        h0 = jnp.zeros(g.shape[:-2] + g.shape[-1:], g.dtype)

        def parallel():
            return linear_solver.solve(coefficients, (g,) + tuple(next_xs), h0, reverse=True)

        def step_by_step():
            # lambda_t = g_t + J_{t+1}^T lambda_{t+1}, t = T..1, one step at a time.
            axis = g.ndim - 2
            xs_t = tuple(jnp.moveaxis(x, axis, 0)[:, ..., None, :] for x in (g,) + tuple(next_xs))

            def body(lam_next, x_t):
                a_t, g_t = coefficients(*x_t)
                lam = g_t[..., 0, :] + jnp.einsum(
                    "...ij,...j->...i", a_t[..., 0, :, :], lam_next, precision="highest")
                return lam, lam

            _, lams = jax.lax.scan(body, h0, xs_t, reverse=True)
            return jnp.moveaxis(lams, 0, axis)

        if 1 in converted and sequential.shape == ():
            lam = jax.lax.cond(sequential, step_by_step, parallel)
        else:
            lam = parallel()
        zeros = jax.tree_util.tree_map(_zero_cotangent, (next_xs, consts, sequential))
        return (lam, jnp.zeros_like(g)) + zeros

    identity.defvjp(fwd, bwd)
    return identity(step_values, z_star, next_xs, consts, sequential)
