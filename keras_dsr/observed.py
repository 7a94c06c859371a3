r"""Evaluation in the observation space: free runs started from data-inferred latent states.

A model whose latent size M exceeds the number N of observed variables (a scalar
recording with M = 3, a delay embedding, an affine observation ``x = B z + b``)
generates observations ``O(z_t)`` (:meth:`~keras_dsr.models.DSRModel.generate`), so the
measures of :mod:`keras_dsr.measures` already compare like with like: D_stsp, D_H and
PE(n) are computed on observed (or delay-embedded) vectors, never on latent states.
What M > N changes is the start of a free run: one observation ``x_0`` does not
determine the M - N unobserved directions, and ``init(x_0)`` (``[x_0, 0]`` or
``pinv(B)(x_0 - b)``) puts them at zero. :func:`warm_start` infers them from a short
stretch of data instead, by forcing the model along it (a forced warm-up):

    z_1 = init(x_1);   for t = 2..W:
        z_t = F(z_{t-1}) + alpha * [O+(x_t) - O+(O(F(z_{t-1})))]

``O+`` is the observation model's pseudo-inverse (identity: ``O+(x) = [x, 0]``;
affine: ``pinv(B)(x - b)``), so the correction moves z only within the observed
directions (the row space of B), towards the state whose observation is x_t, and
leaves the unobserved directions to the model's own dynamics. With ``alpha = 1``
(default) the observed part is set to the data at every step: for the identity
observation ``z_t = [x_t, F(z_{t-1})[N:]]``, the drive-response synchronisation of
the unobserved units to the data (they converge to the states that generated the
data whenever their dynamics, driven by the observed ones, is contracting). The
state after the last warm-up sample ``x_W`` is the start of the free run, whose
first generated step predicts ``x_{W+1}``.

- :func:`generate_observed`: the evaluation protocol of :mod:`keras_dsr.measures`
  (generate ``1.25 T``, drop ``0.25 T``) from the warm-started state.
- :func:`prediction_error_observed`: PE(n) with a warm-up of ``warmup`` samples
  ending at each initial test point.
- :func:`reconstruct_observed`: the whole job for a simulated system measured
  through some of its variables, with noise and a delay embedding (what
  ``keras-dsr reconstruct --observe ... --embed ...`` runs).
- :func:`evaluate_observed`: D_stsp, D_H, PE(n) and lambda_max on all observed
  columns or on a subset (``channels``: e.g. the first C columns of a delay
  embedding, which are the recorded channels themselves,
  :attr:`keras_dsr.embedding.Prepared.channels`).

The floor of these scores is an independent true trajectory passed through the same
observation (:meth:`keras_dsr.embedding.Observation.apply`) and scored on the same
channels (:func:`keras_dsr.reconstruction.floor_scores`).
"""

import numpy as np

from keras_dsr._checks import check_int, check_number
from keras_dsr import measures as M

__all__ = ["MeasurementError", "evaluate_observed", "generate_observed",
           "prediction_error_observed", "reconstruct_observed", "warm_start"]


class MeasurementError(ValueError):
    """The measurement options (observed variables, delay embedding, latent size,
    observation model) do not fit the data: what a user chose, not a failure of
    training. :func:`reconstruct_observed` raises it before any training."""


#: Default warm-up length (samples) of the free runs.
DEFAULT_WARMUP = 50


def _gtf_layer(model):
    gtf = getattr(model, "gtf", None)
    if gtf is None or not all(hasattr(gtf, a) for a in ("infer_latent", "observe",
                                                          "initial_state")):
        raise TypeError("model must be a built keras_dsr DSRModel (with an observation "
                        f"model `gtf`), got {type(model).__name__}.")
    if not getattr(model, "built", False) or gtf.observed_dim is None:
        raise ValueError("model is not built: fit or build it before evaluating it.")
    return gtf


def _check_warmup(warmup, length=None):
    warmup = check_int(warmup, "warmup (samples)")
    if length is not None and warmup >= length:
        raise ValueError(f"warmup ({warmup}) must be shorter than the test data "
                         f"({length} samples).")
    return int(warmup)


