"""LatentL2 and ManifoldAttractorRegularization: values against the numpy
formulas for every cell, differentiability (a gradient step lowers them),
validation and serialisation."""

import numpy as np
import pytest

import keras_dsr  # noqa: F401
import keras
from keras import ops

from keras_dsr.cells import ALRNN, PLRNN, ClippedShallowPLRNN, ShallowPLRNN
from keras_dsr.regularizers import LatentL2, ManifoldAttractorRegularization

BACKEND = keras.backend.backend()
M, L = 6, 5


def make(kind):
    cell = {
        "plrnn": lambda: PLRNN(M, input_dim=2),
        "shallow": lambda: ShallowPLRNN(M, L, input_dim=2),
        "clipped": lambda: ClippedShallowPLRNN(M, L, input_dim=2),
        "alrnn": lambda: ALRNN(M, 3, input_dim=2),
    }[kind]()
    cell.build((M,))
    rng = np.random.default_rng(0)
    cell.set_weights([rng.standard_normal(w.shape).astype(w.dtype) for w in cell.get_weights()])
    return cell


def params(cell):
    return {v.name: np.asarray(ops.convert_to_numpy(v), np.float64) for v in cell.weights}


KINDS = ["plrnn", "shallow", "clipped", "alrnn"]


def np_latent_l2(kind, p, strength):
    if kind == "plrnn":
        return strength * np.sum((p["W"] * (1 - np.eye(M))) ** 2)
    if kind in ("shallow", "clipped"):
        return strength * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))
    return strength * np.sum(p["W"] ** 2)


def np_mar(kind, p, strength, k):
    s = slice(M - k, M)
    if kind == "plrnn":
        w, h = p["W"] * (1 - np.eye(M)), p["h"]
    elif kind in ("shallow", "clipped"):
        w, h = p["W1"], p["h1"]
    else:
        w, h = p["W"], p["h"]
    return strength * (np.sum((1 - p["a"][s]) ** 2) + np.sum(w[s] ** 2) + np.sum(h[s] ** 2))


