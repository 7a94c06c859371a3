"""Hyperparameter search for DSR models with keras-tuner, scored by attractor measures.

:class:`DSRHyperModel` is a ``keras_tuner.HyperModel`` that holds a training and
a validation trajectory and searches the sizes of the latent model, the GTF
schedule, the learning rate and the training sequence length. Every trial is a
:class:`~keras_dsr.recipes.Recipe` (the hyperparameters carry the names of its
fields), built with :func:`keras_dsr.recipes.build_model` and fitted with
``model.fit`` on random windows. The objective is an attractor measure of the
free-running model on the validation trajectory, not the training loss:

``val_dsr_score = val_dstsp + dh_weight * val_dh``

logged every epoch by :class:`DSRScore` after the
:class:`~keras_dsr.callbacks.DSRMeasures` callback (D_stsp and D_H, docs/method.md "Evaluation measures").
With ``dh_weight=0`` (the default) it is D_stsp. A diverged model (NaN/inf
generated) scores ``diverged_score`` (default 100, above any finite D_stsp of
the binning estimator), because keras-tuner's Bayesian oracle would turn an
infinite score into 0, the best value. Pass ``objective=hypermodel.objective``
to the tuner; it works with ``RandomSearch``, ``Hyperband`` and
``BayesianOptimization``.

Needs keras-tuner: ``pip install 'keras-dsr[tuner]'`` (``import keras_dsr`` does
not import it).

Example:
    >>> import keras_tuner as kt
    >>> from keras_dsr.systems import simulate
    >>> from keras_dsr.tuning import DSRHyperModel
    >>> hm = DSRHyperModel(simulate("lorenz63", 100_000).x,
    ...                    simulate("lorenz63", 10_000, seed=1).x)   # doctest: +SKIP
    >>> tuner = kt.BayesianOptimization(hm, objective=hm.objective, max_trials=20,
    ...                                 directory="tuning", project_name="l63")  # doctest: +SKIP
    >>> tuner.search()                       # each trial: the recipe's steps  # doctest: +SKIP
    >>> best = hm.recipe(tuner.get_best_hyperparameters()[0])   # a Recipe    # doctest: +SKIP
"""

try:
    import keras_tuner as kt
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        "keras_dsr.tuning needs keras-tuner: pip install 'keras-dsr[tuner]'"
    ) from e

import math

import keras
import numpy as np

from keras_dsr import recipes
from keras_dsr.callbacks import DSRMeasures
from keras_dsr._checks import check_array
from keras_dsr.data import MIN_LENGTH
from keras_dsr.models.engine import TrainingDiverged
from keras_dsr.schedules import ESTIMATORS, canonical_estimator

__all__ = ["DSRHyperModel", "DSRScore", "OBJECTIVE"]

OBJECTIVE = "val_dsr_score"


