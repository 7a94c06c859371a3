"""Model selection on validation data: how the zoo's builds rank candidate models.

A build trains several initialisations (and scores checkpoints of each) and keeps
the candidate with the lowest :func:`validation_score` on :data:`N_PAIRS`
*validation* pairs (:func:`validation_pairs`: seeds s + 3 + 10 k, floors from
s + 4 + 10 k), never on the test pairs of :mod:`keras_dsr.zoo.criteria`
(s + 1 + 10 k, s + 2 + 10 k), and judged like them: medians over the pairs. The
score scales each acceptance criterion so that 1 is its bar, so a score <= 1 means
every criterion is met on the validation data.

Example:
    >>> round(validation_score({"dstsp": 0.15, "dh": 0.05, "lyap": 1.17},
    ...                        {"dstsp": 0.1, "dh": 0.05}, 0.9), 3)  # lambda: 30 % off
    2.0
    >>> validation_length("lorenz63"), validation_length("hindmarsh_rose", 0.0125)
    (100000, 400000)
"""

from keras_dsr.zoo.criteria import N_PAIRS, TEST_LENGTH, held_out_length, held_out_pairs

__all__ = ["VALIDATION_LENGTH", "validation_length", "validation_pairs", "validation_score"]

VALIDATION_LENGTH = 100_000  # steps of the validation trajectories at the system's default dt


def validation_length(system, dt=None):
    """Steps of the validation trajectories of ``system`` sampled at ``dt``.

    ``VALIDATION_LENGTH`` at the system's default sampling interval (or a coarser one);
    at a finer ``dt`` proportionally more, so that they span the same time as the
    criteria's test trajectories (:func:`keras_dsr.zoo.criteria.held_out_length`).
    """
    return held_out_length(system, dt) * VALIDATION_LENGTH // TEST_LENGTH


def validation_pairs(system, seed, mean, std, dt=None, n=N_PAIRS):
    """The ``n`` (validation, floor) pairs of data seed ``seed``: true trajectories of
    :func:`validation_length` steps from seeds ``seed + 3 + 10 k`` and
    ``seed + 4 + 10 k`` (:func:`keras_dsr.zoo.criteria.pair_seeds` with offset 2),
    z-scored with the training statistics ``mean``, ``std``."""
    return held_out_pairs(system, seed, mean, std, dt=dt, n=n, offset=2,
                          length=validation_length(system, dt))


def validation_score(scores, floor, lyap_true):
    """How far a candidate is from the criteria on the validation set (<= 1: met).

    The largest of ``D_stsp / (floor + 0.2)``, ``D_H / (2 floor)`` (validation floor)
    and ``|lambda_max - true| / (0.15 |true|)``: each criterion of
    :mod:`keras_dsr.zoo.criteria` scaled so that 1 is its bar.

    Args:
        scores: the candidate's measures on the validation pairs: a dict with
            ``"dstsp"``, ``"dh"`` (medians over the pairs) and ``"lyap"`` (lambda_max
            per time unit): :func:`keras_dsr.zoo.criteria.pair_scores`.
        floor: ``{"dstsp", "dh"}``: the medians of the pairs' floors
            (:func:`keras_dsr.zoo.criteria.pair_floors`).
        lyap_true: the system's lambda_max (nonzero).

    Raises:
        ValueError: a missing key, a non-finite value, a floor <= 0 or lyap_true 0.
    """
    from keras_dsr._checks import check_number

    for key in ("dstsp", "dh", "lyap"):
        if key not in scores:
            raise ValueError(f"validation_score: `scores` has no {key!r} (got keys "
                             f"{sorted(scores)}).")
    for key in ("dstsp", "dh"):
        if key not in floor:
            raise ValueError(f"validation_score: `floor` has no {key!r} (got keys "
                             f"{sorted(floor)}).")
        check_number(floor[key], f"floor[{key!r}]", 0, True, "validation_score")
    lyap_true = check_number(lyap_true, "lyap_true", where="validation_score")
    if lyap_true == 0:
        raise ValueError("validation_score: `lyap_true` must be nonzero (the criterion is "
                         "relative to it).")
    values = [float(scores[k]) for k in ("dstsp", "dh", "lyap")]
    if not all(v == v and abs(v) != float("inf") for v in values):
        return float("inf")  # a diverged candidate ranks last
    dstsp, dh, lyap = values
    rel = abs(lyap - lyap_true) / (0.15 * abs(lyap_true))
    return max(dstsp / (floor["dstsp"] + 0.2), dh / (2 * floor["dh"]), rel)
