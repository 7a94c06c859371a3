"""Schedules of the GTF forcing ``alpha``, evaluated inside the compiled train step.

A forcing schedule is a small serialisable object, in the manner of
``keras.optimizers.schedules.LearningRateSchedule``: given the number of train steps
already taken (``step``, 0 at the first batch), the current ``alpha`` and a function
that estimates the Jacobian norm G on the current batch, it returns the ``alpha`` of
this batch. :class:`~keras_dsr.layers.GTFDEERLayer` calls it at the start of every
training call, before the forced trajectory is solved, so the whole schedule runs in
the compiled step on every backend (no host round trip, ``steps_per_execution > 1``
works). Pass one to the model: ``DSRModel(gtf=AdaptiveForcing())``.

The schedules:

* :class:`ConstantForcing` ``(alpha)``;
* :class:`LinearForcing` ``(start, end, decay_steps)``;
* :class:`ExponentialForcing` ``(start, end, decay_rate, decay_steps)``;
* :class:`AdaptiveForcing` ``(estimator, k, gamma, alpha_0)``: the Durstewitz lab's
  adaptive GTF (aGTF, Hess et al., ICML 2023);
* :class:`ManualForcing`: alpha stays what it is (set it with
  :func:`keras_dsr.callbacks.set_alpha`).
"""

import keras
from keras import ops

from keras_dsr._checks import check_int
from keras_dsr.ops.norms import ESTIMATORS as _NORM_ESTIMATORS

__all__ = [
    "ESTIMATORS",
    "ForcingSchedule",
    "ConstantForcing",
    "LinearForcing",
    "ExponentialForcing",
    "AdaptiveForcing",
    "ManualForcing",
    "get",
]

#: Estimators of adaptive GTF (the lab's names); ``jacobian_upper_bound`` uses the
#: weights only (:func:`keras_dsr.layers.gtf_deer.parameter_norm_bound`).
ESTIMATORS = _NORM_ESTIMATORS + ("jacobian_upper_bound",)

#: Earlier names of this library, accepted and mapped to the lab's.
ESTIMATOR_ALIASES = {
    "batch_max": "batch_maximum",
    "parameter_bound": "jacobian_upper_bound",
    "geometric_mean": "explog_approx",
}


def canonical_estimator(name):
    """The lab's name of an estimator (aliases resolved); ``ValueError`` if unknown."""
    name = ESTIMATOR_ALIASES.get(name, name)
    if name not in ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {ESTIMATORS} (or an alias in "
                         f"{sorted(ESTIMATOR_ALIASES)}), got {name!r}.")
    return name


def check_alpha(alpha, name="alpha"):
    """``float(alpha)`` if it is a number in [0, 1]; ``TypeError``/``ValueError`` otherwise."""
    if isinstance(alpha, bool):
        raise TypeError(f"`{name}` must be a number in [0, 1], got {alpha!r}.")
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number in [0, 1], got {alpha!r}.") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` must be in [0, 1], got {value}.")
    return value


class ForcingSchedule:
    """Base class: ``alpha`` for the current batch from ``(step, alpha, norm_fn)``.

    Subclasses implement :meth:`__call__` (tensor ops only: it runs inside the
    compiled train step) and :meth:`get_config`.

    Attributes:
        initial_alpha: the alpha before the first step (a float in [0, 1]).
        estimator: None, or the name of the Jacobian-norm estimator the schedule
            calls ``norm_fn`` for.
    """

    initial_alpha = 1.0
    estimator = None

    def __call__(self, step, alpha, norm_fn):
        """Returns ``(alpha_for_this_batch, norm)``.

        Args:
            step: int tensor, train steps taken before this one (0 at the first).
            alpha: float tensor, the alpha of the previous step.
            norm_fn: zero-argument callable returning the estimate G on this batch
                (only called by schedules with an ``estimator``).

        ``norm`` is the estimate G when it was computed at this step, else NaN.
        """
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _nan_like(alpha):
    return ops.full_like(alpha, float("nan"))