def value_and_grads(fn, variables):
    """fn() -> scalar built from `variables`; returns (value, [gradients]) on any backend."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            val = fn()
        return val, tape.gradient(val, variables)
    if BACKEND == "torch":
        for v in variables:
            v.value.grad = None
        val = fn()
        val.backward()
        return val.detach(), [v.value.grad for v in variables]
    import jax

    def pure(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn()

    return jax.value_and_grad(pure)([v.value for v in variables])


def sgd_step(variables, grads, lr):
    for v, g in zip(variables, grads):
        v.assign(v - lr * ops.convert_to_tensor(g))


@pytest.mark.parametrize("kind", KINDS)
def test_latent_l2_value(kind):
    cell = make(kind)
    got = float(ops.convert_to_numpy(LatentL2(0.3)(cell)))
    np.testing.assert_allclose(got, np_latent_l2(kind, params(cell), 0.3), rtol=1e-5)


def test_latent_l2_excludes_a_biases_input_and_plrnn_w_diagonal():
    cell = make("plrnn")
    before = float(ops.convert_to_numpy(LatentL2(1.0)(cell)))
    p = params(cell)
    w = p["W"].copy()
    w[np.diag_indices(M)] = 100.0  # the masked diagonal is not a weight of the map
    cell.set_weights([(p["a"] + 5).astype("float32"), w.astype("float32"),
                      (p["h"] + 5).astype("float32"), (p["C"] + 5).astype("float32")])
    after = float(ops.convert_to_numpy(LatentL2(1.0)(cell)))
    np.testing.assert_allclose(after, before, rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sel, k", [({"num_units": 2}, 2), ({"fraction": 0.5}, 3),
                                    ({}, 3), ({"num_units": 0}, 0), ({"fraction": 1.0}, M)])
def test_mar_value(kind, sel, k):
    cell = make(kind)
    reg = ManifoldAttractorRegularization(0.7, **sel)
    assert reg.regularized_units(M) == k
    got = float(ops.convert_to_numpy(reg(cell)))
    np.testing.assert_allclose(got, np_mar(kind, params(cell), 0.7, k), rtol=1e-5, atol=1e-7)


def test_mar_zero_at_manifold_attractor():
    """a_i = 1, W rows and h_i = 0 on the regularised units: penalty zero, and those
    units are then exactly conserved by the map."""
    cell = make("plrnn")
    p = params(cell)
    k = 2
    p["a"][M - k:] = 1.0
    p["W"][M - k:] = 0.0
    p["h"][M - k:] = 0.0
    cell.set_weights([p[n].astype("float32") for n in ("a", "W", "h", "C")])
    reg = ManifoldAttractorRegularization(1.0, num_units=k)
    assert float(ops.convert_to_numpy(reg(cell))) == 0.0
    z = np.random.default_rng(1).standard_normal((3, M)).astype("float32")
    np.testing.assert_allclose(ops.convert_to_numpy(cell(z))[:, M - k:], z[:, M - k:], rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("make_reg", [lambda: LatentL2(0.1),
                                      lambda: ManifoldAttractorRegularization(0.1, fraction=0.5)])
def test_gradient_step_reduces_penalty(kind, make_reg):
    cell = make(kind)
    reg = make_reg()
    variables = list(cell.trainable_variables)
    val0, grads = value_and_grads(lambda: reg(cell), variables)
    val0 = float(ops.convert_to_numpy(val0))
    assert any(g is not None and np.abs(ops.convert_to_numpy(g)).max() > 0 for g in grads)
    grads = [ops.zeros_like(v) if g is None else g for v, g in zip(variables, grads)]
    sgd_step(variables, grads, lr=0.5)
    val1 = float(ops.convert_to_numpy(reg(cell)))
    assert val1 < 0.95 * val0
    if kind == "plrnn":  # the gradient never touches the masked diagonal of W
        g_w = ops.convert_to_numpy(grads[[v.name for v in variables].index("W")])
        np.testing.assert_array_equal(np.diag(g_w), 0.0)


def test_gradient_matches_analytic_formula():
    """d/da of the MAR term is -2 lambda (1 - a_i) on the regularised units, 0 elsewhere."""
    cell = make("alrnn")
    reg = ManifoldAttractorRegularization(0.4, num_units=2)
    a_var = [v for v in cell.trainable_variables if v.name == "a"][0]
    _, (g,) = value_and_grads(lambda: reg(cell), [a_var])
    a = params(cell)["a"]
    ref = np.zeros(M)
    ref[M - 2:] = -2 * 0.4 * (1 - a[M - 2:])
    np.testing.assert_allclose(ops.convert_to_numpy(g), ref, rtol=1e-5, atol=1e-7)


def test_validation():
    with pytest.raises(ValueError, match="strength"):
        LatentL2(-1.0)
    with pytest.raises(TypeError, match="strength"):
        LatentL2("big")
    with pytest.raises(ValueError, match="strength"):
        ManifoldAttractorRegularization(float("nan"))
    with pytest.raises(ValueError, match="num_units.*fraction|either"):
        ManifoldAttractorRegularization(1.0, num_units=2, fraction=0.5)
    with pytest.raises(ValueError, match="num_units"):
        ManifoldAttractorRegularization(1.0, num_units=-1)
    with pytest.raises(ValueError, match="fraction"):
        ManifoldAttractorRegularization(1.0, fraction=1.5)
    with pytest.raises(ValueError, match="num_units.*latent_dim"):
        ManifoldAttractorRegularization(1.0, num_units=M + 1)(make("plrnn"))
    with pytest.raises(TypeError, match="cell"):
        LatentL2(1.0)(keras.layers.Dense(3))
    with pytest.raises(ValueError, match="not built"):
        ManifoldAttractorRegularization(1.0)(PLRNN(3))


@pytest.mark.parametrize("reg", [LatentL2(0.25), ManifoldAttractorRegularization(0.5, num_units=4),
                                 ManifoldAttractorRegularization(0.5, fraction=0.34)])
def test_serialisation_round_trip(reg):
    clone = type(reg).from_config(reg.get_config())
    assert clone.get_config() == reg.get_config()
    clone2 = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(reg))
    assert type(clone2) is type(reg) and clone2.get_config() == reg.get_config()
    cell = make("clipped")
    np.testing.assert_allclose(
        ops.convert_to_numpy(clone2(cell)), ops.convert_to_numpy(reg(cell)), rtol=1e-7
    )
