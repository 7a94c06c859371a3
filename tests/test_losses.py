"""ObservationMSE against numpy, burn-in handling and validation, serialisation."""

import numpy as np
import pytest

import keras_dsr  # noqa: F401
import keras
from keras import ops

from keras_dsr.losses import ObservationMSE


def data(shape=(4, 9, 3), seed=0):
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal(shape).astype("float32"),
        rng.standard_normal(shape).astype("float32"),
    )


@pytest.mark.parametrize("burn_in", [0, 1, 5, 8])
def test_value_matches_numpy(burn_in):
    y_true, y_pred = data()
    got = float(ops.convert_to_numpy(ObservationMSE(burn_in=burn_in)(y_true, y_pred)))
    b, t, n = y_true.shape
    diff = (y_pred.astype(np.float64) - y_true)[:, burn_in:]
    ref = np.sum(diff**2) / (b * (t - burn_in) * n)
    np.testing.assert_allclose(got, ref, rtol=1e-6)


def test_burn_in_steps_are_ignored():
    y_true, y_pred = data()
    y_bad = y_pred.copy()
    y_bad[:, :3] = 1e3  # huge errors only inside the burn-in
    loss = ObservationMSE(burn_in=3)
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(y_true, y_bad)),
        ops.convert_to_numpy(loss(y_true, y_pred)),
        rtol=1e-6,
    )
    assert float(ops.convert_to_numpy(ObservationMSE()(y_true, y_bad))) > 1e4


def test_sample_weight_weights_sequences():
    y_true, y_pred = data()
    w = np.array([1.0, 0.0, 2.0, 0.5], "float32")
    got = float(ops.convert_to_numpy(ObservationMSE(burn_in=2)(y_true, y_pred, sample_weight=w)))
    per_seq = np.mean((y_pred.astype(np.float64) - y_true)[:, 2:] ** 2, axis=(1, 2))
    np.testing.assert_allclose(got, np.sum(w * per_seq) / len(w), rtol=1e-6)


def test_float64_inputs():
    """Per-sequence losses are computed in float64. (The final Keras reduction may
    come back float32 on torch: keras 3.15 promotes float64 to float32 there.)"""
    import contextlib

    ctx = contextlib.nullcontext()
    if keras.backend.backend() == "jax":
        import jax

        ctx = jax.enable_x64(True)
    y_true, y_pred = data()
    y_true, y_pred = y_true.astype("float64"), y_pred.astype("float64")
    with ctx:
        per_seq = ops.convert_to_numpy(
            ObservationMSE(burn_in=1, reduction=None, dtype="float64")(y_true, y_pred)
        )
        total = ops.convert_to_numpy(ObservationMSE(burn_in=1, dtype="float64")(y_true, y_pred))
    assert per_seq.dtype == np.float64 and per_seq.shape == (4,)
    ref = np.mean((y_pred - y_true)[:, 1:] ** 2, axis=(1, 2))
    np.testing.assert_allclose(per_seq, ref, rtol=1e-13)
    np.testing.assert_allclose(total, ref.mean(), rtol=1e-6)


@pytest.mark.parametrize("burn_in", [-1, 1.5, "2", True])
def test_bad_burn_in_rejected(burn_in):
    with pytest.raises(ValueError, match="burn_in"):
        ObservationMSE(burn_in=burn_in)


def test_burn_in_not_smaller_than_sequence_length():
    y_true, y_pred = data(shape=(2, 5, 3))
    with pytest.raises(ValueError, match="burn_in"):
        ObservationMSE(burn_in=5)(y_true, y_pred)


def test_bad_shapes_rejected():
    y_true, y_pred = data()
    with pytest.raises(ValueError, match="y_pred"):
        ObservationMSE()(y_true[:, :, 0], y_pred[:, :, 0])
    with pytest.raises(ValueError, match="same shape"):
        ObservationMSE()(y_true[:, :5], y_pred)


def test_config_round_trip_and_serialisation():
    loss = ObservationMSE(burn_in=4, name="obs")
    clone = ObservationMSE.from_config(loss.get_config())
    assert clone.burn_in == 4 and clone.name == "obs"
    clone2 = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(clone2, ObservationMSE) and clone2.burn_in == 4
    y_true, y_pred = data()
    np.testing.assert_allclose(
        ops.convert_to_numpy(clone2(y_true, y_pred)), ops.convert_to_numpy(loss(y_true, y_pred))
    )


def test_usable_in_compile_and_fit():
    """A model trained with the loss reports the same value as numpy."""
    y_true, x = data(shape=(8, 6, 2))
    model = keras.Sequential([keras.Input((6, 2)), keras.layers.Dense(2, use_bias=False)])
    model.compile(optimizer="sgd", loss=ObservationMSE(burn_in=2))
    pred = ops.convert_to_numpy(model(x))
    reported = model.evaluate(x, y_true, batch_size=8, verbose=0)
    ref = np.mean((pred.astype(np.float64) - y_true)[:, 2:] ** 2)
    np.testing.assert_allclose(reported, ref, rtol=1e-5)
