"""Small tensor helpers shared by the ops modules."""

import keras
from keras import ops


def as_tensor(x, dtype=None):
    """``keras.ops.convert_to_tensor`` that also turns TensorFlow variables into tensors."""
    x = ops.convert_to_tensor(x, dtype)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(x, tf.Variable):
            x = tf.convert_to_tensor(x)
    return x


def matmul(a, b):
    """Batched matrix product that keeps the input dtype, at full precision.

    Backend-native on purpose: ``keras.ops.matmul`` on PyTorch (Keras 3.15) returns
    float32 for float64 inputs, and on JAX/GPU the default float32 precision may
    use TF32, which the scan products of DEER cannot afford.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.matmul(a, b, precision="highest")
    if backend == "torch":
        import torch

        if b.dim() == 2 and a.dim() > 2:
            # [..., P, Q] @ [Q, R] as one 2-D product: torch would otherwise
            # broadcast b and run many tiny batched products (slow on CPU).
            lead = a.shape[:-1]
            return torch.matmul(a.reshape(-1, a.shape[-1]), b).reshape(*lead, b.shape[-1])
        return torch.matmul(a, b)
    return ops.matmul(a, b)


def matvec(a, v):
    """``a @ v`` for matrices ``a`` [..., M, M] and vectors ``v`` [..., M]."""
    return matmul(a, v[..., None])[..., 0]


def reduce_max(x):
    """The largest element of ``x`` (``keras.ops.max`` over all axes).

    On JAX the float reduction is preceded by a ``reduce_precision`` to the
    dtype's own precision, which changes no value. It keeps XLA's CPU compiler
    (jax 0.10) from fusing the reduction with the elementwise ops before it into
    a YNNPACK kernel, which took 3-15x the time of the plain reduction for a max
    over [16, 10^3 or 10^4, M] with M = 1 or 8 on a 2-core x86 CPU; in DEER's
    Newton loop it cost more than the Jacobians and the scan together at M = 1
    (``benchmarks/RESULTS_peer.md``).
    """
    if keras.backend.backend() == "jax":
        import jax
        import jax.numpy as jnp

        if jnp.issubdtype(x.dtype, jnp.floating):
            info = jnp.finfo(x.dtype)
            x = jax.lax.reduce_precision(x, exponent_bits=info.nexp, mantissa_bits=info.nmant)
        return jnp.max(x)
    return ops.max(x)
