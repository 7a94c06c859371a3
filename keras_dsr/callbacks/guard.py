"""Detect and undo non-finite training steps (NaN / inf loss or weights)."""

import math
import warnings

import numpy as np

import keras


@keras.saving.register_keras_serializable(package="keras_dsr")
class NonFiniteGuard(keras.callbacks.Callback):
    """Undo training steps that make the loss or the weights non-finite.

    A chaotic model trained with little forcing can, on an unlucky window, take
    an optimiser step that overflows (the loss or a weight becomes NaN / inf);
    every later step is then NaN too. This callback keeps a copy of the last
    finite state (all model weights and optimiser variables, taken after the first
    step and then every
    ``snapshot_every`` batches) and, when a batch ends with a non-finite loss or
    non-finite weights, restores that copy, resets the epoch's running metrics
    and warns (``RuntimeWarning``); training goes on with the next window. The
    restores are logged per epoch as ``nonfinite_restores``. After
    ``max_restores`` restores without ``snapshot_every`` finite batches in
    between, training stops with a ``FloatingPointError`` (weights left at the
    last finite copy) instead of returning NaN weights.

    The ``fit`` of :class:`~keras_dsr.models.DSRModel` and
    :class:`~keras_dsr.models.SSMModel` adds one unless you pass your own (e.g.
    ``NonFiniteGuard(max_restores=0)`` to raise at the first failure).

    Args:
        max_restores: consecutive restores tolerated before raising (int >= 0).
        snapshot_every: batches between copies of the finite state (int >= 1);
            a restore loses at most this many batches of progress.

    Example:
        >>> model.fit(windows, epochs=30, callbacks=[NonFiniteGuard(max_restores=5)])
    """

    def __init__(self, max_restores=3, snapshot_every=5):
        super().__init__()
        if isinstance(max_restores, bool) or not isinstance(max_restores, int) or max_restores < 0:
            raise ValueError(f"`max_restores` must be an int >= 0, got {max_restores!r}.")
        if (isinstance(snapshot_every, bool) or not isinstance(snapshot_every, int)
                or snapshot_every < 1):
            raise ValueError(f"`snapshot_every` must be a positive int, got {snapshot_every!r}.")
        self.max_restores = max_restores
        self.snapshot_every = snapshot_every
        self._snapshot = None
        self._first = True      # no snapshot after a training step yet
        self._streak = 0        # restores since the last snapshot
        self._since = 0         # finite batches since the last snapshot
        self.restores = 0       # restores in the current epoch
        self.total_restores = 0

    # -------------------------------------------------------------- state
    def _state_variables(self):
        model = self.model
        opt = getattr(model, "optimizer", None)
        return list(model.weights) + (list(opt.variables) if opt is not None else [])

    def _take_snapshot(self):
        variables = self._state_variables()
        values = [np.array(keras.ops.convert_to_numpy(v)) for v in variables]
        if all(np.all(np.isfinite(a)) for a in values if a.dtype.kind == "f"):
            self._snapshot = {id(v): a for v, a in zip(variables, values)}
            self._streak = 0
            return True
        return False

    def _restore(self):
        opt = getattr(self.model, "optimizer", None)
        opt_ids = {id(v) for v in (opt.variables if opt is not None else [])}
        for v in self._state_variables():
            value = self._snapshot.get(id(v))
            if value is not None:
                v.assign(value)
            elif id(v) in opt_ids:
                # an optimiser slot built after the copy (lazily, at the first step): its
                # initial value, zero, like Adam's moments and the step counter
                v.assign(np.zeros(tuple(v.shape), dtype=np.dtype(keras.backend.standardize_dtype(
                    v.dtype))))

    # ---------------------------------------------------------- callbacks
    def on_train_begin(self, logs=None):
        self._snapshot = None
        self._streak = self._since = self.total_restores = 0
        self._first = True
        if not self._take_snapshot():
            raise FloatingPointError("NonFiniteGuard: the model's weights or optimiser state "
                                     "are already non-finite before training.")

    def on_epoch_begin(self, epoch, logs=None):
        self.restores = 0

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        finite = loss is None or math.isfinite(float(loss))
        self._since += 1
        if finite and (self._since >= self.snapshot_every or self._first):
            self._first = False  # after the first step: the lazily built optimiser slots
            finite = self._take_snapshot()  # False when a weight went non-finite
            self._since = 0
        if finite:
            return
        self.restores += 1
        self.total_restores += 1
        self._streak += 1
        self._since = 0
        self._restore()
        self.model.reset_metrics()  # the epoch's running loss restarts after the restore
        if self._streak > self.max_restores:
            self.model.stop_training = True
            raise FloatingPointError(
                f"NonFiniteGuard: training diverged: the loss or the weights became "
                f"non-finite {self._streak} times in a row (batch {batch}); the weights "
                "were restored to the last finite copy. Try a lower learning rate, more "
                "GTF forcing (alpha) or a shorter training window.")
        warnings.warn(f"NonFiniteGuard: batch {batch} made the loss or the weights "
                      f"non-finite; restored the last finite copy and continuing "
                      f"({self._streak}/{self.max_restores}).", RuntimeWarning, stacklevel=2)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["nonfinite_restores"] = float(self.restores)

    def get_config(self):
        return {"max_restores": self.max_restores, "snapshot_every": self.snapshot_every}


def with_guard(callbacks):
    """``callbacks`` as a list, with a default :class:`NonFiniteGuard` unless it has one.

    Used by the ``fit`` of :class:`~keras_dsr.models.DSRModel` and
    :class:`~keras_dsr.models.SSMModel`.
    """
    callbacks = list(callbacks or [])
    if not any(isinstance(c, NonFiniteGuard) for c in callbacks):
        callbacks.append(NonFiniteGuard())
    return callbacks