def warm_start(model, x_warm, alpha=1.0):
    """Latent state after a forced warm-up along observed data (module docstring).

    Args:
        model: a built :class:`~keras_dsr.models.DSRModel`.
        x_warm: observations ``[W, N]`` or ``[B, W, N]`` (W >= 1) in the model's units.
        alpha: forcing in the observed directions, in [0, 1] (1: the observed part
            is set to the data at each step; 0: a free run from ``init(x_1)``).

    Returns:
        numpy float32 ``[M]`` (or ``[B, M]``): the state at the last sample of
        ``x_warm``; pass it to ``model.generate(state=..., steps=...)``.

    Example:
        >>> z = warm_start(model, x_test[:50])          # doctest: +SKIP
        >>> x_gen = model.generate(state=z, steps=1000)  # predicts x_test[50:1050]
    """
    from keras import ops

    gtf = _gtf_layer(model)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}.")
    x = np.asarray(x_warm, dtype=np.float32)
    single = x.ndim == 2
    if single:
        x = x[None]
    n = gtf.observed_dim
    if x.ndim != 3 or x.shape[1] < 1 or x.shape[2] != n:
        raise ValueError(f"x_warm must have shape [W, {n}] or [B, W, {n}] with W >= 1, "
                         f"got {np.shape(x_warm)}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x_warm contains NaN or inf.")
    xt = ops.convert_to_tensor(x)
    z = gtf.initial_state(xt[:, 0])
    for t in range(1, x.shape[1]):
        z = model.cell(z)
        if alpha:
            z = z + alpha * (gtf.infer_latent(xt[:, t]) - gtf.infer_latent(gtf.observe(z)))
    z = np.asarray(ops.convert_to_numpy(z), dtype=np.float32)
    if not np.all(np.isfinite(z)):
        raise FloatingPointError("The forced warm-up diverged (NaN/inf latent state).")
    return z[0] if single else z


class _FromState:
    """``generate(x0, steps, return_latent)`` of ``model`` started from a fixed latent state.

    Lets the protocol functions of :mod:`keras_dsr.measures` (which start from an
    observation ``x0``) run from a warm-started state; ``x0`` is ignored.
    """

    def __init__(self, model, state):
        self.model, self.cell, self.state = model, model.cell, np.atleast_2d(state)

    def generate(self, x0, steps, return_latent=False):
        return self.model.generate(state=self.state, steps=steps, return_latent=return_latent)


def generate_observed(model, x_test, warmup=DEFAULT_WARMUP, alpha=1.0,
                      transient_fraction=0.25):
    """Free run for evaluation from a warm-started state: ``[T, N]`` to compare with ``x_test``.

    The state after a forced warm-up on ``x_test[:warmup]`` (:func:`warm_start`)
    generates ``T + round(transient_fraction * T)`` steps; the first
    ``round(transient_fraction * T)`` are dropped (the protocol of
    :func:`keras_dsr.measures.generate_for_evaluation`).
    """
    x_test = M._as_2d(x_test, "x_test")
    warmup = _check_warmup(warmup, x_test.shape[0])
    state = warm_start(model, x_test[:warmup], alpha=alpha)
    return M.generate_for_evaluation(_FromState(model, state), x_test,
                                     transient_fraction=transient_fraction)


def _channels(channels, n):
    if channels is None:
        return np.arange(n)
    try:
        idx = np.asarray(channels).astype(int, casting="safe").ravel()
    except (TypeError, ValueError):
        raise TypeError(f"channels must be a sequence of ints, got {channels!r}.") from None
    if idx.size == 0 or np.any(idx < 0) or np.any(idx >= n) or len(set(idx)) != idx.size:
        raise ValueError(f"channels must be distinct column indices in [0, {n}), got "
                         f"{list(np.asarray(channels).ravel())!r}.")
    return idx


