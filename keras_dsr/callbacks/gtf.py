"""GTF forcing schedules as Keras callbacks.

The forcing ``alpha`` is state of the compiled train step: a
:class:`~keras_dsr.schedules.ForcingSchedule` evaluated on every batch before its
forward pass (:mod:`keras_dsr.schedules`). These callbacks are the familiar way to
choose one for a single ``fit``: at ``on_train_begin`` each installs its schedule in
the model's train step (alpha restarts at the schedule's initial value, its step
count at 0) and does nothing per batch, so they cost no host round trip and work
with ``steps_per_execution > 1``. ``fit(..., callbacks=[AdaptiveGTF()])`` gives the
same alphas as ``DSRModel(gtf=AdaptiveForcing())``.

:func:`set_alpha` is the manual override: it switches the model to
:class:`~keras_dsr.schedules.ManualForcing` (alpha stays where it is set) and sets
the value used from the next train step on.
"""

import keras
from keras import ops

from keras_dsr import schedules as schedules_lib
from keras_dsr.layers.gtf_deer import GTFDEERLayer


def _gtf_layer(model):
    layer = getattr(model, "gtf", None)
    if isinstance(layer, GTFDEERLayer):
        return layer
    for sub in model._flatten_layers(include_self=False):
        if isinstance(sub, GTFDEERLayer):
            return sub
    raise ValueError(f"The model {model.name!r} has no GTFDEERLayer: there is no alpha to set.")


def _sync(model):
    if keras.backend.backend() == "jax" and getattr(model, "_jax_state", None) is not None:
        model.jax_state_sync()  # bring the trainer's state back into the variables


def install_schedule(model, schedule, reset=True):
    """Make ``schedule`` the forcing schedule of ``model``'s compiled train step.

    With ``reset`` alpha restarts at ``schedule.initial_alpha`` and the schedule's
    step count at 0. Rebuilds the train function when one exists.
    """
    schedule = schedules_lib.get(schedule)
    if hasattr(model, "set_schedule"):
        model.set_schedule(schedule, reset=reset)
        return
    layer = _gtf_layer(model)
    layer.schedule = schedule
    if reset and layer.built:
        _sync(model)
        layer.alpha.assign(schedule.initial_alpha)
        layer.forcing_step.assign(0)
    if getattr(model, "train_function", None) is not None:
        model.make_train_function(force=True)


def set_alpha(model, value):
    """Set the GTF forcing of ``model`` so that the next train step uses ``value``.

    Switches the model to :class:`~keras_dsr.schedules.ManualForcing` (once; the
    train function is rebuilt then) so that no schedule overrides the value.
    """
    value = schedules_lib.check_alpha(value)
    layer = _gtf_layer(model)
    if not isinstance(layer.schedule, schedules_lib.ManualForcing):
        install_schedule(model, schedules_lib.ManualForcing(value), reset=False)
    _sync(model)
    layer.alpha.assign(value)


def get_alpha(model):
    """The GTF forcing currently set in ``model`` (a float)."""
    layer = _gtf_layer(model)
    _sync(model)
    return float(ops.convert_to_numpy(layer.alpha))


class AlphaSchedule(keras.callbacks.Callback):
    """Base class: a callback that installs ``self.schedule`` at ``on_train_begin``."""

    schedule = None

    def on_train_begin(self, logs=None):
        install_schedule(self.model, self.schedule)

    def value(self, step):
        """The alpha of train step ``step`` (0-based) for the step-only schedules."""
        alpha = ops.convert_to_tensor(self.schedule.initial_alpha, dtype="float32")
        out, _ = self.schedule(ops.convert_to_tensor(step, dtype="int32"), alpha, None)
        return float(ops.convert_to_numpy(out))

    def get_config(self):
        return self.schedule.get_config()


@keras.saving.register_keras_serializable(package="keras_dsr")
class ConstantAlpha(AlphaSchedule):
    """``alpha`` fixed for the whole of training (:class:`~keras_dsr.schedules.ConstantForcing`).

    Example:
        >>> model.fit(x, callbacks=[ConstantAlpha(0.2)])
    """

    def __init__(self, alpha):
        super().__init__()
        self.schedule = schedules_lib.ConstantForcing(alpha)
        self.alpha = self.schedule.alpha


@keras.saving.register_keras_serializable(package="keras_dsr")
class LinearAlpha(AlphaSchedule):
    """``alpha = start + (end - start) * min(step / decay_steps, 1)``
    (:class:`~keras_dsr.schedules.LinearForcing`).

    Example:
        >>> LinearAlpha(1.0, 0.1, decay_steps=1000)
    """

    def __init__(self, start, end, decay_steps):
        super().__init__()
        self.schedule = schedules_lib.LinearForcing(start, end, decay_steps)


@keras.saving.register_keras_serializable(package="keras_dsr")
class ExponentialAlpha(AlphaSchedule):
    """``alpha = end + (start - end) * decay_rate ** (step / decay_steps)``
    (:class:`~keras_dsr.schedules.ExponentialForcing`).

    Example:
        >>> ExponentialAlpha(1.0, 0.05, decay_rate=0.5, decay_steps=200)  # half-life 200
    """

    def __init__(self, start, end, decay_rate, decay_steps=1):
        super().__init__()
        self.schedule = schedules_lib.ExponentialForcing(start, end, decay_rate, decay_steps)


@keras.saving.register_keras_serializable(package="keras_dsr")
class AdaptiveGTF(AlphaSchedule):
    """Adaptive GTF (aGTF, Hess et al. ICML 2023) with the lab's annealing rule
    (:class:`~keras_dsr.schedules.AdaptiveForcing`).

    Starting from ``alpha = alpha_0``, every ``k``-th batch, before its forward pass,
    the train step estimates G, a norm of the Jacobians ``dF/dz`` at the batch's
    data-inferred states (logged as ``gtf_norm``), and sets

        alpha_est = max(0, 1 - 1 / G)
        alpha = alpha_est                                  if alpha_est > alpha
        alpha = gamma * alpha + (1 - gamma) * alpha_est    otherwise

    Args:
        estimator: the estimator (default ``"product_upper_bound"``; see
            :data:`keras_dsr.schedules.ESTIMATORS`).
        k: batches between updates (default 5).
        gamma: smoothing of decreases (default 0.999).
        alpha_0: initial alpha (default 1.0).
        estimate_points: None (all time steps) or a cap per sequence.

    Example:
        >>> model.fit(windows, epochs=20, callbacks=[AdaptiveGTF()])
    """

    def __init__(self, estimator="product_upper_bound", k=5, gamma=0.999, alpha_0=1.0,
                 estimate_points=None):
        super().__init__()
        self.schedule = schedules_lib.AdaptiveForcing(
            estimator=estimator or "product_upper_bound", k=k, gamma=gamma, alpha_0=alpha_0,
            estimate_points=estimate_points)
        self.k, self.gamma, self.alpha_0 = self.schedule.k, self.schedule.gamma, alpha_0