@keras.saving.register_keras_serializable(package="keras_dsr")
class ConstantForcing(ForcingSchedule):
    """``alpha`` fixed for the whole of training.

    Examples:
        >>> DSRModel(gtf=ConstantForcing(0.2))                      # doctest: +SKIP
    """

    def __init__(self, alpha):
        self.alpha = check_alpha(alpha)
        self.initial_alpha = self.alpha

    def __call__(self, step, alpha, norm_fn):
        return ops.full_like(alpha, self.alpha), _nan_like(alpha)

    def get_config(self):
        return {"alpha": self.alpha}


@keras.saving.register_keras_serializable(package="keras_dsr")
class LinearForcing(ForcingSchedule):
    """``alpha = start + (end - start) * min(step / decay_steps, 1)``.

    Examples:
        >>> LinearForcing(1.0, 0.1, decay_steps=1000)
        LinearForcing(start=1.0, end=0.1, decay_steps=1000)
    """

    def __init__(self, start, end, decay_steps):
        self.start, self.end = check_alpha(start, "start"), check_alpha(end, "end")
        self.decay_steps = check_int(decay_steps, "decay_steps")
        self.initial_alpha = self.start

    def __call__(self, step, alpha, norm_fn):
        frac = ops.minimum(ops.cast(step, alpha.dtype) / self.decay_steps, 1.0)
        return self.start + (self.end - self.start) * frac, _nan_like(alpha)

    def get_config(self):
        return {"start": self.start, "end": self.end, "decay_steps": self.decay_steps}


@keras.saving.register_keras_serializable(package="keras_dsr")
class ExponentialForcing(ForcingSchedule):
    """``alpha = end + (start - end) * decay_rate ** (step / decay_steps)``.

    Examples:
        >>> ExponentialForcing(1.0, 0.05, decay_rate=0.5, decay_steps=200)  # half-life 200
        ExponentialForcing(start=1.0, end=0.05, decay_rate=0.5, decay_steps=200)
    """

    def __init__(self, start, end, decay_rate, decay_steps=1):
        self.start, self.end = check_alpha(start, "start"), check_alpha(end, "end")
        if isinstance(decay_rate, bool) or not isinstance(decay_rate, (int, float)) \
                or not 0.0 < float(decay_rate) <= 1.0:
            raise ValueError(f"`decay_rate` must be in (0, 1], got {decay_rate!r}.")
        self.decay_rate = float(decay_rate)
        self.decay_steps = check_int(decay_steps, "decay_steps")
        self.initial_alpha = self.start

    def __call__(self, step, alpha, norm_fn):
        power = ops.cast(step, alpha.dtype) / self.decay_steps
        value = self.end + (self.start - self.end) * ops.power(
            ops.cast(self.decay_rate, alpha.dtype), power)
        return value, _nan_like(alpha)

    def get_config(self):
        return {"start": self.start, "end": self.end, "decay_rate": self.decay_rate,
                "decay_steps": self.decay_steps}


