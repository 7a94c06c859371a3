"""The training engine shared by the DSR models: failure handled inside the train step.

:class:`GuardedModel` is a ``keras.Model`` whose train step, on every backend and
with any ``steps_per_execution``, applies an update only when it is finite (as
optax's ``apply_if_finite`` does):

* a step whose loss, gradients or updated weights / optimiser state are NaN or
  inf is not applied: every variable (weights, optimiser state, layer state such as
  the GTF forcing, the running metrics) keeps its value from before the step; it is
  counted in the metric ``skipped_steps`` (per epoch);
* a finite step whose loss exceeds ``divergence_factor`` times the variance of its
  targets (the loss of predicting their mean; default 100x) is applied but counted
  in ``diverged_steps``;
* ``bad_streak`` counts consecutive skipped or diverged steps; when it exceeds
  ``max_bad_steps`` (default 10) ``fit`` raises :class:`TrainingDiverged` (the
  weights hold no non-finite value: skipped steps were never applied).

The decision is made in the compiled step; the host reads the one counter with
the logs Keras already returns, once per execution (``steps_per_execution``
steps).
"""

import keras
from keras import ops

from keras_dsr._checks import check_int, check_number
from keras_dsr.metrics import LastValue

__all__ = ["GuardedModel", "TrainingDiverged"]


class TrainingDiverged(FloatingPointError):
    """Training stopped: too many consecutive non-finite or diverged steps."""


@keras.saving.register_keras_serializable(package="keras_dsr")
class StepCount(keras.metrics.Metric):
    """A count of steps (the metric ``skipped_steps`` / ``diverged_steps`` / ``bad_streak``).

    ``persistent=True``: not reset with the other metrics at each epoch (it is reset
    when ``fit`` builds its train function).
    """

    def __init__(self, name="steps", persistent=False, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.persistent = persistent
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, value, sample_weight=None):
        self.count.assign_add(ops.cast(value, self.count.dtype))

    def result(self):
        return ops.convert_to_tensor(self.count)

    def reset_state(self):
        if not self.persistent:
            self.count.assign(0.0)

    def get_config(self):
        return {"name": self.name, "persistent": self.persistent, "dtype": self.dtype}


