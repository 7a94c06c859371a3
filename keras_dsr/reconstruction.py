"""Simulated benchmark systems from data to score: splits, floors and :func:`reconstruct`.

:func:`simulate_split` makes independent training / test (/ validation / floor)
trajectories of a benchmark system in one ensemble solve, :func:`floor_scores` the
measures of an independent true trajectory (the floor no model can beat), and
:func:`reconstruct` the whole job: simulate, train with
:func:`keras_dsr.recipes.train`, and score the free run.
"""

import dataclasses
from typing import Optional

import numpy as np

__all__ = ["Reconstruction", "check_autonomous", "floor_scores", "reconstruct",
           "simulate_like", "simulate_split"]


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
    recipe: object


def reconstruct(system, recipe=None, measures=("dstsp", "dh"), test_length=100_000,
                with_floor=False, callbacks=(), verbose="auto"):
    """Simulate ``system``, train a GTF-DEER model on it, and score its free run.

    Training data: ``recipe.train_length`` standardised steps from initial-condition
    seed ``recipe.seed``; test data: ``test_length`` steps from seed
    ``recipe.seed + 1`` (independent), standardised with the *training* statistics;
    both (and the floor's third trajectory) come from one ensemble solve
    (:func:`simulate_split`).
    Scores follow docs/method.md, "Evaluation measures" (generate 1.25 T_test from the first test point, drop
    the transient). ``with_floor`` also scores a third true trajectory (seed + 2).
    Driven systems (``System.inputs``, e.g. Duffing) raise ``ValueError``:
    :class:`~keras_dsr.models.DSRModel` learns autonomous dynamics and would ignore
    the drive.

    Returns:
        a :class:`Reconstruction`.
    """
    from keras_dsr.measures import evaluate, generate_for_evaluation
    from keras_dsr.systems import get_system

    from keras_dsr.recipes import Recipe, train

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
        floor = floor_scores(test_traj.x, rest[0].x, measures)
    return Reconstruction(model=model, history=history, scores=scores, floor=floor,
                          seconds=seconds, train=train_traj, test=test_traj,
                          generated=x_gen, recipe=recipe)


def check_autonomous(system, where=None):
    """Raise ``ValueError`` if ``system`` (a :class:`~keras_dsr.systems.System`) is driven.

    A driven system's observations depend on an external input (``System.inputs``,
    e.g. Duffing's ``cos(phi)``) that :class:`~keras_dsr.models.DSRModel` does not
    take, so a model trained on them would silently learn the wrong, autonomous
    dynamics. ``where`` (e.g. ``"reconstruct"``) prefixes the message.

    Examples:
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

    Examples:
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


def simulate_like(name, steps, seed, reference):
    """Simulate ``name`` at ``reference``'s dt and standardise with its statistics."""
    from keras_dsr.systems import simulate

    traj = simulate(name, steps, dt=reference.dt, seed=seed, standardize=False)
    x = reference.standardize(traj.clean).astype("float32")
    return dataclasses.replace(traj, x=x, clean=x, mean=reference.mean, std=reference.std)


def floor_scores(x_test, x_other, measures=("dstsp", "dh")):
    """Floor: measures of an independent true trajectory against the test set."""
    from keras_dsr.measures import power_spectrum_distance, state_space_divergence

    out = {}
    if "dstsp" in measures:
        out["dstsp"] = state_space_divergence(x_test, x_other)
    if "dh" in measures:
        out["dh"] = power_spectrum_distance(x_test, x_other)
    return out
