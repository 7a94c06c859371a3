"""Training recipes: one configuration object from data to a trained, evaluated model.

A :class:`Recipe` holds everything that defines a reconstruction run (cell, sizes,
training sequence length, GTF schedule, optimiser schedule, seed). :func:`train`
fits a :class:`~keras_dsr.models.DSRModel` on a trajectory with it; :func:`reconstruct`
does the whole job for a benchmark system: simulate independent training and test
trajectories, train, and score the free-running model with the measures of
docs/method.md, "Evaluation measures". The example, the ``keras-dsr`` command, the
tuner and the zoo presets all go through these functions, so a preset's recipe is
exactly what rebuilds it.

Examples:
    >>> from keras_dsr.recipes import Recipe, reconstruct
    >>> result = reconstruct("lorenz63", Recipe(steps=600))   # doctest: +SKIP
    >>> result.scores                                          # doctest: +SKIP
    {'dstsp': ..., 'dh': ...}
"""

import dataclasses
from typing import Optional, Tuple, Union

import numpy as np

import keras

from keras_dsr._checks import check_int, check_number

__all__ = ["Recipe", "train", "reconstruct", "simulate_split", "simulate_like", "floor_scores",
           "check_history", "check_trained", "Reconstruction", "TrainResult", "CELLS"]

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
        alpha: ``"adaptive"`` (adaptive GTF, docs/method.md "GTF") or a constant forcing in [0, 1].
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
            ``research/recipe_search/RESULTS_zoo.md``).
        seed: seed of the simulated data (training: ``seed``, test: ``seed + 1``)
            and, unless ``init_seed`` is set, of the weights and window order.
        init_seed: None or an int: seed of the weights and window order alone
            (several initialisations on the same data, e.g. ``zoo/build.py --tries``).
        latent_l2: strength of a :class:`~keras_dsr.regularizers.LatentL2` penalty on
            the cell's connection matrices, added to the loss (0: none). Measured on
            Lorenz-96 (one initialisation, validation checkpoints every 300 steps):
            1e-5 moved the model's lambda_max from +17-36 % above the true value to
            -5-+16 %, at equal D_stsp and D_H (``research/recipe_search/RESULTS_zoo.md``).
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
        forcing: ``"full"`` (default, the lab's: every latent unit forced) or
            ``"partial"`` (the observed units only).
        observation: ``"identity"`` (default) or ``"affine"`` (learned ``x = B z``,
            forcing through ``pinv(B)``).
        steps_per_execution: train steps per compiled call (Keras ``compile``).
        tries: initialisations trained on the same data (``init_seed`` of try i:
            ``weight_seed + 1000 i``); the best on validation data is kept.
        select_epochs: epochs (1-based) after which the model is scored on
            validation data too; the best checkpoint of a try competes.
        finetune: None or a dict ``{"steps", "every", "alpha", "learning_rate"}``:
            after the selection, the winner trains ``steps`` more Adam steps (cosine
            decay from ``learning_rate``) with a constant ``alpha``, scored every
            ``every`` steps; the best of those checkpoints and the start is kept.

    Examples:
        >>> Recipe(seq_len=2_000).to_dict()["seq_len"]
        2000

    The defaults are the Lorenz-63 recipe of ``examples/train_lorenz63.py``
    (T = 10 000 windows, batch 1, 3000 Adam steps at lr 1e-2, L = 100, adaptive GTF
    with gamma 0.99): 2.5 minutes of training on a quiet 2-core CPU (1.8 with
    ``chunk_size=250``, ``benchmarks/RESULTS_reconstruct.md``), D_stsp 0.1-0.29 and
    D_H ~0.06 over seeds 0-2 (``research/recipe_search/RESULTS.md``, README).
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
    forcing: str = "full"
    observation: str = "identity"
    steps_per_execution: int = 10
    tries: int = 1
    select_epochs: Tuple[int, ...] = ()
    finetune: Optional[dict] = None

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"Recipe: `cell` must be one of {CELLS}, got {self.cell!r}.")
        for name in ("hidden_dim", "seq_len", "batch_size", "steps", "steps_per_epoch",
                     "gtf_k", "train_length", "steps_per_execution", "tries"):
            check_int(getattr(self, name), name, 1, "Recipe")
        from keras_dsr.data import MIN_LENGTH

        if self.seq_len < MIN_LENGTH:
            raise ValueError(f"Recipe: `seq_len` must be >= {MIN_LENGTH} (the shortest training "
                             f"window), got {self.seq_len}.")
        check_int(self.seed, "seed", 0, "Recipe")
        check_int(self.init_seed, "init_seed", 0, "Recipe", allow_none=True)
        for name in ("chunk_size", "latent_dim"):
            check_int(getattr(self, name), name, 1, "Recipe", allow_none=True)
        check_number(self.learning_rate, "learning_rate", 0, True, "Recipe")
        if not 0 < self.final_lr_fraction <= 1:
            raise ValueError("Recipe: `final_lr_fraction` must be in (0, 1], got "
                             f"{self.final_lr_fraction!r}.")
        if self.alpha != "adaptive" and not (isinstance(self.alpha, (int, float))
                                             and 0.0 <= self.alpha <= 1.0):
            raise ValueError(f"Recipe: `alpha` must be 'adaptive' or in [0, 1], got {self.alpha!r}.")
        for name in ("latent_l2", "train_noise"):
            check_number(getattr(self, name), name, 0, False, "Recipe")
        check_number(self.dt, "dt", 0, True, "Recipe", allow_none=True)
        if self.cell_init not in CELL_INITS:
            raise ValueError(f"Recipe: `cell_init` must be one of {CELL_INITS}, "
                             f"got {self.cell_init!r}.")
        if self.cell_init == "least_squares" and self.cell != "polynomial":
            raise ValueError("Recipe: `cell_init='least_squares'` needs `cell='polynomial'` "
                             f"(a field linear in its weights), got cell={self.cell!r}.")
        if not 0.0 <= self.gtf_gamma < 1.0:
            raise ValueError(f"Recipe: `gtf_gamma` must be in [0, 1), got {self.gtf_gamma!r}.")
        if self.forcing not in ("full", "partial"):
            raise ValueError(f"Recipe: `forcing` must be 'full' or 'partial', got {self.forcing!r}.")
        if self.observation not in ("identity", "affine"):
            raise ValueError(f"Recipe: `observation` must be 'identity' or 'affine', "
                             f"got {self.observation!r}.")
        self.select_epochs = tuple(self.select_epochs or ())
        n_epochs = -(-self.steps // self.steps_per_epoch)
        for e in self.select_epochs:
            if isinstance(e, bool) or not isinstance(e, (int, np.integer)) or not 1 <= e < n_epochs:
                raise ValueError(f"Recipe: `select_epochs` must hold epochs in [1, {n_epochs}) "
                                 f"(1-based; the final epoch is always scored), got "
                                 f"{self.select_epochs!r}.")
        if self.finetune is not None:
            self.finetune = _check_finetune(self.finetune, self.steps_per_epoch)

    def to_dict(self):
        """The recipe as a JSON-serialisable dict."""
        out = dataclasses.asdict(self)
        out["select_epochs"] = list(self.select_epochs)
        return out

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

    @staticmethod
    def _lab_forcing(adaptive, alpha, estimator, l2_constant, l2_adaptive):
        """The forcing fields of the lab's GTF (constant alpha) or aGTF settings."""
        if not isinstance(adaptive, bool):
            raise TypeError(f"Recipe: `adaptive` must be True or False, got {adaptive!r}.")
        if adaptive:
            return dict(alpha="adaptive", alpha_estimator=estimator, gtf_gamma=0.999,
                        gtf_k=5, latent_l2=l2_adaptive)
        return dict(alpha=alpha, latent_l2=l2_constant)

    @classmethod
    def lab_ecg(cls, adaptive=False, **changes):
        """The Durstewitz lab's ECG setup (Hess et al., ICML 2023, Table 1).

        Data: the 5-d delay embedding of one ECG lead
        (:func:`keras_dsr.datasets.load_ecg`). Model: clipped shPLRNN, M = 5,
        L = 250, affine observation, full forcing; 16 windows of 200 steps per
        batch, 5000 epochs x 50 batches (250 000 steps), learning rate 1e-3
        decaying to 1e-6. ``adaptive=False`` (the "shPLRNN + GTF" row): constant
        alpha = 0.3, no latent penalty; ``adaptive=True`` ("+ aGTF"): adaptive alpha
        (product_upper_bound, gamma 0.999, every 5 batches) and a latent L2 of 1e-5.
        ``changes`` override any field (e.g. ``steps`` for a shorter run).

        Differences from the lab's code: Adam with cosine decay here (the lab: RAdam,
        exponential decay between the same rates); the lab's L2 penalty on the
        observation matrix (1e-7 / 1e-6) has no field here and is not applied.
        """
        lab = dict(cell="clipped_shplrnn", latent_dim=5, hidden_dim=250,
                   observation="affine", forcing="full", seq_len=200, batch_size=16,
                   steps=250_000, steps_per_epoch=50, learning_rate=1e-3,
                   final_lr_fraction=1e-3)
        lab.update(cls._lab_forcing(adaptive, 0.3, "product_upper_bound", 0.0, 1e-5))
        lab.update(changes)
        return cls(**lab)

    @classmethod
    def lab_eeg(cls, adaptive=False, **changes):
        """The Durstewitz lab's 64-channel EEG setup (Hess et al., ICML 2023, Table 1).

        Data: :func:`keras_dsr.datasets.load_eeg` (a time split of the recording).
        Model: clipped shPLRNN, M = 16, L = 512, affine observation (64 channels
        from 16 latent units), full forcing; 16 windows of 50 steps per batch,
        5000 epochs x 50 batches, learning rate 1e-3 decaying to 1e-6, latent L2
        1e-4. ``adaptive=False`` ("shPLRNN + GTF"): constant alpha = 0.1;
        ``adaptive=True`` ("+ aGTF"): adaptive alpha with the arithmetic_mean
        estimator, gamma 0.999, every 5 batches. Differences from the lab's code as
        in :meth:`lab_ecg`.
        """
        lab = dict(cell="clipped_shplrnn", latent_dim=16, hidden_dim=512,
                   observation="affine", forcing="full", seq_len=50, batch_size=16,
                   steps=250_000, steps_per_epoch=50, learning_rate=1e-3,
                   final_lr_fraction=1e-3)
        lab.update(cls._lab_forcing(adaptive, 0.1, "arithmetic_mean", 1e-4, 1e-4))
        lab.update(changes)
        return cls(**lab)

    @property
    def weight_seed(self):
        """The seed of the weights and the window order (``init_seed`` or ``seed``)."""
        return self.seed if self.init_seed is None else self.init_seed



def make_cell(recipe, n_features):
    """The latent model of ``recipe`` for data with ``n_features`` observed variables."""
    from keras_dsr import cells

    m = recipe.latent_dim or n_features
    if m < n_features and recipe.observation != "affine":
        raise ValueError(f"Recipe: `latent_dim` ({m}) must be >= the number of observed "
                         f"features ({n_features}) with the identity observation (the "
                         f"affine observation x = B z allows fewer).")
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

    model = DSRModel(cell=make_cell(recipe, n_features), gtf=forcing_schedule(recipe),
                     method=recipe.method, forcing=recipe.forcing,
                     observation=recipe.observation,
                     regularizers=[LatentL2(recipe.latent_l2)] if recipe.latent_l2 else None,
                     solver_options=({} if recipe.chunk_size is None
                                     else {"chunk_size": recipe.chunk_size}))
    lr = keras.optimizers.schedules.CosineDecay(
        recipe.learning_rate, decay_steps=recipe.steps, alpha=recipe.final_lr_fraction)
    model.compile(optimizer=keras.optimizers.Adam(lr),
                  steps_per_execution=recipe.steps_per_execution)
    return model


def forcing_schedule(recipe):
    """The GTF forcing schedule of ``recipe`` (adaptive GTF or a constant alpha)."""
    from keras_dsr.schedules import AdaptiveForcing, ConstantForcing

    if recipe.alpha == "adaptive":
        return AdaptiveForcing(recipe.alpha_estimator, k=recipe.gtf_k, gamma=recipe.gtf_gamma)
    return ConstantForcing(float(recipe.alpha))


def training_windows(recipe, x, seed=None):
    """The :class:`~keras_dsr.data.TrajectoryWindows` of ``recipe`` over ``x`` ``[T, N]``
    (or a list of them): its ``seq_len``, ``batch_size``, ``steps_per_epoch`` and
    ``train_noise``; ``seed`` defaults to the recipe's ``weight_seed``.

    Examples:
        >>> x = np.zeros((500, 3))
        >>> training_windows(Recipe(seq_len=100, batch_size=4), x)[0][0].shape
        (4, 100, 3)
    """
    from keras_dsr.data import TrajectoryWindows

    return TrajectoryWindows(x, seq_len=recipe.seq_len, batch_size=recipe.batch_size,
                             steps_per_epoch=recipe.steps_per_epoch, noise=recipe.train_noise,
                             seed=recipe.weight_seed if seed is None else seed)


def _check_finetune(ft, steps_per_epoch):
    keys = {"steps", "every", "alpha", "learning_rate"}
    if not isinstance(ft, dict) or set(ft) != keys:
        raise ValueError(f"Recipe: `finetune` must be None or a dict with keys {sorted(keys)}, "
                         f"got {ft!r}.")
    if not 0.0 < ft["alpha"] < 1.0 or not 0 < ft["learning_rate"] < float("inf"):
        raise ValueError(f"Recipe: `finetune` alpha must be in (0, 1) and learning_rate a "
                         f"finite number > 0, got {ft!r}.")
    if (not isinstance(ft["every"], int) or not isinstance(ft["steps"], int) or ft["every"] < 1
            or ft["every"] % steps_per_epoch or ft["steps"] < ft["every"]
            or ft["steps"] % ft["every"]):
        raise ValueError(f"Recipe: `finetune` steps must be a multiple of every, and every a "
                         f"positive multiple of steps_per_epoch ({steps_per_epoch}), got {ft!r}.")
    return dict(ft)


# The training machinery lives in keras_dsr.training; its names stay importable from here.
from keras_dsr.training import (  # noqa: E402
    TrainResult, WindowEpoch, check_history, check_trained, train, validation_score_fn)

# The simulated-system side (data splits, floors, reconstruct) lives in
# keras_dsr.reconstruction; its names stay importable from here.
from keras_dsr.reconstruction import (  # noqa: E402
    Reconstruction, check_autonomous, floor_scores, reconstruct, simulate_like, simulate_split)


# Earlier names, kept for scripts written against them.
_simulate_like = simulate_like
_true_scores = floor_scores