@keras.saving.register_keras_serializable(package="keras_dsr")
class AdaptiveForcing(ForcingSchedule):
    """Adaptive GTF with the Durstewitz lab's annealing rule.

    Starting from ``alpha = alpha_0``, at every ``k``-th train step (steps
    ``k, 2k, ...`` counted from 1) and *before* that batch's forward pass, the
    Jacobian-norm estimate G is computed on the batch's data-inferred states
    ``zhat_2..zhat_T`` and

        alpha_est = max(0, 1 - 1 / G)
        alpha = alpha_est                                  if alpha_est > alpha
        alpha = gamma * alpha + (1 - gamma) * alpha_est    otherwise

    A non-finite G leaves alpha unchanged. (The lab counts the steps within each
    epoch; with ``steps_per_epoch`` a multiple of ``k``, as in its settings, the
    two counts agree.)

    Args:
        estimator: one of :data:`ESTIMATORS` (default ``"product_upper_bound"``,
            the lab's default).
        k: steps between updates (default 5).
        gamma: smoothing of decreases, in [0, 1] (default 0.999).
        alpha_0: initial alpha (default 1.0).
        estimate_points: None (default: every time step, as the lab) or a positive
            int P: at most P evenly strided time steps per sequence enter G
            (cheaper at long T).

    Examples:
        >>> AdaptiveForcing(k=5, gamma=0.999)
        AdaptiveForcing(estimator='product_upper_bound', k=5, gamma=0.999, alpha_0=1.0, estimate_points=None)
    """

    def __init__(self, estimator="product_upper_bound", k=5, gamma=0.999, alpha_0=1.0,
                 estimate_points=None):
        self.estimator = canonical_estimator(estimator)
        self.k = check_int(k, "k")
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) \
                or not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"`gamma` must be in [0, 1], got {gamma!r}.")
        self.gamma = float(gamma)
        self.alpha_0 = check_alpha(alpha_0, "alpha_0")
        self.initial_alpha = self.alpha_0
        if estimate_points is not None:
            check_int(estimate_points, "estimate_points")
        self.estimate_points = estimate_points

    def update(self, alpha, norm):
        """The annealing rule for an estimate ``norm`` (tensor ops)."""
        safe = ops.where(ops.isfinite(norm), norm, ops.ones_like(norm))
        estimate = ops.maximum(1.0 - 1.0 / safe, 0.0)
        new = ops.where(estimate > alpha, estimate,
                        self.gamma * alpha + (1.0 - self.gamma) * estimate)
        return ops.where(ops.isfinite(norm), new, alpha)

    def __call__(self, step, alpha, norm_fn):
        def estimate():
            norm = ops.cast(ops.reshape(norm_fn(), ()), alpha.dtype)
            return self.update(alpha, norm), norm

        def keep():
            return alpha, _nan_like(alpha)

        due = ops.equal(ops.mod(step + 1, self.k), 0)
        return ops.cond(due, estimate, keep)

    def get_config(self):
        return {"estimator": self.estimator, "k": self.k, "gamma": self.gamma,
                "alpha_0": self.alpha_0, "estimate_points": self.estimate_points}


@keras.saving.register_keras_serializable(package="keras_dsr")
class ManualForcing(ForcingSchedule):
    """alpha stays at its current value (set it with :func:`keras_dsr.callbacks.set_alpha`).

    Args:
        alpha: the initial alpha (default 1.0).
    """

    def __init__(self, alpha=1.0):
        self.alpha = check_alpha(alpha)
        self.initial_alpha = self.alpha

    def __call__(self, step, alpha, norm_fn):
        return alpha, _nan_like(alpha)

    def get_config(self):
        return {"alpha": self.alpha}


def get(identifier, estimator="product_upper_bound"):
    """A :class:`ForcingSchedule` from a schedule, ``"adaptive"``, a number or a config dict.

    ``"adaptive"`` gives :class:`AdaptiveForcing` with ``estimator`` and the lab's
    defaults; a number in [0, 1] gives :class:`ConstantForcing`.

    Examples:
        >>> get(0.3)
        ConstantForcing(alpha=0.3)
    """
    if isinstance(identifier, ForcingSchedule):
        return identifier
    if isinstance(identifier, dict):
        obj = keras.saving.deserialize_keras_object(identifier)
        if not isinstance(obj, ForcingSchedule):
            raise TypeError(f"`gtf` config does not describe a ForcingSchedule: {identifier!r}.")
        return obj
    if identifier == "adaptive":
        return AdaptiveForcing(estimator=estimator)
    if isinstance(identifier, str):
        raise ValueError(f"`gtf` must be a ForcingSchedule, 'adaptive' or a number in [0, 1], "
                         f"got {identifier!r}.")
    return ConstantForcing(identifier)
