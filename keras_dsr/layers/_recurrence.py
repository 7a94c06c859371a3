"""The linear recurrence of :class:`~keras_dsr.layers.ParallelScanRNN`, by backend.

A parallel scan (:func:`keras_dsr.ops.linear_recurrence`) wherever the length of the
time axis is known; a sequential ``tf.scan`` in a TensorFlow graph traced without it.
"""

import keras
from keras import ops

from keras_dsr.ops.linear import linear_recurrence


def _sequential_recurrence(a, b, h0, dense):
    """Same result as ``linear_recurrence(a, b, h0)`` by a sequential ``tf.scan``.

    TensorFlow only: used when the length of the time axis is unknown when a graph
    is traced (Keras retraces ``predict``/``fit`` with ``None`` for an axis whose
    length changed between calls); no parallel scan can be built then, and
    ``keras.ops.scan`` (Keras 3.15) fails on an unknown length.
    """
    import tensorflow as tf

    time_axis = len(b.shape) - 2
    b_tm = ops.moveaxis(b, time_axis, 0)
    a_tm = ops.moveaxis(a, time_axis, 0)
    init = ops.zeros_like(b_tm[0]) if h0 is None else ops.cast(h0, b.dtype)

    def body(h, ab):
        a_t, b_t = ab
        return (ops.matmul(a_t, h[..., None])[..., 0] if dense else a_t * h) + b_t

    h = tf.scan(body, (a_tm, b_tm), initializer=init)
    return ops.moveaxis(h, 0, time_axis)


def _solve_recurrence(a, b, h0, dense):
    """``h_t = a_t h_{t-1} + b_t`` by :func:`keras_dsr.ops.linear_recurrence`.

    Isolated backend dispatch: a TensorFlow graph traced with an unknown (None)
    length of the time axis cannot be scanned in parallel; it runs the same
    recurrence sequentially (``tf.scan``). Unknown batch axes are fine.
    """
    if keras.backend.backend() == "tensorflow" and b.shape[-2] is None:
        return _sequential_recurrence(a, b, h0, dense)
    return linear_recurrence(a, b, h0=h0)
