"""keras_dsr.zoo.selection: the validation score that ranks a build's candidates."""

import math

import pytest

from keras_dsr.zoo.criteria import held_out_length
from keras_dsr.zoo.selection import VALIDATION_LENGTH, validation_length, validation_score

pytestmark = pytest.mark.backend_independent

FLOOR = {"dstsp": 0.1, "dh": 0.05}


@pytest.mark.parametrize("scores, expected", [
    # each criterion at its bar gives 1: D_stsp = floor + 0.2, D_H = 2 floor, 15 % off
    ({"dstsp": 0.3, "dh": 0.01, "lyap": 0.9}, 1.0),
    ({"dstsp": 0.0, "dh": 0.1, "lyap": 0.9}, 1.0),
    ({"dstsp": 0.0, "dh": 0.0, "lyap": 0.9 * 1.15}, 1.0),
    ({"dstsp": 0.0, "dh": 0.0, "lyap": 0.9 * 0.85}, 1.0),
    # the largest ratio decides
    ({"dstsp": 0.15, "dh": 0.05, "lyap": 1.17}, 0.27 / 0.135),
    ({"dstsp": 0.6, "dh": 0.05, "lyap": 0.9}, 2.0),
])
def test_score_is_the_largest_criterion_ratio(scores, expected):
    assert validation_score(scores, FLOOR, 0.9) == pytest.approx(expected, rel=1e-12)


def test_a_negative_exponent_is_judged_relative_to_its_magnitude():
    # a stable limit cycle of a periodic system, lambda_max -0.5: 10 % off is 0.667 of the bar
    assert validation_score({"dstsp": 0.0, "dh": 0.0, "lyap": -0.55}, FLOOR, -0.5) == \
        pytest.approx(0.05 / 0.075, rel=1e-12)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_diverged_candidate_ranks_last(bad):
    for key in ("dstsp", "dh", "lyap"):
        scores = {"dstsp": 0.1, "dh": 0.05, "lyap": 0.9, key: bad}
        assert validation_score(scores, FLOOR, 0.9) == math.inf


@pytest.mark.parametrize("scores, floor, lyap_true, message", [
    ({"dstsp": 0.1, "dh": 0.1}, FLOOR, 0.9, "`scores` has no 'lyap'"),
    ({"dstsp": 0.1, "dh": 0.1, "lyap": 1.0}, {"dstsp": 0.1}, 0.9, "`floor` has no 'dh'"),
    ({"dstsp": 0.1, "dh": 0.1, "lyap": 1.0}, {"dstsp": 0.1, "dh": 0.0}, 0.9,
     r"floor\['dh'\] must be a finite number > 0"),
    ({"dstsp": 0.1, "dh": 0.1, "lyap": 1.0}, FLOOR, 0.0, "`lyap_true` must be nonzero"),
    ({"dstsp": 0.1, "dh": 0.1, "lyap": 1.0}, FLOOR, float("nan"),
     "lyap_true must be a finite number"),
])
def test_bad_input(scores, floor, lyap_true, message):
    with pytest.raises(ValueError, match=message):
        validation_score(scores, floor, lyap_true)


def test_validation_trajectories_span_the_test_trajectories_time():
    assert validation_length("lorenz63") == VALIDATION_LENGTH
    for system, dt in (("lorenz63", 0.0025), ("hindmarsh_rose", 0.0125), ("rossler", None)):
        n = validation_length(system, dt)
        assert n == held_out_length(system, dt) * VALIDATION_LENGTH // 100_000
    assert validation_length("hindmarsh_rose", 0.0125) == 4 * VALIDATION_LENGTH


def test_validation_pairs_are_true_trajectories_apart_from_the_test_pairs(monkeypatch):
    """Validation pair k starts from seeds s + 3 + 10 k and s + 4 + 10 k (an ensemble
    solve of those seeds agrees), standardised with the given statistics; no
    validation seed is ever a test seed of the criteria."""
    import numpy as np

    from keras_dsr.systems import simulate_ensemble
    from keras_dsr.zoo import criteria, selection

    for seed in range(12):
        test = {s for k in range(criteria.N_PAIRS) for s in criteria.pair_seeds(seed, k)}
        val = {s for k in range(criteria.N_PAIRS) for s in criteria.pair_seeds(seed, k, 2)}
        assert not test & val and len(val) == 2 * criteria.N_PAIRS
    monkeypatch.setattr(selection, "VALIDATION_LENGTH", 2_000)
    monkeypatch.setattr(selection, "TEST_LENGTH", 2_000)
    monkeypatch.setattr(criteria, "TEST_LENGTH", 2_000)
    mean, std = np.array([0.5, -1.0, 20.0]), np.array([8.0, 9.0, 8.5])
    pairs = selection.validation_pairs("lorenz63", 7, mean, std, n=2)
    assert len(pairs) == 2
    runs = simulate_ensemble("lorenz63", 2_000, seeds=(10, 11, 20, 21), standardize=False)
    for x, run in zip([x for pair in pairs for x in pair], runs):
        assert x.shape == (2_000, 3) and x.dtype == np.float32
        np.testing.assert_allclose(x, (run.clean - mean) / std, rtol=1e-5, atol=1e-5)
    assert np.abs(pairs[0][0] - pairs[0][1]).max() > 1.0  # independent trajectories
