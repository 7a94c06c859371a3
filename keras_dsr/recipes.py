"""Training recipes: one configuration object from data to a trained, evaluated model.

A :class:`Recipe` holds everything that defines a reconstruction run (cell, sizes,
training sequence length, GTF schedule, optimiser schedule, seed). :func:`train`
fits a :class:`~keras_dsr.models.DSRModel` on a trajectory with it; :func:`reconstruct`
does the whole job for a benchmark system: simulate independent training and test
trajectories, train, and score the free-running model with the measures of
DESIGN §3. The example, the ``keras-dsr`` command and the zoo presets all go
through these functions, so a preset's recipe is exactly what rebuilds it.

Example:
    >>> from keras_dsr.recipes import Recipe, reconstruct
    >>> result = reconstruct("lorenz63", Recipe(steps=600))   # doctest: +SKIP
    >>> result.scores                                          # doctest: +SKIP
    {'dstsp': ..., 'dh': ...}
"""

import dataclasses
import time
from typing import Optional, Union

import numpy as np

import keras

from keras_dsr.utils import set_random_seed

__all__ = ["Recipe", "train", "reconstruct", "simulate_split", "Reconstruction", "CELLS"]

CELLS = ("clipped_shplrnn", "shplrnn", "plrnn", "alrnn", "polynomial")
CELL_INITS = ("random", "least_squares")


