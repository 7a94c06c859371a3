"""ParallelScanRNN against an independent numpy reference (run per backend).

The reference is a plain sequential loop in complex128 numpy, written from the
formulas (LRU parametrisation, tied gamma, softplus-ed selective decay, MLP readout),
fed with the layer's own weights.
"""

import math

import numpy as np
import pytest

import keras_dsr  # noqa: F401  (selects the default backend before keras)
import keras
from keras import ops
from scipy.special import erf

from keras_dsr.layers import ParallelScanRNN

BACKEND = keras.backend.backend()

_ACTS = {
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0.0),
    "gelu": lambda z: 0.5 * z * (1.0 + erf(z / math.sqrt(2.0))),
    "linear": lambda z: z,
}


pytestmark = pytest.mark.usefixtures("full_float32_matmuls")


def _np(v):
    return np.asarray(ops.convert_to_numpy(v), dtype=np.float64)


def _weights(layer):
    w = {"nu": _np(layer.nu_log), "B_re": _np(layer.B_re)}
    if layer.complex_modes:
        w["theta"] = _np(layer.theta_log)
        w["B_im"] = _np(layer.B_im)
    if layer.selective:
        w["Wd"] = _np(layer.delta_kernel)
        w["bd"] = _np(layer.delta_bias)
    w["mlp"] = [(_np(d.kernel), _np(d.bias)) for d in layer.hidden_layers]
    w["out"] = (_np(layer.output_layer.kernel), _np(layer.output_layer.bias))
    return w


def reference(layer, u, h0=None, w=None, act="gelu"):
    """Sequential float64 evaluation of the layer's formulas; returns (y, states)."""
    w = _weights(layer) if w is None else w
    u = np.asarray(u, np.float64)
    bsz, steps, _ = u.shape
    m = layer.units
    if h0 is None:
        h = np.zeros((bsz, m), complex)
    else:
        h0 = np.asarray(h0, np.float64)
        h = h0[:, :m] + 1j * h0[:, m:] if layer.complex_modes else h0.astype(complex)
    B = w["B_re"] + 1j * w["B_im"] if layer.complex_modes else w["B_re"].astype(complex)
    ys, states = [], []
    for t in range(steps):
        ut = u[:, t]
        delta = np.logaddexp(0.0, ut @ w["Wd"] + w["bd"]) if layer.selective else 1.0
        log_lam = -delta * np.exp(w["nu"])
        if layer.complex_modes:
            log_lam = log_lam + 1j * delta * np.exp(w["theta"])
        lam = np.exp(log_lam)
        gamma = np.sqrt(1.0 - np.abs(lam) ** 2)
        h = lam * h + gamma * (ut @ B)
        state = np.concatenate([h.real, h.imag], -1) if layer.complex_modes else h.real
        z = np.concatenate([state, ut], -1) if layer.skip_input else state
        for k, b in w["mlp"]:
            z = _ACTS[act](z @ k + b)
        ys.append(z @ w["out"][0] + w["out"][1])
        states.append(state)
    return np.stack(ys, 1), np.stack(states, 1)


def run(layer, fn, *args, jit=False):
    """``fn(*args)`` as numpy (tuples allowed); with ``jit`` on JAX, jitted with the
    layer's variables as arguments (one compilation instead of op-by-op compiles;
    worth it for long sequences). Tests otherwise share shapes so that eager JAX
    reuses its compiled ops."""
    if BACKEND != "jax" or not jit:
        out = fn(*args)
    else:
        import jax

        def f(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(layer.variables, values))):
                return fn(*args)

        out = jax.jit(f)([v.value for v in layer.variables], *args)
    if isinstance(out, (tuple, list)):
        return tuple(_np(o) for o in out)
    return _np(out)


def forward(layer, u, h0=None, jit=False):
    return run(layer, lambda u, h0: layer(u, initial_state=h0), u, h0, jit=jit)


