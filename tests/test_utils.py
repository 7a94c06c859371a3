"""keras_dsr.utils.set_random_seed: Keras's random streams, the seed checked."""

import random

import keras
import numpy as np
import pytest

from keras_dsr.utils import set_random_seed


def _draws():
    """One draw from each stream a seed controls (Keras's global generator included)."""
    dense = keras.layers.Dense(3)  # unseeded initialiser: Keras's global SeedGenerator
    dense.build((None, 2))
    return [np.asarray(keras.ops.convert_to_numpy(keras.random.normal((4,)))),
            np.asarray(keras.ops.convert_to_numpy(dense.kernel)),
            np.array([random.random()]), np.random.rand(2)]


def test_same_streams_as_keras_set_random_seed():
    keras.utils.set_random_seed(7)
    want = _draws()
    keras.utils.set_random_seed(123)  # move every stream elsewhere
    _draws()
    set_random_seed(7)
    got = _draws()
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
    set_random_seed(8)
    assert not np.array_equal(_draws()[0], want[0])


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True, None])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        set_random_seed(seed)