def _snapshot(variable):
    """A copy of ``variable``'s value that later in-place updates cannot change."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        # a read may alias the buffer that the optimiser then updates in place
        return tf.raw_ops.DeepCopy(x=variable.value)
    return ops.stop_gradient(ops.copy(ops.convert_to_tensor(variable)))


def _no_grad():
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    import contextlib

    return contextlib.nullcontext()


def _is_float(v):
    return keras.backend.is_float_dtype(keras.backend.standardize_dtype(v.dtype))


def _all_finite(values):
    ok = ops.convert_to_tensor(True)
    for v in values:
        if _is_float(v):
            ok = ops.logical_and(ok, ops.all(ops.isfinite(v)))
    return ok


class GuardedModel(keras.Model):
    """Base of :class:`~keras_dsr.models.DSRModel` and :class:`~keras_dsr.models.SSMModel`.

    Subclasses call :meth:`record_batch_loss` with the step's total loss in their
    ``compute_loss`` and implement :meth:`training_targets`.

    Args:
        max_bad_steps: consecutive skipped or diverged steps tolerated before
            ``fit`` raises :class:`TrainingDiverged` (int >= 0).
        divergence_factor: a finite loss above this multiple of the targets'
            variance counts as diverged (float > 1, or None to disable).
    """

    def __init__(self, max_bad_steps=10, divergence_factor=100.0, **kwargs):
        super().__init__(**kwargs)
        self.max_bad_steps = check_int(max_bad_steps, "max_bad_steps", low=0)
        self.divergence_factor = check_number(divergence_factor, "divergence_factor", low=1,
                                              strict=True, allow_none=True)
        self.batch_loss_tracker = LastValue(name="batch_loss")
        self.skipped_tracker = StepCount(name="skipped_steps")
        self.diverged_tracker = StepCount(name="diverged_steps")
        self.streak_tracker = StepCount(name="bad_streak", persistent=True)

    # ------------------------------------------------------------ subclass hooks
    def training_targets(self, x, y):
        """The targets the loss compares with (for the divergence reference)."""
        return y

    def record_batch_loss(self, loss):
        """Record the step's total loss (call from ``compute_loss``)."""
        self.batch_loss_tracker.update_state(ops.stop_gradient(loss))

    # ----------------------------------------------------------------- the guard
    def _decide(self, old, new, targets):
        """Select the step's final variable values.

        ``old`` / ``new``: dicts of lists ``trainable``, ``non_trainable``,
        ``optimizer``, ``metrics`` (values before / after the plain Keras step).
        Returns the final dict.
        """
        metrics_vars = self.metrics_variables
        index = {id(v): i for i, v in enumerate(metrics_vars)}
        loss = new["metrics"][index[id(self.batch_loss_tracker.value)]]
        ok = ops.logical_and(ops.isfinite(loss),
                             _all_finite(new["trainable"] + new["optimizer"]
                                         + new["non_trainable"]))
        diverged = ops.convert_to_tensor(False)
        if self.divergence_factor is not None and targets is not None:
            targets = ops.cast(targets, "float32")
            scale = ops.mean(ops.var(ops.reshape(targets, (-1, targets.shape[-1])), axis=0))
            diverged = ops.logical_and(ok, loss > self.divergence_factor
                                       * ops.maximum(ops.cast(scale, loss.dtype), 1e-12))
        final = {key: [ops.where(ok, n, o) for n, o in zip(new[key], old[key])]
                 for key in new}
        m_old = old["metrics"]
        for tracker, add in ((self.skipped_tracker, ops.logical_not(ok)),
                             (self.diverged_tracker, diverged)):
            i = index[id(tracker.count)]
            final["metrics"][i] = m_old[i] + ops.cast(add, m_old[i].dtype)
        i = index[id(self.streak_tracker.count)]
        good = ops.logical_and(ok, ops.logical_not(diverged))
        final["metrics"][i] = ops.where(good, ops.zeros_like(m_old[i]), m_old[i] + 1.0)
        return final

    def _targets_of(self, data):
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self.training_targets(x, y)

    def train_step(self, *args):
        if keras.backend.backend() == "jax":
            state, data = args
            _, new_state = super().train_step(state, data)
            keys = ("trainable", "non_trainable", "optimizer", "metrics")
            old = dict(zip(keys, (list(s) for s in state)))
            new = dict(zip(keys, (list(s) for s in new_state)))
            final = self._decide(old, new, self._targets_of(data))
            mapping = list(zip(self.metrics_variables, final["metrics"]))
            with keras.StatelessScope(state_mapping=mapping):
                logs = self.get_metrics_result()
            return logs, tuple(final[k] for k in keys)
        (data,) = args
        groups = {"trainable": self.trainable_variables,
                  "non_trainable": self.non_trainable_variables,
                  "optimizer": list(self.optimizer.variables),
                  "metrics": self.metrics_variables}
        old = {k: [_snapshot(v) for v in vs] for k, vs in groups.items()}
        super().train_step(data)
        with _no_grad():
            new = {k: [ops.stop_gradient(ops.convert_to_tensor(v)) for v in vs]
                   for k, vs in groups.items()}
            final = self._decide(old, new, self._targets_of(data))
            for key, variables in groups.items():
                for v, value in zip(variables, final[key]):
                    v.assign(value)
        return self.get_metrics_result()

    # ------------------------------------------------- the train function (host)
    def make_train_function(self, force=False):
        if self.train_function is not None and not force:
            return self.train_function
        self.streak_tracker.count.assign(0.0)
        backend = keras.backend.backend()
        if backend == "torch" and self.steps_per_execution > 1:
            self.train_function = self._torch_multi_step(self.train_step, lambda logs: logs[-1])
        else:
            super().make_train_function(force=force)
        inner = self.train_function

        def checked(*args):
            out = inner(*args)
            logs = out[0] if backend == "jax" else out
            try:
                self._check_streak(logs)
            except TrainingDiverged:
                if backend == "jax":  # leave the variables with the step's state
                    keys = ("trainable_variables", "non_trainable_variables",
                            "optimizer_variables", "metrics_variables")
                    self._jax_state = dict(zip(keys, out[1]))
                    self._jax_state_synced = False
                    self.jax_state_sync()
                raise
            return out

        self.train_function = checked
        return self.train_function

    def _torch_multi_step(self, step, combine):
        """A function over the buffered batches of one execution, one after another
        (Keras's PyTorch trainer refuses steps_per_execution > 1)."""
        def multi_step(data):
            return combine([step(batch) for batch in data])

        return multi_step

    def make_test_function(self, force=False):
        if keras.backend.backend() != "torch" or self.steps_per_execution == 1:
            return super().make_test_function(force=force)
        if self.test_function is None or force:
            self.test_function = self._torch_multi_step(self.test_step, lambda logs: logs[-1])
        return self.test_function

    def make_predict_function(self, force=False):
        if keras.backend.backend() != "torch" or self.steps_per_execution == 1:
            return super().make_predict_function(force=force)
        if self.predict_function is None or force:
            self.predict_function = self._torch_multi_step(
                self.predict_step, lambda outs: keras.tree.map_structure(
                    lambda *parts: ops.concatenate(parts, axis=0), *outs))
        return self.predict_function

    def _check_streak(self, logs):
        streak = float(ops.convert_to_numpy(logs["bad_streak"]))
        if streak > self.max_bad_steps:
            self.stop_training = True
            raise TrainingDiverged(
                f"{type(self).__name__}: training diverged: {int(streak)} consecutive "
                f"steps were non-finite (not applied) or had a loss above "
                f"{self.divergence_factor}x the data's variance (max_bad_steps="
                f"{self.max_bad_steps}); no non-finite update was applied. "
                "Try a lower learning rate, more GTF forcing (alpha) or a shorter "
                "training window.")

    def get_config(self):
        config = super().get_config()
        config.update(max_bad_steps=self.max_bad_steps,
                      divergence_factor=self.divergence_factor)
        return config