def step_loop(layer, u):
    """Outputs [B, T, units_out] and final state of a Python loop over ``layer.step``."""

    def loop(u):
        h = layer.get_initial_state(u.shape[0])
        outs = []
        for t in range(u.shape[1]):
            yt, h = layer.step(h, u[:, t])
            outs.append(yt)
        return ops.stack(outs, axis=1), h

    return run(layer, loop, u)


def _make(selective, complex_modes, skip_input=True, act="gelu", readout=(8,), seed=3, **kw):
    layer = ParallelScanRNN(
        5,
        units_out=2,
        readout_units=readout,
        activation=act,
        selective=selective,
        complex_modes=complex_modes,
        skip_input=skip_input,
        seed=seed,
        **kw,
    )
    layer.build((None, None, 4))
    if selective:  # make the input-dependence of the decay strong, so it is tested
        rng = np.random.RandomState(seed)
        layer.delta_kernel.assign(rng.normal(size=(4, 5)).astype("float32"))
    return layer


CASES = [
    (False, True, True, "gelu", (8,)),
    (False, False, True, "tanh", (8,)),
    (True, True, True, "relu", (8, 6)),
    (True, False, False, "gelu", (8,)),
    (True, True, False, "linear", ()),
]


@pytest.mark.parametrize("selective,complex_modes,skip,act,readout", CASES)
def test_call_matches_numpy_sequential_reference(selective, complex_modes, skip, act, readout):
    layer = _make(selective, complex_modes, skip, act, readout)
    u = np.random.RandomState(0).normal(size=(2, 15, 4)).astype("float32")
    y = forward(layer, u)
    y_ref, h_ref = reference(layer, u, act=act)
    assert y.shape == (2, 15, 2)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(run(layer, layer.compute_states, u), h_ref, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("selective,complex_modes", [(False, True), (True, True), (True, False)])
def test_initial_state_matches_reference(selective, complex_modes):
    layer = _make(selective, complex_modes)
    rng = np.random.RandomState(1)
    u = rng.normal(size=(2, 15, 4)).astype("float32")
    h0 = rng.normal(size=(2, layer.state_size)).astype("float32")
    y = forward(layer, u, h0)
    y_ref, _ = reference(layer, u, h0=h0)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=2e-5)
    # and h0 matters (the test could fail if it were ignored)
    assert np.abs(y - forward(layer, u)).max() > 1e-3


@pytest.mark.parametrize("selective,complex_modes", [(False, True), (True, True), (False, False), (True, False)])
def test_step_loop_reproduces_call(selective, complex_modes):
    layer = _make(selective, complex_modes)
    u = np.random.RandomState(2).normal(size=(2, 15, 4)).astype("float32")
    y = forward(layer, u)
    y_loop, h = step_loop(layer, u)
    np.testing.assert_allclose(y_loop, y, rtol=1e-5, atol=1e-5)
    states = run(layer, layer.compute_states, u)
    np.testing.assert_allclose(h, states[:, -1], rtol=1e-5, atol=1e-5)


def test_long_sequence_stable_and_exact():
    layer = _make(True, True, r_min=0.9, r_max=0.999)
    u = np.random.RandomState(3).normal(size=(1, 1000, 4)).astype("float32")
    y = forward(layer, u, jit=True)
    assert np.isfinite(y).all()
    y_ref, _ = reference(layer, u)
    np.testing.assert_allclose(y, y_ref, rtol=1e-3, atol=2e-4)