@dataclasses.dataclass
class Recipe:
    """Configuration of a GTF-DEER reconstruction run.

    Attributes:
        cell: one of :data:`CELLS` (default the lab's clipped shallow PLRNN).
            ``"polynomial"``: :class:`~keras_dsr.cells.PolynomialFlow` (a cubic vector
            field, two RK4 steps per sample, bounded at 10 standardised units;
            ``hidden_dim`` is not used), the smooth model of the Hindmarsh-Rose preset.
        latent_dim: latent size M (default: the number of observed features N).
        hidden_dim: hidden size L of the shallow PLRNNs (ALRNN: number of ReLU units).
        seq_len: training window length T (time steps).
        batch_size: windows per batch.
        steps: optimiser steps in total.
        steps_per_epoch: optimiser steps per Keras epoch (logging granularity).
        learning_rate: initial Adam learning rate, cosine-decayed to
            ``learning_rate * final_lr_fraction`` over ``steps``.
        final_lr_fraction: see ``learning_rate``.
        alpha: ``"adaptive"`` (adaptive GTF, DESIGN §2.3) or a constant forcing in [0, 1].
        gtf_gamma, gtf_k: adaptive GTF's smoothing factor and update period (batches).
        alpha_estimator: Jacobian-norm estimator of adaptive GTF.
        method: DEER method (``"deer"``, ``"quasi"``, ``"damped"``, ``"sequential"``).
        chunk_size: None or a positive int: DEER solves each window ``chunk_size``
            steps at a time (less memory, same result; see
            :class:`~keras_dsr.layers.GTFDEERLayer`).
        train_length: steps of the simulated training trajectory (``reconstruct``).
        dt: None (the system's default sampling interval) or a positive float: the
            sampling interval of the simulated data, in the system's time units.
            Rössler at dt = 0.1 rather than its default 0.05 gave the first models near
            its attractor (validation D_stsp 0.12 against 0.96 and more,
            ``benchmarks/recipe_search/RESULTS_zoo.md``, session 9).
        seed: seed of the simulated data (training: ``seed``, test: ``seed + 1``)
            and, unless ``init_seed`` is set, of the weights and window order.
        init_seed: None or an int: seed of the weights and window order alone
            (several initialisations on the same data, e.g. ``zoo/build.py --tries``).
        latent_l2: strength of a :class:`~keras_dsr.regularizers.LatentL2` penalty on
            the cell's connection matrices, added to the loss (0: none). Measured on
            Lorenz-96 (one initialisation, validation checkpoints every 300 steps):
            1e-5 moved the model's lambda_max from +17-36 % above the true value to
            -5-+16 %, at equal D_stsp and D_H (``benchmarks/recipe_search/RESULTS_zoo.md``).
        train_noise: standard deviation of Gaussian noise added to every training window
            (in the units of the training data, i.e. of the standardised variables for
            ``reconstruct`` and the zoo; 0: none). The same noisy window is forcing
            signal and target (:class:`~keras_dsr.data.TrajectoryWindows` ``noise``), so
            the model learns to map states off the data back onto it.
        cell_init: ``"random"`` (default: the cell's initialisation) or
            ``"least_squares"`` (``cell="polynomial"`` only: before training, the field
            is fitted to finite differences of the training data,
            :meth:`~keras_dsr.cells.PolynomialFlow.fit_field`; GTF-DEER then trains
            the one-step map from there).

    Example:
        >>> Recipe(seq_len=2_000).to_dict()["seq_len"]
        2000

    The defaults are the Lorenz-63 recipe of ``examples/train_lorenz63.py``
    (T = 10 000 windows, batch 1, 3000 Adam steps at lr 1e-2, L = 100, adaptive GTF
    with gamma 0.99): 2.5 minutes of training on a quiet 2-core CPU (1.8 with
    ``chunk_size=250``, ``benchmarks/RESULTS_reconstruct.md``), D_stsp 0.1-0.29 and
    D_H ~0.06 over seeds 0-2 (``benchmarks/recipe_search/RESULTS.md``, README).
    """

    cell: str = "clipped_shplrnn"
    latent_dim: Optional[int] = None
    hidden_dim: int = 100
    seq_len: int = 10_000
    batch_size: int = 1
    steps: int = 3000
    steps_per_epoch: int = 100
    learning_rate: float = 1e-2
    final_lr_fraction: float = 1e-2
    alpha: Union[str, float] = "adaptive"
    gtf_gamma: float = 0.99
    gtf_k: int = 5
    alpha_estimator: str = "product_upper_bound"
    method: str = "deer"
    chunk_size: Optional[int] = None
    train_length: int = 100_000
    dt: Optional[float] = None
    seed: int = 0
    init_seed: Optional[int] = None
    latent_l2: float = 0.0
    train_noise: float = 0.0
    cell_init: str = "random"

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"Recipe: `cell` must be one of {CELLS}, got {self.cell!r}.")
        for name in ("hidden_dim", "seq_len", "batch_size", "steps", "steps_per_epoch",
                     "gtf_k", "train_length"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Recipe: `{name}` must be a positive int, got {v!r}.")
        if self.seq_len < 2:
            raise ValueError(f"Recipe: `seq_len` must be >= 2, got {self.seq_len}.")
        for name in ("chunk_size", "init_seed"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer))
                                  or (name == "chunk_size" and v < 1)):
                raise ValueError(f"Recipe: `{name}` must be None or a "
                                 f"{'positive ' if name == 'chunk_size' else ''}int, got {v!r}.")
        if self.latent_dim is not None and (not isinstance(self.latent_dim, int)
                                            or self.latent_dim < 1):
            raise ValueError(f"Recipe: `latent_dim` must be a positive int or None, "
                             f"got {self.latent_dim!r}.")
        if not (isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0):
            raise ValueError(f"Recipe: `learning_rate` must be > 0, got {self.learning_rate!r}.")
        if not 0 < self.final_lr_fraction <= 1:
            raise ValueError("Recipe: `final_lr_fraction` must be in (0, 1], got "
                             f"{self.final_lr_fraction!r}.")
        if self.alpha != "adaptive" and not (isinstance(self.alpha, (int, float))
                                             and 0.0 <= self.alpha <= 1.0):
            raise ValueError(f"Recipe: `alpha` must be 'adaptive' or in [0, 1], got {self.alpha!r}.")
        if (isinstance(self.latent_l2, bool) or not isinstance(self.latent_l2, (int, float))
                or not 0.0 <= self.latent_l2 < float("inf")):
            raise ValueError(f"Recipe: `latent_l2` must be a finite number >= 0, "
                             f"got {self.latent_l2!r}.")
        if (isinstance(self.train_noise, bool) or not isinstance(self.train_noise, (int, float))
                or not 0.0 <= self.train_noise < float("inf")):
            raise ValueError(f"Recipe: `train_noise` must be a finite number >= 0, "
                             f"got {self.train_noise!r}.")
        if self.dt is not None and (isinstance(self.dt, bool)
                                    or not isinstance(self.dt, (int, float))
                                    or not 0.0 < self.dt < float("inf")):
            raise ValueError(f"Recipe: `dt` must be None or a finite number > 0, got {self.dt!r}.")
        if self.cell_init not in CELL_INITS:
            raise ValueError(f"Recipe: `cell_init` must be one of {CELL_INITS}, "
                             f"got {self.cell_init!r}.")
        if self.cell_init == "least_squares" and self.cell != "polynomial":
            raise ValueError("Recipe: `cell_init='least_squares'` needs `cell='polynomial'` "
                             f"(a field linear in its weights), got cell={self.cell!r}.")
        if not 0.0 <= self.gtf_gamma < 1.0:
            raise ValueError(f"Recipe: `gtf_gamma` must be in [0, 1), got {self.gtf_gamma!r}.")

    def to_dict(self):
        """The recipe as a JSON-serialisable dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, config):
        """Inverse of :meth:`to_dict`; unknown keys raise a ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(f"Recipe: unknown field(s) {unknown}; known: {sorted(names)}.")
        return cls(**config)

    def replace(self, **changes):
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def weight_seed(self):
        """The seed of the weights and the window order (``init_seed`` or ``seed``)."""
        return self.seed if self.init_seed is None else self.init_seed