def prediction_error_observed(model, x_test, n=20, warmup=DEFAULT_WARMUP, alpha=1.0,
                              channels=None, max_inits=None, batch_size=1024, seed=0,
                              nonfinite="warn"):
    """PE(n) from warm-started states, on the observed columns ``channels``.

    For each initial test index t (t = warmup-1 .. T-n-1, or ``max_inits`` of them
    chosen with ``seed``), the model is warmed up on ``x_test[t-warmup+1 .. t]``
    and generates n steps; ``PE = mean_t mean_c (x_hat_{t+n,c} - x_{t+n,c})**2``
    over the columns c in ``channels`` (default all). ``warmup=1`` starts from
    ``init(x_t)`` as :func:`keras_dsr.measures.prediction_error` does.
    """
    x_test = M._as_2d(x_test, "x_test")
    check_int(n, "n (steps)")
    T = x_test.shape[0]
    warmup = _check_warmup(warmup)
    if T < warmup + n:
        raise ValueError(f"x_test ({T} samples) must hold warmup + n = {warmup + n} samples.")
    ch = _channels(channels, x_test.shape[1])
    starts = np.arange(warmup - 1, T - n)
    if max_inits is not None and max_inits < starts.size:
        starts = np.sort(np.random.default_rng(seed).choice(starts, int(max_inits),
                                                            replace=False))
    sq = 0.0
    offsets = np.arange(-warmup + 1, 1)
    for i in range(0, starts.size, int(batch_size)):
        s = starts[i:i + int(batch_size)]
        z = warm_start(model, x_test[s[:, None] + offsets], alpha=alpha)
        gen = np.asarray(model.generate(state=z, steps=n))
        err = gen[:, n - 1, ch].astype(np.float64) - x_test[s + n][:, ch]
        if not np.all(np.isfinite(err)):
            return M._nonfinite("PE", nonfinite)
        sq += float(np.sum(err ** 2))
    return sq / (starts.size * ch.size)


def evaluate_observed(model, x_test, measures=("dstsp", "dh"), channels=None,
                      warmup=DEFAULT_WARMUP, alpha=1.0, dt=None, n_bins=30, sigma=20.0,
                      pe_steps=20, pe_max_inits=1000, lyap_steps=10_000, nonfinite="warn",
                      x_gen=None):
    """Scores of ``model`` on ``x_test`` in the observation space, from a warm-started run.

    Args:
        model: a built :class:`~keras_dsr.models.DSRModel` trained on data like ``x_test``.
        x_test: observed (or delay-embedded) test data ``[T, N]`` in the model's units.
        measures: any of ``"dstsp"``, ``"dh"``, ``"pe"``, ``"lyap"``.
        channels: columns of ``x_test`` that D_stsp, D_H and PE are computed on
            (default all N; e.g. ``Prepared.channels`` to score a
            delay-embedded model on the recorded channels alone).
        warmup, alpha: the forced warm-up (:func:`warm_start`) of the free run
            and of each PE prediction.
        dt: sampling interval, required for ``"lyap"`` (lambda_max per time unit,
            from a free run started at the warm-started state).
        x_gen: a trajectory from :func:`generate_observed` (else generated here).

    Returns:
        dict of the requested scores.
    """
    known = {"dstsp", "dh", "pe", "lyap"}
    bad = [m for m in measures if m not in known]
    if bad:
        raise ValueError(f"Unknown measure(s) {bad}; expected some of {sorted(known)}.")
    x_test = M._as_2d(x_test, "x_test")
    ch = _channels(channels, x_test.shape[1])
    out = {}
    if {"dstsp", "dh"} & set(measures):
        if x_gen is None:
            x_gen = generate_observed(model, x_test, warmup=warmup, alpha=alpha)
        x_gen = M._as_2d(x_gen, "x_gen")
        out = M.evaluate(None, x_test[:, ch], [m for m in measures if m in ("dstsp", "dh")],
                         n_bins=n_bins, sigma=sigma, nonfinite=nonfinite,
                         x_gen=x_gen[:, ch])
    if "pe" in measures:
        out["pe"] = prediction_error_observed(model, x_test, n=pe_steps, warmup=warmup,
                                              alpha=alpha, channels=ch,
                                              max_inits=pe_max_inits, nonfinite=nonfinite)
    if "lyap" in measures:
        start = _FromState(model, warm_start(model, x_test[:_check_warmup(warmup, len(x_test))],
                                             alpha=alpha))
        out.update(M.evaluate(start, x_test, ["lyap"], dt=dt, lyap_steps=lyap_steps,
                              nonfinite=nonfinite))
    return {m: out[m] for m in measures}