def test_ring_initialisation_and_seed():
    layer = ParallelScanRNN(200, 1, r_min=0.4, r_max=0.95, max_phase=math.pi / 4, seed=7)
    layer.build((None, None, 3))
    lam = layer.eigenvalues()
    mod = np.abs(lam)
    assert mod.min() >= 0.4 - 1e-5 and mod.max() <= 0.95 + 1e-5
    # uniform on the ring's area: |lambda|^2 uniform on [r_min^2, r_max^2]
    r2 = (mod**2 - 0.4**2) / (0.95**2 - 0.4**2)
    assert abs(r2.mean() - 0.5) < 0.06 and r2.min() < 0.1 and r2.max() > 0.9
    phase = np.angle(lam) % (2 * np.pi)
    assert phase.min() > 0 and phase.max() <= math.pi / 4 + 1e-5 and phase.max() > math.pi / 5
    # B scaled 1/sqrt(2 D) per part
    assert abs(np.std(_np(layer.B_re)) - 1 / math.sqrt(6)) < 0.05
    same = ParallelScanRNN(200, 1, r_min=0.4, r_max=0.95, max_phase=math.pi / 4, seed=7)
    same.build((None, None, 3))
    np.testing.assert_array_equal(_np(same.nu_log), _np(layer.nu_log))
    np.testing.assert_array_equal(_np(same.output_layer.kernel), _np(layer.output_layer.kernel))
    other = ParallelScanRNN(200, 1, seed=8)
    other.build((None, None, 3))
    assert np.abs(_np(other.nu_log) - _np(layer.nu_log)).max() > 1e-3


def test_real_modes_are_real_decays():
    layer = ParallelScanRNN(50, 1, complex_modes=False, r_min=0.2, r_max=0.7, seed=0)
    layer.build((None, None, 2))
    lam = layer.eigenvalues()
    assert np.all(lam.imag == 0) and lam.real.min() >= 0.2 - 1e-6 and lam.real.max() <= 0.7 + 1e-6
    assert layer.state_size == 50