def make_cell(recipe, n_features):
    """The latent model of ``recipe`` for data with ``n_features`` observed variables."""
    from keras_dsr import cells

    m = recipe.latent_dim or n_features
    if m < n_features:
        raise ValueError(f"Recipe: `latent_dim` ({m}) must be >= the number of observed "
                         f"features ({n_features}).")
    seed = recipe.weight_seed
    if recipe.cell == "clipped_shplrnn":
        return cells.ClippedShallowPLRNN(m, recipe.hidden_dim, seed=seed, name="cell")
    if recipe.cell == "shplrnn":
        return cells.ShallowPLRNN(m, recipe.hidden_dim, seed=seed, name="cell")
    if recipe.cell == "plrnn":
        return cells.PLRNN(m, seed=seed, name="cell")
    if recipe.cell == "polynomial":
        return cells.PolynomialFlow(m, degree=3, substeps=2, bound=10.0, seed=seed,
                                    name="cell")
    return cells.ALRNN(m, num_relu=min(recipe.hidden_dim, m), seed=seed, name="cell")


def build_model(recipe, n_features):
    """A compiled :class:`~keras_dsr.models.DSRModel` for ``recipe`` (Adam, cosine lr)."""
    from keras_dsr.models import DSRModel
    from keras_dsr.regularizers import LatentL2

    model = DSRModel(cell=make_cell(recipe, n_features),
                     alpha=recipe.alpha, method=recipe.method,
                     alpha_estimator=recipe.alpha_estimator,
                     regularizers=[LatentL2(recipe.latent_l2)] if recipe.latent_l2 else None,
                     solver_options=({} if recipe.chunk_size is None
                                     else {"chunk_size": recipe.chunk_size}))
    lr = keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate, decay_steps=recipe.steps, alpha=recipe.final_lr_fraction)
    model.compile(optimizer=keras.optimizers.Adam(lr))
    return model


def gtf_callback(recipe):
    """The alpha callback of ``recipe`` (adaptive GTF or a constant forcing)."""
    from keras_dsr.callbacks import AdaptiveGTF, ConstantAlpha

    if recipe.alpha == "adaptive":
        return AdaptiveGTF(k=recipe.gtf_k, gamma=recipe.gtf_gamma)
    return ConstantAlpha(float(recipe.alpha))


