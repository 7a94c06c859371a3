"""Training a DSR model with a :class:`~keras_dsr.recipes.Recipe`: :func:`train`.

The one path from a recipe and data to a trained model (the command, the tuner, the
zoo build and :func:`keras_dsr.recipes.reconstruct` call it), with the checks that
no diverged model is returned (:func:`check_history`, :func:`check_trained`). The
names are importable from :mod:`keras_dsr.recipes` too.

Examples:
    >>> from keras_dsr.recipes import Recipe
    >>> from keras_dsr.training import train
    >>> model, history, seconds = train(Recipe(steps=100), x)   # doctest: +SKIP
"""

import time

import numpy as np

import keras

from keras_dsr.utils import set_random_seed

__all__ = ["TrainResult", "WindowEpoch", "check_history", "check_trained", "train",
           "validation_score_fn"]


class TrainResult(tuple):
    """``(model, history, seconds)`` of :func:`train`, with ``.report``: one row per
    initialisation (``candidates``) and the fine-tuning's (``finetune``)."""

    def __new__(cls, model, history, seconds, report):
        obj = super().__new__(cls, (model, history, seconds))
        obj.report = report
        return obj


def train(recipe, x, validation=None, score_fn=None, callbacks=(), verbose="auto",
          model=None, initial_epoch=0):
    """Fit a DSR model on trajectory ``x`` ``[T, N]`` (or a list of them) with ``recipe``.

    The one path from a recipe and data to a trained model (the command, the tuner
    and the zoo build call it). Windows of ``recipe.seq_len`` steps are drawn at
    random (:func:`training_windows`); each try runs ``recipe.steps`` optimiser steps
    in epochs of ``recipe.steps_per_epoch`` through Keras's ``fit``, with the
    recipe's forcing schedule in the compiled step. With ``tries``,
    ``select_epochs`` or ``finetune`` the candidates are scored on validation data
    (:class:`~keras_dsr.callbacks.BestCheckpoint`) and the best is kept.

    Args:
        recipe: a :class:`Recipe`.
        x: training trajectory ``[T, N]`` or a list of them (finite, real).
        validation: validation trajectory ``[T', N]`` for the default ``score_fn``
            (D_stsp of the free run against it; lower is better).
        score_fn: ``score_fn(model) -> float`` (lower is better), replacing the
            default.
        callbacks: more Keras callbacks for every ``fit``.
        model: train this compiled model instead of building one (one try, no
            fine-tuning; the tuner passes its trial's model).
        initial_epoch: the epoch to resume at (Keras ``fit``; Hyperband).

    Returns:
        a :class:`TrainResult` ``(model, history, seconds)`` (``history`` of the
        kept try). Raises :class:`~keras_dsr.models.engine.TrainingDiverged` when
        training diverged or the trained model's free run does not stay bounded
        (:func:`check_trained`): no diverged model is ever returned.
    """
    from keras_dsr.callbacks import BestCheckpoint
    from keras_dsr.models.engine import TrainingDiverged
    from keras_dsr.recipes import build_model, training_windows

    trajectories = _check_trajectories(x)
    n = trajectories[0].shape[1]
    selecting = recipe.tries > 1 or bool(recipe.select_epochs) or recipe.finetune is not None
    if selecting and score_fn is None:
        if validation is None:
            raise ValueError("train: a recipe with `tries` > 1, `select_epochs` or `finetune` "
                             "needs `validation` data or a `score_fn`.")
        score_fn = validation_score_fn(_check_trajectories(validation, "validation")[0])
    if model is not None and (recipe.tries > 1 or recipe.finetune is not None):
        raise ValueError("train: `model` trains one given model: use tries=1 and no finetune.")
    epochs = max(1, -(-recipe.steps // recipe.steps_per_epoch))
    best, candidates, t0 = None, [], time.perf_counter()
    for i in range(recipe.tries):
        r = recipe if i == 0 else recipe.replace(init_seed=recipe.weight_seed + 1000 * i)
        set_random_seed(r.weight_seed)
        windows = training_windows(r, trajectories)
        m = build_model(r, n) if model is None else model
        if r.cell_init == "least_squares":
            m.build((None, r.seq_len, n))
            m.cell.fit_field(windows.trajectories)
        selector = BestCheckpoint(score_fn, epochs=r.select_epochs) if selecting else None
        t_try = time.perf_counter()
        try:
            history = m.fit(windows, epochs=epochs, verbose=verbose, initial_epoch=initial_epoch,
                            shuffle=False,
                            callbacks=[WindowEpoch(windows)] + list(callbacks)
                            + ([selector] if selector else []))
            check_history(history)
        except TrainingDiverged as e:
            if recipe.tries == 1:
                raise
            failure = e
            candidates.append({"init_seed": r.weight_seed, "diverged": str(e),
                               "train_seconds": round(time.perf_counter() - t_try, 1)})
            continue
        row = {"init_seed": r.weight_seed,
               "train_seconds": round(time.perf_counter() - t_try, 1)}
        score = 0.0
        if selector is not None:
            score = selector.best_score
            row.update(score=round(float(score), 4), epoch=selector.best_epoch,
                       checkpoints={e: round(float(v), 4) for e, v in selector.scores.items()})
        candidates.append(row)
        if best is None or score < best[0]:
            best = (score, m, r, history)
    if best is None:
        raise TrainingDiverged(f"every one of the {recipe.tries} tries diverged; the last: "
                               f"{failure}")
    score, model, r, history = best
    ft_row = None
    if recipe.finetune is not None:
        ft_row = _finetune(model, r, trajectories, score_fn, score, callbacks, verbose)
    check_trained(model, trajectories[0])
    return TrainResult(model, history, time.perf_counter() - t0,
                       {"candidates": candidates, "finetune": ft_row,
                        "init_seed": r.weight_seed})


def _finetune(model, recipe, trajectories, score_fn, start_score, callbacks, verbose):
    """The ``finetune`` phase from ``model``'s weights, in place; returns its report row."""
    from keras_dsr.callbacks import BestCheckpoint
    from keras_dsr.recipes import training_windows
    from keras_dsr.schedules import ConstantForcing

    ft = recipe.finetune
    model.compile(optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(
        ft["learning_rate"], ft["steps"], alpha=0.01)),
        steps_per_execution=recipe.steps_per_execution)
    model.set_schedule(ConstantForcing(ft["alpha"]))
    windows = training_windows(recipe, trajectories, seed=recipe.weight_seed + 7)
    every = ft["every"] // recipe.steps_per_epoch
    n_epochs = ft["steps"] // recipe.steps_per_epoch
    selector = BestCheckpoint(score_fn, epochs=range(every, n_epochs, every),
                              start_score=start_score)
    t0 = time.perf_counter()
    model.fit(windows, epochs=n_epochs, verbose=verbose, shuffle=False,
              callbacks=[WindowEpoch(windows)] + list(callbacks) + [selector])
    return dict(ft, seconds=round(time.perf_counter() - t0, 1),
                kept_step=selector.best_epoch * recipe.steps_per_epoch,
                score=round(float(selector.best_score), 4),
                scores={e * recipe.steps_per_epoch: round(float(v), 4)
                        for e, v in selector.scores.items()})


class WindowEpoch(keras.callbacks.Callback):
    """Sets the :class:`~keras_dsr.data.TrajectoryWindows` epoch to Keras's at each
    epoch's start, so that a run resumed at epoch e (``BackupAndRestore``,
    ``initial_epoch``) draws the windows an uninterrupted run draws there. (The
    windows are a pure function of (seed, epoch, index); :func:`train` fits with
    ``shuffle=False``, so their order is too.)"""

    def __init__(self, windows):
        super().__init__()
        self.windows = windows

    def on_epoch_begin(self, epoch, logs=None):
        self.windows.epoch = epoch


def validation_score_fn(x_val):
    """The default score of :func:`train`'s model selection: D_stsp of the free run
    (:func:`~keras_dsr.measures.generate_for_evaluation`) against ``x_val``; a free run
    that is not finite scores ``inf``."""
    from keras_dsr.measures import generate_for_evaluation, state_space_divergence

    def score(model):
        x_gen = generate_for_evaluation(model, x_val)
        if not np.all(np.isfinite(x_gen)):
            return float("inf")
        return float(state_space_divergence(x_val, x_gen))

    return score


def check_history(history):
    """Raise :class:`~keras_dsr.models.engine.TrainingDiverged` when the last epoch of
    ``history`` applied no step (every one non-finite) or had a diverged step (a loss
    above the engine's ``divergence_factor`` times the data's variance)."""
    from keras_dsr.models.engine import TrainingDiverged

    logs = history.history
    if not logs.get("loss"):
        return
    skipped = logs.get("skipped_steps", [0.0])[-1]
    diverged = logs.get("diverged_steps", [0.0])[-1]
    steps = history.params.get("steps") or 0
    if steps and skipped >= steps:
        raise TrainingDiverged(f"training diverged: none of the last epoch's {steps} steps "
                               "was finite (none was applied).")
    if diverged > 0:
        raise TrainingDiverged(f"training diverged: {int(diverged)} step(s) of the last epoch "
                               "had a loss far above the data's variance (final loss "
                               f"{logs['loss'][-1]:.3g}).")


def check_trained(model, x, steps=None, bound_factor=10.0):
    """Raise :class:`~keras_dsr.models.engine.TrainingDiverged` unless ``model`` is sound.

    Sound: every weight finite, and a free run of ``steps`` (default ``min(len(x),
    10 000)``) from ``x[0]`` finite and inside ``bound_factor`` times the largest
    absolute value of the data ``x`` ``[T, N]``.
    """
    from keras_dsr.models.engine import TrainingDiverged

    for w in model.weights:
        if not np.all(np.isfinite(np.asarray(keras.ops.convert_to_numpy(w), dtype="float64"))):
            raise TrainingDiverged(f"training diverged: the weight {w.path!r} is not finite.")
    steps = min(len(x), 10_000) if steps is None else steps
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        run = np.asarray(model.generate(x[0], steps))
    bound = bound_factor * float(np.max(np.abs(x)))
    if not np.all(np.isfinite(run)) or np.max(np.abs(run)) > bound:
        first = int(np.argmax(~np.isfinite(run).all(-1) | (np.abs(run) > bound).any(-1)))
        raise TrainingDiverged(
            f"training diverged: the trained model's free run leaves every bound of the "
            f"data (|x| > {bound:.3g}, {bound_factor:g}x the data's largest value) at step "
            f"{first + 1} of {steps}.")


def _check_trajectories(x, name="x"):
    """``x`` as a list of finite real float32 arrays ``[T, N]`` (one N for all)."""
    items = list(x) if isinstance(x, (list, tuple)) else [x]
    out = []
    for i, item in enumerate(items):
        a = np.asarray(item)
        where = name if len(items) == 1 else f"{name}[{i}]"
        if np.iscomplexobj(a) or not (np.issubdtype(a.dtype, np.floating)
                                      or np.issubdtype(a.dtype, np.integer)):
            raise TypeError(f"train: `{where}` must hold real numbers, got dtype {a.dtype}.")
        if a.ndim != 2:
            raise ValueError(f"train: `{where}` must have shape [T, N], got {a.shape}.")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"train: `{where}` contains NaN or inf.")
        if np.max(np.abs(a), initial=0.0) > np.finfo("float32").max:
            raise ValueError(f"train: `{where}` has values beyond the float32 range; rescale it.")
        out.append(a.astype("float32"))
    if len({a.shape[1] for a in out}) != 1:
        raise ValueError(f"train: every trajectory of `{name}` needs the same number of "
                         f"features, got {[a.shape[1] for a in out]}.")
    return out
