"""Model selection on validation data: how the zoo's builds rank candidate models.

A build trains several initialisations (and scores checkpoints of each) and keeps
the candidate with the lowest :func:`validation_score` on a *validation* trajectory
(data seed + 3; its floor from seed + 4), never on the test set of
:mod:`keras_dsr.zoo.criteria` (seed + 1). The score scales each acceptance
criterion so that 1 is its bar, so a score <= 1 means every criterion is met on the
validation data.

Example:
    >>> round(validation_score({"dstsp": 0.15, "dh": 0.05, "lyap": 1.17},
    ...                        {"dstsp": 0.1, "dh": 0.05}, 0.9), 3)  # lambda: 30 % off
    2.0
    >>> validation_length("lorenz63"), validation_length("hindmarsh_rose", 0.0125)
    (100000, 400000)
"""

from keras_dsr.zoo.criteria import TEST_LENGTH, held_out_length

__all__ = ["VALIDATION_LENGTH", "validation_length", "validation_score"]

VALIDATION_LENGTH = 100_000  # steps of the validation trajectories at the system's default dt


def validation_length(system, dt=None):
    """Steps of the validation trajectories of ``system`` sampled at ``dt``.

    ``VALIDATION_LENGTH`` at the system's default sampling interval (or a coarser one);
    at a finer ``dt`` proportionally more, so that they span the same time as the
    criteria's test trajectories (:func:`keras_dsr.zoo.criteria.held_out_length`).
    """
    return held_out_length(system, dt) * VALIDATION_LENGTH // TEST_LENGTH


def validation_score(scores, floor, lyap_true):
    """How far a candidate is from the criteria on the validation set (<= 1: met).

    The largest of ``D_stsp / (floor + 0.2)``, ``D_H / (2 floor)`` (validation floor)
    and ``|lambda_max - true| / (0.15 |true|)``: each criterion of
    :mod:`keras_dsr.zoo.criteria` scaled so that 1 is its bar.

    Args:
        scores: the candidate's measures on the validation trajectory: a dict with
            ``"dstsp"``, ``"dh"`` and ``"lyap"`` (lambda_max per time unit).
        floor: ``{"dstsp", "dh"}`` of an independent true trajectory against the
            validation trajectory (:func:`keras_dsr.reconstruction.floor_scores`).
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