# ------------------------------------------------------------------ gradients
def _gradients(layer, loss_fn):
    """d loss_fn() / d layer.trainable_variables, on the active backend."""
    variables = layer.trainable_variables
    if BACKEND == "jax":
        import jax

        def f(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return loss_fn()

        return [np.asarray(g) for g in jax.grad(f)([v.value for v in variables])]
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = loss_fn()
        return [g.numpy() for g in tape.gradient(loss, [v.value for v in variables])]
    import torch

    loss = loss_fn()
    grads = torch.autograd.grad(loss, [v.value for v in variables])
    return [g.detach().cpu().numpy() for g in grads]


@pytest.mark.parametrize("selective,complex_modes", [(False, True), (True, True), (True, False)])
def test_gradients_match_sequential_loop_and_finite_difference(selective, complex_modes):
    layer = _make(selective, complex_modes)
    rng = np.random.RandomState(4)
    u = rng.normal(size=(2, 15, 4)).astype("float32")
    weight = ops.convert_to_tensor(rng.normal(size=(2, 15, 2)).astype("float32"))

    def parallel_loss():
        return ops.sum(layer(u) * weight)

    def sequential_loss():
        h = layer.get_initial_state(2)
        total = 0.0
        for t in range(u.shape[1]):
            yt, h = layer.step(h, u[:, t])
            total = total + ops.sum(yt * weight[:, t])
        return total

    g_par = _gradients(layer, parallel_loss)
    g_seq = _gradients(layer, sequential_loss)
    names = [v.path for v in layer.trainable_variables]
    for name, gp, gs in zip(names, g_par, g_seq):
        assert np.isfinite(gp).all(), name
        np.testing.assert_allclose(gp, gs, rtol=1e-4, atol=1e-4 * np.abs(gs).max(), err_msg=name)
        assert np.abs(gp).max() > 0, name

    # Central finite difference of the float64 numpy reference (independent of autodiff).
    w = _weights(layer)
    eps = 1e-6
    checks = [("nu", (0,), layer.nu_log), ("B_re", (1, 2), layer.B_re)]
    if complex_modes:
        checks.append(("theta", (3,), layer.theta_log))
    if selective:
        checks.append(("Wd", (2, 1), layer.delta_kernel))
    for key, idx, var in checks:
        plus, minus = dict(w), dict(w)
        plus[key] = w[key].copy()
        minus[key] = w[key].copy()
        plus[key][idx] += eps
        minus[key][idx] -= eps
        f_plus = np.sum(reference(layer, u, w=plus)[0] * _np(weight))
        f_minus = np.sum(reference(layer, u, w=minus)[0] * _np(weight))
        fd = (f_plus - f_minus) / (2 * eps)
        auto = g_par[[v is var for v in layer.trainable_variables].index(True)][idx]
        np.testing.assert_allclose(auto, fd, rtol=2e-3, atol=2e-3, err_msg=key)


# -------------------------------------------------------- TF traced shapes
@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorFlow graph tracing only")
@pytest.mark.parametrize("spec", [(None, 15, 4), (2, None, 4), (None, None, 4)])
def test_tensorflow_unknown_dims_match_eager(spec):
    import tensorflow as tf

    for selective, complex_modes in [(True, True), (False, False)]:
        layer = _make(selective, complex_modes)
        u = np.random.RandomState(5).normal(size=(2, 15, 4)).astype("float32")
        h0 = np.random.RandomState(6).normal(size=(2, layer.state_size)).astype("float32")
        fn = tf.function(
            lambda x, h: layer(x, initial_state=h),
            input_signature=[
                tf.TensorSpec(spec, tf.float32),
                tf.TensorSpec((spec[0], layer.state_size), tf.float32),
            ],
        )
        traced = fn(u, h0).numpy()
        y_ref, _ = reference(layer, u, h0=h0)
        np.testing.assert_allclose(traced, y_ref, rtol=1e-4, atol=2e-5)


# ------------------------------------------------------------- config / save
def test_config_round_trip_and_functional_save(tmp_path):
    layer = _make(True, True, act="tanh", readout=(8, 4), r_min=0.3, r_max=0.9, max_phase=1.0)
    config = layer.get_config()
    for key, value in {
        "units": 5, "units_out": 2, "readout_units": [8, 4], "activation": "tanh",
        "selective": True, "complex_modes": True, "r_min": 0.3, "r_max": 0.9,
        "max_phase": 1.0, "skip_input": True, "seed": 3,
    }.items():
        assert config[key] == value, key
    clone = ParallelScanRNN.from_config(config)
    clone.build((None, None, 4))
    clone.set_weights(layer.get_weights())
    u = np.random.RandomState(8).normal(size=(2, 15, 4)).astype("float32")
    np.testing.assert_array_equal(forward(clone, u), forward(layer, u))
    assert clone.get_config() == config

    inputs = keras.Input((15, 4))
    model = keras.Model(inputs, ParallelScanRNN(3, 2, readout_units=(4,), selective=True)(inputs))
    assert model.output_shape == (None, 15, 2)
    path = str(tmp_path / "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[-1], ParallelScanRNN)
    np.testing.assert_array_equal(loaded.predict(u, verbose=0), model.predict(u, verbose=0))


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"units": 0}, "units"),
        ({"units": 2.5}, "units"),
        ({"units_out": -1}, "units_out"),
        ({"r_max": 1.0}, "r_max"),
        ({"r_min": 0.9, "r_max": 0.5}, "r_min"),
        ({"max_phase": 0.0}, "max_phase"),
        ({"readout_units": "64"}, "readout_units"),
        ({"readout_units": (8, 0)}, "readout_units"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_constructor_arguments(kwargs, match):
    args = {"units": 4, "units_out": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ParallelScanRNN(**args)


def test_bad_inputs_raise_clear_errors():
    layer = _make(False, True)
    with pytest.raises(ValueError, match="4 features"):
        layer(np.zeros((2, 5, 3), "float32"))
    with pytest.raises(ValueError, match="batch, time, features"):
        layer.compute_states(np.zeros((5, 4), "float32"))
    with pytest.raises(TypeError, match="floating-point"):
        layer(np.zeros((2, 5, 4), "int32"))
    with pytest.raises(ValueError, match="initial_state"):
        layer(np.zeros((2, 5, 4), "float32"), initial_state=np.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="step"):
        layer.step(layer.get_initial_state(2), np.zeros((2, 3), "float32"))