@keras.saving.register_keras_serializable(package="keras_dsr")
class DSRScore(keras.callbacks.Callback):
    """Log ``val_dsr_score = val_dstsp + dh_weight * val_dh`` (finite) every epoch.

    Reads the measures that :class:`~keras_dsr.callbacks.DSRMeasures` wrote into
    the epoch logs, so it must come after that callback in ``callbacks`` (and
    before callbacks that read the score: ``EarlyStopping``, keras-tuner's own).

    Args:
        dh_weight: weight w >= 0 of D_H (D_H is in [0, 1], D_stsp of a good
            Lorenz-63 model ~0.1-0.5, of a collapsed one ~15).
        diverged_score: the score of a non-finite result (a diverged free run).
        prefix: prefix of the measure keys (as given to ``DSRMeasures``).

    Example:
        >>> callbacks = [DSRMeasures(x_val), DSRScore(dh_weight=5.0)]  # doctest: +SKIP
    """

    def __init__(self, dh_weight=0.0, diverged_score=100.0, prefix="val_"):
        super().__init__()
        if not (np.isscalar(dh_weight) and dh_weight >= 0):
            raise ValueError(f"dh_weight must be a number >= 0, got {dh_weight!r}.")
        if not (np.isscalar(diverged_score) and np.isfinite(diverged_score)):
            raise ValueError(f"diverged_score must be a finite number, got {diverged_score!r}.")
        self.dh_weight = float(dh_weight)
        self.diverged_score = float(diverged_score)
        self.prefix = str(prefix)

    def score(self, dstsp, dh=0.0):
        """``dstsp + dh_weight * dh``, or ``diverged_score`` when that is not finite."""
        value = float(dstsp) + (self.dh_weight * float(dh) if self.dh_weight else 0.0)
        return value if math.isfinite(value) else self.diverged_score

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        key = self.prefix + "dstsp"
        if key not in logs:
            raise ValueError(f"DSRScore: no {key!r} in the logs; put a DSRMeasures callback "
                             "before DSRScore in `callbacks`.")
        logs[self.prefix + "dsr_score"] = self.score(logs[key], logs.get(self.prefix + "dh", 0.0))

    def get_config(self):
        return {"dh_weight": self.dh_weight, "diverged_score": self.diverged_score,
                "prefix": self.prefix}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _choices(name, values, kind=None):
    """A non-empty tuple of choices (a single value is a fixed hyperparameter)."""
    values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
    if not values:
        raise ValueError(f"`{name}` must not be empty.")
    if kind is not None:
        for v in values:
            if isinstance(v, bool) or not isinstance(v, kind):
                raise ValueError(f"`{name}` must hold {kind.__name__} values, got {v!r}.")
    return values


def _range(name, value, lo, hi):
    """A range ``(low, high)`` within ``[lo, hi]``; a single number is fixed."""
    pair = tuple(value) if isinstance(value, (list, tuple)) else (value, value)
    if len(pair) != 2 or not all(np.isscalar(v) for v in pair) or not (
            lo <= pair[0] <= pair[1] <= hi):
        raise ValueError(f"`{name}` must be a number or a range (low, high) with "
                         f"{lo} <= low <= high <= {hi}, got {value!r}.")
    return float(pair[0]), float(pair[1])


