"""Losses for dynamical-systems reconstruction.

In generalized teacher forcing (docs/method.md, "GTF") the model's *unforced* one-step
predictions ``x_hat_t = O(F(z~_{t-1}))`` are compared with the data ``x_t``.
:class:`ObservationMSE` is that comparison, with an optional burn-in.
"""

import keras
from keras import ops

from keras_dsr._checks import check_int


@keras.saving.register_keras_serializable(package="keras_dsr")
class ObservationMSE(keras.losses.Loss):
    """Mean squared error of predicted observations, after a burn-in.

    For ``y_true``, ``y_pred`` of shape [B, T, N] (batch, time, observed features)
    and ``burn_in = t0``:

        loss = 1 / (B (T - t0) N) * sum_b sum_{t = t0}^{T-1} sum_n
               (y_pred[b, t, n] - y_true[b, t, n])^2

    i.e. the squared error averaged over batch, features and the time steps
    ``t >= burn_in`` (0-based). The first ``burn_in`` steps, e.g. while a
    free-running or weakly forced state settles, do not enter the loss. Units:
    squared units of the observations.

    Internally ``call`` returns the per-sequence mean over time steps and
    features, shape [B]; Keras' default reduction ``"sum_over_batch_size"`` then
    averages over the batch (``sample_weight`` of shape [B] weights sequences).

    Args:
        burn_in: number of leading time steps excluded (int >= 0, default 0).
            Must be smaller than the sequence length T.
        name, reduction, dtype: as for ``keras.losses.Loss``.

    Example:
        >>> loss = ObservationMSE(burn_in=10)
        >>> y = keras.random.normal((16, 200, 3))
        >>> float(loss(y, y))
        0.0
    """

    def __init__(
        self,
        burn_in=0,
        name="observation_mse",
        reduction="sum_over_batch_size",
        dtype=None,
    ):
        check_int(burn_in, "burn_in", 0, "ObservationMSE")
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.burn_in = int(burn_in)

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(ops.convert_to_tensor(y_true), y_pred.dtype)
        if len(y_pred.shape) != 3:
            raise ValueError(
                "ObservationMSE: `y_pred` must have shape [B, T, N], got shape "
                f"{tuple(y_pred.shape)}."
            )
        if tuple(y_true.shape) != tuple(y_pred.shape) and None not in tuple(
            y_true.shape
        ) + tuple(y_pred.shape):
            raise ValueError(
                "ObservationMSE: `y_true` and `y_pred` must have the same shape "
                f"[B, T, N], got {tuple(y_true.shape)} and {tuple(y_pred.shape)}."
            )
        t = y_pred.shape[1]
        if t is not None and self.burn_in >= t:
            raise ValueError(
                f"ObservationMSE: `burn_in`={self.burn_in} leaves no time steps of "
                f"sequences of length T={t}; it must be smaller than T."
            )
        err = ops.square(y_pred[:, self.burn_in :] - y_true[:, self.burn_in :])
        # sum / count rather than ops.mean: keras 3.15 computes mean of float64
        # in float32 on JAX and torch.
        count = ops.cast(ops.shape(err)[1] * ops.shape(err)[2], err.dtype)
        return ops.sum(err, axis=(1, 2)) / count

    def get_config(self):
        config = super().get_config()
        config["burn_in"] = self.burn_in
        return config
