"""Schedules of the GTF forcing ``alpha`` as Keras callbacks (DESIGN §2.3).

Every callback sets the alpha used by the *next* train step. The new value takes
effect in the compiled train step at the batch it is set, on every backend: on JAX,
Keras keeps the model state outside the variables during ``fit`` and would
silently drop a plain ``variable.assign`` made from a callback, so
:func:`set_alpha` first syncs that state back (``model.jax_state_sync()``), after
which the trainer re-reads every variable, the new alpha included. Use
``steps_per_execution=1`` (the default) so that every batch is its own step.
"""

import math

import keras
from keras import ops

from keras_dsr.layers.gtf_deer import GTFDEERLayer, _check_alpha


def _gtf_layer(model):
    layer = getattr(model, "gtf", None)
    if isinstance(layer, GTFDEERLayer):
        return layer
    for sub in model._flatten_layers(include_self=False):
        if isinstance(sub, GTFDEERLayer):
            return sub
    raise ValueError(f"The model {model.name!r} has no GTFDEERLayer: there is no alpha to set.")


def set_alpha(model, value):
    """Set the GTF forcing of ``model`` so that the next train step uses ``value``."""
    value = _check_alpha(value)
    layer = _gtf_layer(model)
    if keras.backend.backend() == "jax" and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()  # bring the trainer's state back into the variables
    layer.alpha.assign(value)


def get_alpha(model):
    """The GTF forcing currently set in ``model`` (a float)."""
    layer = _gtf_layer(model)
    if keras.backend.backend() == "jax" and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
    return float(ops.convert_to_numpy(layer.alpha))


class AlphaSchedule(keras.callbacks.Callback):
    """Base class: ``alpha = self.value(step)`` set before every train batch.

    ``step`` counts train batches from the start of ``fit`` (0, 1, 2, ...).
    Subclasses implement :meth:`value`.
    """

    def __init__(self):
        super().__init__()
        self.step = 0
        self._current = None

    def value(self, step):  # pragma: no cover - abstract
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        self.step = 0
        self._current = None

    def on_train_batch_begin(self, batch, logs=None):
        new = float(self.value(self.step))
        if new != self._current:
            set_alpha(self.model, new)
            self._current = new

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1


@keras.saving.register_keras_serializable(package="keras_dsr")
class ConstantAlpha(AlphaSchedule):
    """``alpha`` fixed for the whole of training.

    Example:
        >>> model.fit(x, callbacks=[ConstantAlpha(0.2)])
    """

    def __init__(self, alpha):
        super().__init__()
        self.alpha = _check_alpha(alpha)

    def value(self, step):
        return self.alpha

    def get_config(self):
        return {"alpha": self.alpha}


@keras.saving.register_keras_serializable(package="keras_dsr")
class LinearAlpha(AlphaSchedule):
    """``alpha = start + (end - start) * min(step / decay_steps, 1)``.

    Example:
        >>> LinearAlpha(1.0, 0.1, decay_steps=1000)
    """

    def __init__(self, start, end, decay_steps):
        super().__init__()
        self.start, self.end = _check_alpha(start), _check_alpha(end)
        if not isinstance(decay_steps, int) or decay_steps < 1:
            raise ValueError(f"`decay_steps` must be a positive int, got {decay_steps!r}.")
        self.decay_steps = decay_steps

    def value(self, step):
        frac = min(step / self.decay_steps, 1.0)
        return self.start + (self.end - self.start) * frac

    def get_config(self):
        return {"start": self.start, "end": self.end, "decay_steps": self.decay_steps}


@keras.saving.register_keras_serializable(package="keras_dsr")
class ExponentialAlpha(AlphaSchedule):
    """``alpha = end + (start - end) * decay_rate ** (step / decay_steps)``.

    Example:
        >>> ExponentialAlpha(1.0, 0.05, decay_rate=0.5, decay_steps=200)  # half-life 200
    """

    def __init__(self, start, end, decay_rate, decay_steps=1):
        super().__init__()
        self.start, self.end = _check_alpha(start), _check_alpha(end)
        if not 0.0 < float(decay_rate) <= 1.0:
            raise ValueError(f"`decay_rate` must be in (0, 1], got {decay_rate!r}.")
        if not isinstance(decay_steps, int) or decay_steps < 1:
            raise ValueError(f"`decay_steps` must be a positive int, got {decay_steps!r}.")
        self.decay_rate, self.decay_steps = float(decay_rate), decay_steps

    def value(self, step):
        return self.end + (self.start - self.end) * self.decay_rate ** (step / self.decay_steps)

    def get_config(self):
        return {"start": self.start, "end": self.end, "decay_rate": self.decay_rate,
                "decay_steps": self.decay_steps}


@keras.saving.register_keras_serializable(package="keras_dsr")
class AdaptiveGTF(keras.callbacks.Callback):
    """Adaptive GTF (aGTF, Hess et al. ICML 2023) with the lab's annealing rule.

    The model's train step estimates G, a norm of the Jacobians ``dF/dz`` at the
    data-inferred states (the model's ``alpha_estimator``; logged as ``gtf_norm``).
    Starting from ``alpha = alpha_0``, every ``k`` batches:

        alpha_est = max(0, 1 - 1 / G)
        alpha = alpha_est                                  if alpha_est > alpha
        alpha = gamma * alpha + (1 - gamma) * alpha_est    otherwise

    Args:
        estimator: optional estimator name (see
            :class:`~keras_dsr.layers.GTFDEERLayer`); when given it replaces the
            model's and the train function is rebuilt.
        k: batches between updates (default 5).
        gamma: smoothing of decreases (default 0.999).
        alpha_0: initial alpha (default 1.0).

    Example:
        >>> model.fit(windows, epochs=20, callbacks=[AdaptiveGTF()])
    """

    def __init__(self, estimator=None, k=5, gamma=0.999, alpha_0=1.0):
        super().__init__()
        from keras_dsr.layers.gtf_deer import ESTIMATORS

        if estimator is not None and estimator not in ESTIMATORS:
            raise ValueError(f"`estimator` must be one of {ESTIMATORS} or None, got {estimator!r}.")
        if not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int, got {k!r}.")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"`gamma` must be in [0, 1], got {gamma!r}.")
        self.estimator, self.k, self.gamma = estimator, k, float(gamma)
        self.alpha_0 = _check_alpha(alpha_0)
        self.alpha = self.alpha_0
        self.batches = 0

    def on_train_begin(self, logs=None):
        layer = _gtf_layer(self.model)
        if self.estimator is not None and layer.alpha_estimator != self.estimator:
            layer.alpha_estimator = self.estimator
            self.model.make_train_function(force=True)
        self.alpha = self.alpha_0
        self.batches = 0
        set_alpha(self.model, self.alpha)

    def update(self, norm):
        """Apply the annealing rule for a new estimate ``norm`` (G); returns alpha."""
        if not math.isfinite(norm) or norm <= 0:
            return self.alpha
        estimate = max(0.0, 1.0 - 1.0 / norm)
        if estimate > self.alpha:
            self.alpha = estimate
        else:
            self.alpha = self.gamma * self.alpha + (1.0 - self.gamma) * estimate
        return self.alpha

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches % self.k or not logs or "gtf_norm" not in logs:
            return
        self.update(float(logs["gtf_norm"]))
        set_alpha(self.model, self.alpha)

    def get_config(self):
        return {"estimator": self.estimator, "k": self.k, "gamma": self.gamma,
                "alpha_0": self.alpha_0}
