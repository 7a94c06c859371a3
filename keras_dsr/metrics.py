"""Small metrics used to expose training diagnostics in the fit logs."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dsr")
class LastValue(keras.metrics.Metric):
    """A metric whose result is the value of its most recent update (a scalar).

    Keras averages ``Mean`` metrics over the epoch; quantities that a callback must
    read per batch (the GTF forcing ``alpha``, the Jacobian-norm estimate of
    adaptive GTF) need the latest value instead.

    Example:
        >>> m = LastValue(name="alpha"); m.update_state(0.3); float(m.result())
        0.3
    """

    def __init__(self, name="last_value", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.value = self.add_variable(shape=(), initializer="zeros", name="value")

    def update_state(self, value, sample_weight=None):
        self.value.assign(ops.cast(ops.reshape(value, ()), self.value.dtype))

    def result(self):
        return ops.convert_to_tensor(self.value)

    def reset_state(self):
        self.value.assign(0.0)