def training_windows(recipe, x, seed=None):
    """The :class:`~keras_dsr.data.TrajectoryWindows` of ``recipe`` over ``x`` ``[T, N]``
    (or a list of them): its ``seq_len``, ``batch_size``, ``steps_per_epoch`` and
    ``train_noise``; ``seed`` defaults to the recipe's ``weight_seed``.

    Example:
        >>> x = np.zeros((500, 3))
        >>> training_windows(Recipe(seq_len=100, batch_size=4), x)[0][0].shape
        (4, 100, 3)
    """
    from keras_dsr.data import TrajectoryWindows

    return TrajectoryWindows(x, seq_len=recipe.seq_len, batch_size=recipe.batch_size,
                             steps_per_epoch=recipe.steps_per_epoch, noise=recipe.train_noise,
                             seed=recipe.weight_seed if seed is None else seed)


def train(recipe, x, callbacks=(), verbose="auto"):
    """Fit a DSR model on trajectory ``x`` ``[T, N]`` (or a list of them) with ``recipe``.

    Windows of ``recipe.seq_len`` steps are drawn at random
    (:class:`~keras_dsr.data.TrajectoryWindows`); training runs ``recipe.steps``
    optimiser steps in epochs of ``recipe.steps_per_epoch``.

    Returns:
        ``(model, history, seconds)``: the trained model, Keras ``History`` and
        the wall-clock training time in seconds.
    """
    set_random_seed(recipe.weight_seed)
    windows = training_windows(recipe, x)
    n = windows.trajectories[0].shape[1]
    model = build_model(recipe, n)
    if recipe.cell_init == "least_squares":
        model.build((None, recipe.seq_len, n))
        model.cell.fit_field(windows.trajectories)
    epochs = max(1, -(-recipe.steps // recipe.steps_per_epoch))
    t0 = time.perf_counter()
    history = model.fit(windows, epochs=epochs, verbose=verbose,
                        callbacks=[gtf_callback(recipe)] + list(callbacks))
    return model, history, time.perf_counter() - t0


@dataclasses.dataclass
class Reconstruction:
    """Result of :func:`reconstruct`.

    Attributes:
        model: the trained DSR model.
        history: Keras ``History`` of the training.
        scores: measures of the free-running model against the test trajectory.
        floor: the same measures of an independent true trajectory against the
            test trajectory (what no model can beat), when computed.
        seconds: training time (s).
        train, test: the simulated :class:`~keras_dsr.systems.Trajectory` objects.
        generated: the free-running trajectory scored ``[T_test, N]``.
        recipe: the recipe used.
    """

    model: object
    history: object
    scores: dict
    floor: Optional[dict]
    seconds: float
    train: object
    test: object
    generated: np.ndarray
    recipe: Recipe


def reconstruct(system, recipe=None, measures=("dstsp", "dh"), test_length=100_000,
                with_floor=False, callbacks=(), verbose="auto"):
    """Simulate ``system``, train a GTF-DEER model on it, and score its free run.

    Training data: ``recipe.train_length`` standardised steps from initial-condition
    seed ``recipe.seed``; test data: ``test_length`` steps from seed
    ``recipe.seed + 1`` (independent), standardised with the *training* statistics;
    both (and the floor's third trajectory) come from one ensemble solve
    (:func:`simulate_split`).
    Scores follow DESIGN §3 (generate 1.25 T_test from the first test point, drop
    the transient). ``with_floor`` also scores a third true trajectory (seed + 2).
    Driven systems (``System.inputs``, e.g. Duffing) raise ``ValueError``:
    :class:`~keras_dsr.models.DSRModel` learns autonomous dynamics and would ignore
    the drive.

    Returns:
        a :class:`Reconstruction`.
    """
    from keras_dsr.measures import evaluate, generate_for_evaluation
    from keras_dsr.systems import get_system

    recipe = Recipe() if recipe is None else recipe
    sys_ = get_system(system)
    check_autonomous(sys_, "reconstruct")
    train_traj, test_traj, *rest = simulate_split(
        sys_.name, recipe.train_length, test_length, recipe.seed,
        n_extra=1 if with_floor else 0, dt=recipe.dt)
    model, history, seconds = train(recipe, train_traj.x, callbacks=callbacks,
                                    verbose=verbose)
    x_gen = generate_for_evaluation(model, test_traj.x)
    scores = evaluate(model, test_traj.x, measures=measures, dt=train_traj.dt, x_gen=x_gen)
    floor = None
    if with_floor:
        floor = _true_scores(test_traj.x, rest[0].x, measures)
    return Reconstruction(model=model, history=history, scores=scores, floor=floor,
                          seconds=seconds, train=train_traj, test=test_traj,
                          generated=x_gen, recipe=recipe)


def check_autonomous(system, where=None):
    """Raise ``ValueError`` if ``system`` (a :class:`~keras_dsr.systems.System`) is driven.

    A driven system's observations depend on an external input (``System.inputs``,
    e.g. Duffing's ``cos(phi)``) that :class:`~keras_dsr.models.DSRModel` does not
    take, so a model trained on them would silently learn the wrong, autonomous
    dynamics. ``where`` (e.g. ``"reconstruct"``) prefixes the message.

    Example:
        >>> from keras_dsr.systems import get_system
        >>> check_autonomous(get_system("lorenz63"), "reconstruct")   # passes
    """
    if system.inputs is None:
        return
    from keras_dsr.systems import get_system, list_systems

    autonomous = [n for n in list_systems() if get_system(n).inputs is None]
    raise ValueError(
        f"{where + ': ' if where else ''}{system.name!r} is driven by an external input, "
        f"which DSRModel does not model (it learns autonomous dynamics), so a model "
        f"trained on it would ignore the drive. Choose an autonomous system: "
        f"{', '.join(autonomous)}.")


def simulate_split(name, train_length, test_length, seed, n_extra=0, dt=None):
    """Training, test and ``n_extra`` further trajectories of ``name``, in one ODE solve.

    ``dt``: the sampling interval (None: the system's default).

    The trajectories start from the initial conditions of seeds ``seed``,
    ``seed + 1``, ... and are integrated together as one ensemble
    (:func:`~keras_dsr.systems.simulate_ensemble`: one adaptive solve costs about
    as much as one trajectory: 0.40x the time of three separate solves for
    :func:`reconstruct`'s Lorenz-63 data, ``benchmarks/RESULTS_reconstruct.md``). The training trajectory (``train_length``
    steps) is standardised with its own statistics; the others (``test_length``
    steps each) with the *training* statistics.

    Returns:
        a list of ``2 + n_extra`` :class:`~keras_dsr.systems.Trajectory` objects.

    Example:
        >>> tr, te = simulate_split("lorenz63", 3_000, 1_000, seed=0)
        >>> tr.x.shape, te.x.shape
        ((3000, 3), (1000, 3))
    """
    from keras_dsr.systems import simulate_ensemble

    n = max(train_length, test_length)
    raw = simulate_ensemble(name, n, seeds=range(seed, seed + 2 + n_extra), dt=dt,
                            standardize=False)
    out = []
    for i, traj in enumerate(raw):
        steps = train_length if i == 0 else test_length
        clean = traj.clean[:steps]
        if i == 0:
            mean, std = clean.mean(0), clean.std(0)
            std = np.where(std > 0, std, 1.0)
        x = ((clean - mean) / std).astype("float32")
        out.append(dataclasses.replace(
            traj, x=x, clean=x, states=traj.states[:steps], t=traj.t[:steps],
            inputs=None if traj.inputs is None else traj.inputs[:steps], mean=mean, std=std))
    return out


def _simulate_like(name, steps, seed, reference):
    """Simulate ``name`` at ``reference``'s dt and standardise with its statistics."""
    from keras_dsr.systems import simulate

    traj = simulate(name, steps, dt=reference.dt, seed=seed, standardize=False)
    x = reference.standardize(traj.clean).astype("float32")
    return dataclasses.replace(traj, x=x, clean=x, mean=reference.mean, std=reference.std)


def _true_scores(x_test, x_other, measures):
    """Floor: measures of an independent true trajectory against the test set."""
    from keras_dsr.measures import power_spectrum_distance, state_space_divergence

    out = {}
    if "dstsp" in measures:
        out["dstsp"] = state_space_divergence(x_test, x_other)
    if "dh" in measures:
        out["dh"] = power_spectrum_distance(x_test, x_other)
    return out
