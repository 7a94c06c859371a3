"""Backend-dispatching helpers for code outside ``model.fit`` (demos, benchmarks), and
:func:`set_random_seed`."""

import keras
from keras import ops

from keras_dsr._checks import check_int


def set_random_seed(seed):
    """``keras.utils.set_random_seed(seed)`` with the seed checked first.

    Seeds Python's ``random``, NumPy, the backend and Keras's global ``SeedGenerator``
    (the weights of unseeded initialisers, ``keras.random`` without a seed, the batch
    order of ``fit``). When TensorFlow is installed, Keras imports and seeds it under
    every backend (Keras imports it anyway when it saves a model).
    :func:`keras_dsr.recipes.train` uses it.

    Args:
        seed: a non-negative int.

    Example:
        >>> set_random_seed(0)
        >>> a = keras.random.normal((2,))
        >>> set_random_seed(0)
        >>> bool(keras.ops.all(a == keras.random.normal((2,))))
        True
    """
    keras.utils.set_random_seed(check_int(seed, "seed", 0, "set_random_seed"))


def compile_function(fn):
    """Compile ``fn`` for the active backend: ``jax.jit``, ``tf.function``, or as is (torch).

    Example:
        >>> f = compile_function(lambda x: keras.ops.sin(x) * 2.0)
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)
    return fn


def value_and_grad(fn):
    """``g(*args) -> (fn(*args), grads)`` for a scalar ``fn``; grads for every argument.

    Compiled on JAX and TensorFlow. Arguments are tensors (or arrays).

    Example:
        >>> v, (g,) = value_and_grad(lambda x: keras.ops.sum(x ** 2))(keras.ops.ones(3))
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(lambda *args: jax.value_and_grad(lambda a: fn(*a))(tuple(args)))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def run_tf(*args):
            with tf.GradientTape() as tape:
                tape.watch(args)
                value = fn(*args)
            return value, tape.gradient(value, args)

        return lambda *args: run_tf(*[ops.convert_to_tensor(a) for a in args])

    import torch

    def run_torch(*args):
        leaves = [ops.convert_to_tensor(a).detach().clone().requires_grad_(True) for a in args]
        value = fn(*leaves)
        grads = torch.autograd.grad(value, leaves)
        return value.detach(), tuple(g.detach() for g in grads)

    return run_torch
