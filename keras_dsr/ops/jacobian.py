"""Per-backend autodiff Jacobians of a vectorised one-step map."""

import contextlib

import keras

from keras_dsr.ops._tensor import as_tensor


def no_grad():
    """Context in which eager autodiff records nothing (PyTorch); a no-op elsewhere.

    JAX and TensorFlow trace, and ``stop_gradient`` on the result is enough there.
    """
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def value_and_batch_jacobian(fn, z, u=None):
    """``(fn(z, u), d fn / d z)`` from one autodiff pass; both constants (no gradient).

    What :func:`batch_jacobian` computes, plus the map's value, which autodiff
    produces on the way (JAX: the primal output of ``jax.linearize``; TensorFlow
    and PyTorch: the taped forward pass), so a Newton step needs no second
    evaluation of ``fn``.

    Returns:
        ``(y [..., M], J [..., M, M])``.
    """
    return _value_and_batch_jacobian(fn, z, u, "value_and_batch_jacobian")


def batch_jacobian(fn, z, u=None):
    """Jacobian ``d fn(z, u) / d z`` for every leading index, by autodiff.

    ``fn`` maps states ``z`` of shape ``[..., M]`` (and optional inputs ``u`` of
    shape ``[..., K]``) to ``[..., M]``, independently for every leading index
    (e.g. all time steps of a trajectory at once). The result is treated as a
    constant (no gradient flows through it): DEER only ever needs it under
    ``stop_gradient``.

    Per backend: JAX runs forward mode (``jax.jacfwd``) on one row ``fn(z_i, u_i)``
    vmapped over all rows when ``fn`` maps a single row ``[M]`` to ``[M]`` (else it
    linearises the batched ``fn`` once and pushes the M unit tangents through);
    TensorFlow uses ``GradientTape.batch_jacobian`` on the flattened leading dims;
    PyTorch uses M reverse passes of ``torch.autograd.grad`` (one per output row).

    Args:
        fn: callable ``fn(z, u) -> z_next`` (``u`` may be None).
        z: ``[..., M]`` states.
        u: optional ``[..., K]`` inputs.

    Returns:
        ``[..., M, M]`` with ``J[..., i, j] = d fn_i / d z_j``.

    Example:
        >>> J = batch_jacobian(lambda z, u: keras.ops.tanh(2.0 * z), keras.ops.zeros((5, 3)))
        >>> J.shape   # (5, 3, 3), each 2 * identity
    """
    return _value_and_batch_jacobian(fn, z, u, "batch_jacobian")[1]


def _value_and_batch_jacobian(fn, z, u, where):
    if not callable(fn):
        raise TypeError(f"{where}: `fn` must be callable, got {type(fn)}.")
    z = as_tensor(z)
    if u is not None:
        u = as_tensor(u)
    m = z.shape[-1]
    backend = keras.backend.backend()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        lead = tuple(z.shape[:-1])
        k = None if u is None else u.shape[-1]

        def row(zz, uu):
            y = fn(zz, uu)
            return y, y

        z_row = jax.ShapeDtypeStruct((m,), z.dtype)
        u_row = None if u is None else jax.ShapeDtypeStruct((k,), u.dtype)
        if jax.eval_shape(lambda zz, uu: fn(zz, uu), z_row, u_row).shape == (m,):
            # Row by row: forward mode on one state vector, vmapped over all the
            # rows (several times faster on CPU than pushing M tangents through
            # the linearisation of the whole batch).
            z2 = jnp.reshape(z, (-1, m))
            jac_row = jax.jacfwd(row, has_aux=True)
            if u is None:
                jac, y = jax.vmap(lambda zz: jac_row(zz, None))(z2)
            else:
                jac, y = jax.vmap(jac_row)(z2, jnp.reshape(u, (-1, k)))
            y = jnp.reshape(y, lead + (m,))
            jac = jnp.reshape(jac, lead + (m, m))
        else:
            # ``fn`` does not act on a single row (it broadcasts against a closed-over
            # tensor): linearise the batched map and push the M unit tangents through.
            y, lin = jax.linearize(lambda zz: fn(zz, u), z)
            eye = jnp.eye(m, dtype=z.dtype)
            eye = jnp.reshape(eye, (m,) + (1,) * len(lead) + (m,))
            tangents = jnp.broadcast_to(eye, (m,) + lead + (m,))
            cols = jax.vmap(lin)(tangents)  # [M(j), ..., M(i)]
            jac = jnp.moveaxis(cols, 0, -1)
        return jax.lax.stop_gradient(y), jax.lax.stop_gradient(jac)
    if backend == "tensorflow":
        import tensorflow as tf

        lead = tf.shape(z)[:-1]
        z2 = tf.reshape(tf.stop_gradient(z), (-1, m))
        u2 = None if u is None else tf.reshape(u, (-1, u.shape[-1]))
        with tf.GradientTape() as tape:
            tape.watch(z2)
            y2 = fn(z2, u2)
        jac = tape.batch_jacobian(y2, z2)
        jac = tf.reshape(jac, tf.concat([lead, [m, m]], axis=0))
        y = tf.reshape(y2, tf.concat([lead, [m]], axis=0))
        return tf.stop_gradient(y), tf.stop_gradient(jac)
    if backend == "torch":
        import torch

        zz = z.detach().requires_grad_(True)
        uu = None if u is None else u.detach()
        with torch.enable_grad():
            y = fn(zz, uu)
            rows = [
                torch.autograd.grad(y[..., i].sum(), zz, retain_graph=i < m - 1)[0]
                for i in range(m)
            ]
        return y.detach(), torch.stack(rows, dim=-2).detach()
    # numpy backend or others: central finite differences are not good enough.
    raise NotImplementedError(f"{where}: backend {backend!r} is not supported.")
