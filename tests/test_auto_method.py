"""method="auto": the rule, and layers using it give the same values as the chosen method."""

import numpy as np
import pytest

import keras_dsr  # noqa: F401
import keras
from keras_dsr.cells import ClippedShallowPLRNN
from keras_dsr.layers import GTFDEERLayer
from keras_dsr.layers.deer import DEERLayer
from keras_dsr.ops.auto import choose_method, current_platform


@pytest.mark.parametrize("m,platform,expected", [
    (3, "cpu", "deer"), (4, "cpu", "deer"), (8, "cpu", "sequential"), (64, "cpu", "sequential"),
    (3, "gpu", "deer"), (32, "gpu", "deer"), (33, "gpu", "quasi"), (64, "tpu", "quasi"),
])
def test_rule(m, platform, expected):
    assert choose_method(m, platform=platform) == expected


def test_bad_arguments():
    with pytest.raises(ValueError, match="latent_dim must be an integer >= 1, got 0"):
        choose_method(0)
    with pytest.raises(ValueError, match="`platform` must be one of"):
        choose_method(3, platform="fpga")
    with pytest.raises(ValueError, match="'auto'"):
        GTFDEERLayer(ClippedShallowPLRNN(3, 8, seed=0), method="fast")


def test_platform_of_this_machine():
    assert current_platform() in ("cpu", "gpu", "tpu")


@pytest.mark.parametrize("m", [3, 12])
def test_gtf_layer_auto_equals_chosen_method(m):
    x = np.random.default_rng(0).normal(size=(2, 40, 3)).astype("float32")
    outs = {}
    for method in ("auto", choose_method(m)):
        cell = ClippedShallowPLRNN(m, 8, seed=1)
        layer = GTFDEERLayer(cell, alpha=0.5, method=method)
        outs[method] = keras.ops.convert_to_numpy(layer(x))
        assert layer.get_config()["method"] == method
    a, b = outs.values()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_deer_layer_auto_matches_rnn():
    cell = keras.layers.GRUCell(4, seed=0)
    x = np.random.default_rng(1).normal(size=(2, 30, 3)).astype("float32")
    ours = keras.ops.convert_to_numpy(DEERLayer(cell, method="auto")(x))
    ref = keras.ops.convert_to_numpy(keras.layers.RNN(cell, return_sequences=True)(x))
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