def reconstruct_observed(system, recipe=None, observe=None, embed=None, observation=None,
                         noise=0.0, measures=("dstsp", "dh"), test_length=100_000,
                         warmup=DEFAULT_WARMUP, channels=None, with_floor=True, callbacks=(),
                         verbose="auto"):
    """Simulate ``system``, measure it (variables, noise, embedding), train, score.

    The trajectories of :func:`keras_dsr.reconstruction.simulate_split` (training
    seed ``recipe.seed``, test ``+ 1``, floor ``+ 2``; standardised with the
    training statistics). Gaussian observation noise of standard deviation
    ``noise`` (a fraction of each standardised variable's unit std; seed
    ``recipe.seed``) is added to the training data only: the model is scored on
    clean test data. :func:`keras_dsr.embedding.prepare` builds the measurement
    from the training data (``observe``, ``embed``, ``recipe.latent_dim``,
    ``observation``: default ``recipe.observation``); test and floor data go
    through the same :class:`~keras_dsr.embedding.Observation`. Scores:
    :func:`evaluate_observed` on ``channels`` (default all columns of the
    embedding; ``"recorded"``: the recorded channels alone), the floor on the
    same columns.

    Returns:
        ``(result, prepared)``: a :class:`~keras_dsr.reconstruction.Reconstruction`
        (``generated`` in the observation space) and the
        :class:`~keras_dsr.embedding.Prepared` of the training data.

    Raises:
        MeasurementError: ``observe``, ``embed``, the recipe's ``latent_dim`` or
            ``observation`` do not fit the simulated data (before training).
    """
    from keras_dsr.embedding import prepare
    from keras_dsr.reconstruction import (Reconstruction, check_autonomous, floor_scores,
                                          simulate_split)
    from keras_dsr.recipes import Recipe, train
    from keras_dsr.systems import get_system

    recipe = Recipe() if recipe is None else recipe
    check_number(noise, "noise", 0)
    sys_ = get_system(system)
    check_autonomous(sys_, "reconstruct_observed")
    train_traj, test_traj, *rest = simulate_split(
        sys_.name, recipe.train_length, test_length, recipe.seed,
        n_extra=1 if with_floor else 0, dt=recipe.dt)
    x_train = train_traj.x.astype(np.float64)
    if noise:
        x_train = x_train + noise * np.random.default_rng(recipe.seed).standard_normal(
            x_train.shape)
    try:
        prep = prepare(x_train, observe=observe, embed=embed, latent=recipe.latent_dim,
                       observation=observation or recipe.observation)
    except ValueError as e:
        raise MeasurementError(str(e)) from e
    recipe = recipe.replace(**prep.recipe_changes())
    model, history, seconds = train(recipe, prep.x, callbacks=callbacks, verbose=verbose)
    x_test = prep.observation.apply(test_traj.x)
    ch = list(prep.channels) if channels == "recorded" else _channels(channels,
                                                                       x_test.shape[1])
    x_gen = generate_observed(model, x_test, warmup=warmup)
    scores = evaluate_observed(model, x_test, measures, channels=ch, warmup=warmup,
                               dt=train_traj.dt, x_gen=x_gen)
    floor = None
    if with_floor:
        x_other = prep.observation.apply(rest[0].x)
        floor = floor_scores(x_test[:, ch], x_other[:, ch], measures)
    result = Reconstruction(model=model, history=history, scores=scores, floor=floor,
                            seconds=seconds, train=train_traj, test=test_traj,
                            generated=x_gen, recipe=recipe)
    return result, prep