class DSRHyperModel(kt.HyperModel):
    """Search space of GTF-DEER reconstructions, scored by attractor measures.

    Hyperparameters (named as the :class:`~keras_dsr.recipes.Recipe` fields):
    ``latent_dim``, ``hidden_dim``, ``alpha_schedule`` (``"adaptive"`` or
    ``"constant"``), with ``gtf_gamma`` and ``alpha_estimator`` when adaptive and
    ``alpha`` when constant, ``learning_rate`` (log-uniform) and ``seq_len``.
    Give a single value to fix one. Everything else (cell, batch size, steps,
    DEER method, seed) comes from ``base``.

    ``fit(hp, model, **kwargs)`` builds the windows (``seq_len`` is a data
    choice) and the callbacks (the alpha schedule, :class:`DSRMeasures` on
    ``x_val``, :class:`DSRScore`) from ``hp`` and calls ``model.fit``; the
    tuner's ``search(**kwargs)`` arguments (``epochs``, ``verbose``, more
    ``callbacks``) pass through. Without ``epochs`` a trial trains the base
    recipe's ``steps``; the learning rate decays over ``base.steps`` optimiser
    steps, so for Hyperband choose ``base.steps = max_epochs * steps_per_epoch``.

    Args:
        x_train: training trajectory ``[T, N]`` (standardised), or a list of them.
        x_val: validation trajectory ``[T_val, N]`` for the measures (an
            independent run of the system, same scaling).
        latent_dims: latent sizes M (default ``(N, 2 N)``).
        hidden_dims: hidden sizes L.
        alpha_schedules: any of ``"adaptive"``, ``"constant"``.
        gtf_gammas: adaptive GTF smoothing factors.
        estimators: adaptive GTF Jacobian-norm estimators (see
            :class:`~keras_dsr.layers.GTFDEERLayer`).
        alpha_range: constant forcing range (log-uniform), within (0, 1].
        learning_rates: learning-rate range (log-uniform).
        seq_lens: training window lengths (default: those of 200, 1000, 10 000
            that fit in the training data).
        base: the :class:`~keras_dsr.recipes.Recipe` of the other fields
            (default ``Recipe()``).
        dh_weight, diverged_score: see :class:`DSRScore`.
        measures_every: compute the measures every this many epochs.

    Example:
        >>> hm = DSRHyperModel(x_train, x_val, hidden_dims=(50, 100),
        ...                    base=Recipe(steps=300))            # doctest: +SKIP
        >>> tuner = kt.RandomSearch(hm, objective=hm.objective, max_trials=8,
        ...                         directory="runs")              # doctest: +SKIP
        >>> tuner.search(verbose=0)                                # doctest: +SKIP
    """

    def __init__(self, x_train, x_val, latent_dims=None, hidden_dims=(25, 50, 100, 200),
                 alpha_schedules=("adaptive", "constant"), gtf_gammas=(0.9, 0.99, 0.999),
                 estimators=ESTIMATORS, alpha_range=(0.02, 0.5), learning_rates=(1e-4, 1e-2),
                 seq_lens=None, base=None, dh_weight=0.0, diverged_score=100.0,
                 measures_every=1, name=None, tunable=True):
        super().__init__(name=name, tunable=tunable)
        trains = list(x_train) if isinstance(x_train, (list, tuple)) else [x_train]
        self.x_train = [check_array(x, "x_train", MIN_LENGTH).astype("float32") for x in trains]
        n = self.x_train[0].shape[1]
        if any(x.shape[1] != n for x in self.x_train):
            raise ValueError("All training trajectories must have the same number of variables.")
        self.x_val = check_array(x_val, "x_val", MIN_LENGTH).astype("float32")
        if self.x_val.shape[1] != n:
            raise ValueError(f"x_val has {self.x_val.shape[1]} variables, x_train {n}.")
        self.n_features = n
        self.base = recipes.Recipe() if base is None else base
        if not isinstance(self.base, recipes.Recipe):
            raise TypeError(f"`base` must be a keras_dsr.recipes.Recipe, got {type(base)}.")
        self.latent_dims = _choices("latent_dims", (n, 2 * n) if latent_dims is None
                                    else latent_dims, int)
        if min(self.latent_dims) < n:
            raise ValueError(f"`latent_dims` must be >= the number of variables ({n}), "
                             f"got {self.latent_dims}.")
        self.hidden_dims = _choices("hidden_dims", hidden_dims, int)
        self.alpha_schedules = _choices("alpha_schedules", alpha_schedules, str)
        bad = set(self.alpha_schedules) - {"adaptive", "constant"}
        if bad:
            raise ValueError(f"`alpha_schedules` must be 'adaptive' and/or 'constant', got "
                             f"{sorted(bad)}.")
        self.gtf_gammas = _choices("gtf_gammas", gtf_gammas, float)
        if not all(0 <= g < 1 for g in self.gtf_gammas):
            raise ValueError(f"`gtf_gammas` must be in [0, 1), got {self.gtf_gammas}.")
        try:
            self.estimators = tuple(canonical_estimator(e)
                                    for e in _choices("estimators", estimators, str))
        except ValueError as e:
            raise ValueError(f"`estimators`: {e}") from None
        self.alpha_range = _range("alpha_range", alpha_range, 1e-6, 1.0)
        self.learning_rates = _range("learning_rates", learning_rates, 1e-12, 10.0)
        longest = max(x.shape[0] for x in self.x_train)
        if seq_lens is None:
            seq_lens = tuple(s for s in (200, 1_000, 10_000) if s <= longest) or (longest,)
        self.seq_lens = _choices("seq_lens", seq_lens, int)
        if max(self.seq_lens) > longest or min(self.seq_lens) < 10:
            raise ValueError(f"`seq_lens` must be in [10, {longest}] (the longest training "
                             f"trajectory), got {self.seq_lens}.")
        self.scorer = DSRScore(dh_weight, diverged_score)  # validates both
        self.measures_every = measures_every

    @property
    def objective(self):
        """``keras_tuner.Objective("val_dsr_score", "min")``, to pass to the tuner."""
        return kt.Objective(OBJECTIVE, direction="min")

    def _value(self, hp, name, values, **kw):
        if len(values) == 1:
            return hp.Fixed(name, values[0])
        return hp.Choice(name, list(values), **kw)

    def _float(self, hp, name, bounds):
        lo, hi = bounds
        if lo == hi:
            return hp.Fixed(name, lo)
        return hp.Float(name, lo, hi, sampling="log")

    def recipe(self, hp):
        """The :class:`~keras_dsr.recipes.Recipe` of hyperparameters ``hp``.

        Registers the hyperparameters in ``hp`` when they are new (that is how
        :meth:`build` declares the search space). ``recipes.train(hm.recipe(hp), x)``
        retrains a trial's configuration, e.g. the best one.
        """
        changes = dict(
            latent_dim=self._value(hp, "latent_dim", self.latent_dims),
            hidden_dim=self._value(hp, "hidden_dim", self.hidden_dims),
            learning_rate=self._float(hp, "learning_rate", self.learning_rates),
            seq_len=self._value(hp, "seq_len", self.seq_lens),
        )
        schedule = self._value(hp, "alpha_schedule", self.alpha_schedules)
        with hp.conditional_scope("alpha_schedule", ["adaptive"]):
            gamma = self._value(hp, "gtf_gamma", self.gtf_gammas)
            estimator = self._value(hp, "alpha_estimator", self.estimators)
        with hp.conditional_scope("alpha_schedule", ["constant"]):
            alpha = self._float(hp, "alpha", self.alpha_range)
        if schedule == "adaptive":
            changes.update(alpha="adaptive", gtf_gamma=gamma, alpha_estimator=estimator)
        else:
            changes.update(alpha=alpha)
        return self.base.replace(**changes)

    def build(self, hp):
        """A compiled :class:`~keras_dsr.models.DSRModel` for ``hp`` (Adam, cosine lr)."""
        return recipes.build_model(self.recipe(hp), self.n_features)

    def fit(self, hp, model, *args, **kwargs):
        """Train ``model`` with :func:`keras_dsr.recipes.train` and the recipe of ``hp``.

        The same path as every other training (windows, seeding, forcing schedule,
        noise, cell initialisation, divergence checks). ``kwargs``: ``epochs`` (sets
        the steps), ``initial_epoch`` (Hyperband), ``verbose``, ``callbacks``; data
        arguments are refused, the data
        are the hypermodel's. Returns the Keras ``History`` (its ``val_dsr_score``
        is the objective; a diverged trial gets the ``diverged_score``).
        """
        if args or {"x", "y", "validation_data"} & set(kwargs):
            raise TypeError("DSRHyperModel holds its data (x_train, x_val): call "
                            "tuner.search(epochs=..., verbose=...) without data arguments.")
        recipe = self.recipe(hp)
        unknown = set(kwargs) - {"epochs", "verbose", "callbacks", "initial_epoch"}
        if unknown:
            raise TypeError(f"DSRHyperModel.fit: unsupported fit arguments {sorted(unknown)}.")
        if "epochs" in kwargs:  # the tuner's epochs decide the steps
            recipe = recipe.replace(steps=kwargs["epochs"] * recipe.steps_per_epoch)
        callbacks = [DSRMeasures(self.x_val, every=self.measures_every),
                     DSRScore(self.scorer.dh_weight, self.scorer.diverged_score)]
        callbacks += list(kwargs.get("callbacks") or [])
        try:
            _, history, _ = recipes.train(recipe, self.x_train, callbacks=callbacks,
                                          verbose=kwargs.get("verbose", "auto"), model=model,
                                          initial_epoch=kwargs.get("initial_epoch", 0))
        except TrainingDiverged:
            # a diverged trial scores as diverged, it does not stop the search
            history = keras.callbacks.History()
            history.history = {OBJECTIVE: [self.scorer.diverged_score]}
        return history
