"""Shared test helpers. The backend is chosen by KERAS_BACKEND (one pytest run per backend)."""

import numpy as np
import pytest

import keras_dsr  # noqa: F401  (selects JAX when no backend was chosen)
import keras
from keras import ops

from keras_dsr.utils import compile_function, value_and_grad

BACKEND = keras.backend.backend()


def pytest_collection_modifyitems(config, items):
    """Run ``backend_independent`` tests (numpy/scipy only) once, under JAX."""
    if BACKEND == "jax":
        return
    skip = pytest.mark.skip(reason="backend-independent (numpy/scipy only): runs under JAX")
    for item in items:
        if item.get_closest_marker("backend_independent") is not None:
            item.add_marker(skip)


def to_np(x):
    if hasattr(x, "detach"):
        x = x.detach()
    return np.asarray(ops.convert_to_numpy(x))


def np_jacobian_fd(f, z, eps=1e-6):
    """Central finite difference of f at z [..., M] -> [..., M, M] (float64)."""
    z = np.asarray(z, np.float64)
    cols = []
    for j in range(z.shape[-1]):
        e = np.zeros(z.shape[-1])
        e[j] = eps
        cols.append((f(z + e) - f(z - e)) / (2 * eps))
    return np.stack(cols, axis=-1)


def compiled(fn):
    """Compile ``fn`` the way Keras compiles a train step on this backend."""
    return compile_function(fn)


def value_and_grads(loss_fn, args):
    """Value and gradients of the scalar ``loss_fn(*args)`` w.r.t. every arg (numpy)."""
    val, grads = value_and_grad(loss_fn)(*[ops.convert_to_tensor(a) for a in args])
    return to_np(val), [to_np(g) for g in grads]


def supports_float64():
    if BACKEND == "jax":
        import jax

        return bool(jax.config.jax_enable_x64)
    return True


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def full_float32_matmuls():
    """Reference comparisons need full float32 matmuls (no TF32 on GPUs)."""
    if BACKEND == "jax":
        import jax

        with jax.default_matmul_precision("highest"):
            yield
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        previous = tf.config.experimental.tensor_float_32_execution_enabled()
        tf.config.experimental.enable_tensor_float_32_execution(False)
        yield
        tf.config.experimental.enable_tensor_float_32_execution(previous)
    else:
        yield
