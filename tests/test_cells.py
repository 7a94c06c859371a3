"""PLRNN-family cells against independent numpy references (map, Jacobians),
vectorisation, serialisation, boundedness and input validation.

Run once per backend: KERAS_BACKEND=jax|tensorflow|torch pytest tests/test_cells.py
"""

import contextlib

import numpy as np
import pytest

import keras_dsr  # noqa: F401  (selects the default backend before keras)
import keras
from keras import ops

from conftest import np_jacobian_fd

from keras_dsr.cells import (
    ALRNN,
    PLRNN,
    ClippedShallowPLRNN,
    DSRCell,
    ShallowPLRNN,
    normalized_positive_definite,
)

BACKEND = keras.backend.backend()
M, L, P = 4, 7, 2


# --------------------------------------------------------------------- helpers
def relu(x):
    return np.maximum(x, 0.0)


def params_of(cell):
    """The cell's weights as float64 numpy arrays, by variable name."""
    return {v.name: np.asarray(ops.convert_to_numpy(v), np.float64) for v in cell.weights}


def np_map(kind, p, z, u=None, num_relu=None):
    """Plain numpy implementation of each map (float64)."""
    z = np.asarray(z, np.float64)
    if kind == "plrnn":
        w = p["W"] * (1.0 - np.eye(z.shape[-1]))
        out = p["a"] * z + relu(z) @ w.T + p["h"]
    elif kind == "shallow":
        out = p["a"] * z + relu(z @ p["W2"].T + p["h2"]) @ p["W1"].T + p["h1"]
    elif kind == "clipped":
        x = z @ p["W2"].T
        out = p["a"] * z + (relu(x + p["h2"]) - relu(x)) @ p["W1"].T + p["h1"]
    elif kind == "alrnn":
        m = z.shape[-1]
        phi = z.copy()
        phi[..., m - num_relu :] = relu(z[..., m - num_relu :])
        out = p["a"] * z + phi @ p["W"].T + p["h"]
    else:
        raise AssertionError(kind)
    if u is not None:
        out = out + np.asarray(u, np.float64) @ p["C"]
    return out


def np_jacobian_closed_form(kind, p, z, num_relu=None):
    """J[..., i, j] = dF_i/dz_j from the formulas of docs/method.md §Models, numpy float64."""
    z = np.asarray(z, np.float64)
    m = z.shape[-1]
    a = np.diag(p["a"])
    if kind == "plrnn":
        w = p["W"] * (1.0 - np.eye(m))
        return a + w * (z > 0)[..., None, :]
    if kind in ("shallow", "clipped"):
        x = z @ p["W2"].T
        d = (x + p["h2"] > 0).astype(float)
        if kind == "clipped":
            d = d - (x > 0)
        return a + np.einsum("il,...l,lj->...ij", p["W1"], d, p["W2"])
    if kind == "alrnn":
        d = np.ones_like(z)
        d[..., m - num_relu :] = (z[..., m - num_relu :] > 0)
        return a + p["W"] * d[..., None, :]
    raise AssertionError(kind)


def make_cell(kind, **kw):
    if kind == "plrnn":
        return PLRNN(M, **kw)
    if kind == "shallow":
        return ShallowPLRNN(M, L, **kw)
    if kind == "clipped":
        return ClippedShallowPLRNN(M, L, **kw)
    if kind == "alrnn":
        return ALRNN(M, P, **kw)
    raise AssertionError(kind)


def randomize(cell, seed=0, scale=0.5):
    """Give every weight (incl. biases and the PLRNN W diagonal) random values."""
    rng = np.random.default_rng(seed)
    cell.set_weights(
        [scale * rng.standard_normal(w.shape).astype(w.dtype) for w in cell.get_weights()]
    )


def built(kind, input_dim=0, seed=0, dtype=None):
    kw = {"input_dim": input_dim}
    if dtype is not None:
        kw["dtype"] = dtype
    cell = make_cell(kind, **kw)
    cell.build((M,))
    randomize(cell, seed)
    return cell


@contextlib.contextmanager
def float64_enabled():
    if BACKEND == "jax":
        import jax

        with jax.enable_x64(True):
            yield
    else:
        yield


KINDS = ["plrnn", "shallow", "clipped", "alrnn"]


def np_kw(kind):
    return {"num_relu": P} if kind == "alrnn" else {}


# ------------------------------------------------------------------- the maps
@pytest.mark.parametrize("kind", KINDS)
def test_call_matches_numpy_map(kind):
    cell = built(kind)
    z = 1.5 * np.random.default_rng(1).standard_normal((3, 5, M)).astype("float32")
    out = ops.convert_to_numpy(cell(z))
    ref = np_map(kind, params_of(cell), z, **np_kw(kind))
    assert out.shape == (3, 5, M)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_call_with_input_matches_numpy(kind):
    K = 3
    cell = built(kind, input_dim=K)
    rng = np.random.default_rng(2)
    z = rng.standard_normal((6, M)).astype("float32")
    u = rng.standard_normal((6, K)).astype("float32")
    p = params_of(cell)
    assert p["C"].shape == (K, M)
    out = ops.convert_to_numpy(cell(z, u))
    np.testing.assert_allclose(out, np_map(kind, p, z, u, **np_kw(kind)), rtol=1e-5, atol=1e-5)
    # u=None means a zero input.
    out0 = ops.convert_to_numpy(cell(z))
    np.testing.assert_allclose(out0, np_map(kind, p, z, **np_kw(kind)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_relu", [0, 1, M])
def test_alrnn_relu_count_edges(num_relu):
    cell = ALRNN(M, num_relu)
    cell.build((M,))
    randomize(cell, 3)
    z = np.random.default_rng(4).standard_normal((5, M)).astype("float32")
    p = params_of(cell)
    out = ops.convert_to_numpy(cell(z))
    np.testing.assert_allclose(out, np_map("alrnn", p, z, num_relu=num_relu), rtol=1e-5, atol=1e-5)
    jac = ops.convert_to_numpy(cell.jacobian(z))
    np.testing.assert_allclose(
        jac, np_jacobian_closed_form("alrnn", p, z, num_relu=num_relu), rtol=1e-5, atol=1e-6
    )


def test_plrnn_ignores_stored_w_diagonal():
    cell = built("plrnn")
    p = params_of(cell)
    assert np.all(np.abs(np.diag(p["W"])) > 0)  # randomize() set a nonzero diagonal
    z = np.random.default_rng(5).standard_normal((4, M)).astype("float32")
    p_full = dict(p)
    out = ops.convert_to_numpy(cell(z))
    full = p["a"] * z + relu(z) @ p_full["W"].T + p["h"]  # with the diagonal
    masked = np_map("plrnn", p, z)
    np.testing.assert_allclose(out, masked, rtol=1e-5, atol=1e-5)
    assert np.max(np.abs(out - full)) > 1e-3
    eff = ops.convert_to_numpy(cell.effective_W())
    np.testing.assert_array_equal(np.diag(eff), 0.0)


# ------------------------------------------------------------------ Jacobians
@pytest.mark.parametrize("kind", KINDS)
def test_jacobian_matches_finite_difference_and_closed_form(kind):
    cell = built(kind)
    z = 1.5 * np.random.default_rng(6).standard_normal((2, 3, M)).astype("float32")
    p = params_of(cell)
    jac = ops.convert_to_numpy(cell.jacobian(z))
    assert jac.shape == (2, 3, M, M)
    fd = np_jacobian_fd(lambda x: np_map(kind, p, x, **np_kw(kind)), z)
    closed = np_jacobian_closed_form(kind, p, z, **np_kw(kind))
    np.testing.assert_allclose(closed, fd, rtol=1e-6, atol=1e-7)  # reference sanity
    np.testing.assert_allclose(jac, fd, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jac, closed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_jacobian_diagonal(kind):
    cell = built(kind)
    z = 1.5 * np.random.default_rng(7).standard_normal((2, 3, M)).astype("float32")
    p = params_of(cell)
    diag = ops.convert_to_numpy(cell.jacobian_diagonal(z))
    assert diag.shape == (2, 3, M)
    fd = np_jacobian_fd(lambda x: np_map(kind, p, x, **np_kw(kind)), z)
    np.testing.assert_allclose(diag, np.diagonal(fd, axis1=-2, axis2=-1), rtol=1e-5, atol=1e-6)
    full = ops.convert_to_numpy(cell.jacobian(z))
    np.testing.assert_allclose(diag, np.diagonal(full, axis1=-2, axis2=-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_jacobian_ignores_input(kind):
    cell = built(kind, input_dim=2)
    rng = np.random.default_rng(8)
    z = rng.standard_normal((3, M)).astype("float32")
    u = rng.standard_normal((3, 2)).astype("float32")
    p = params_of(cell)
    fd = np_jacobian_fd(lambda x: np_map(kind, p, x, u, **np_kw(kind)), z)
    np.testing.assert_allclose(ops.convert_to_numpy(cell.jacobian(z, u)), fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_float64(kind):
    with float64_enabled():
        cell = built(kind, input_dim=2, dtype="float64")
        rng = np.random.default_rng(9)
        z = rng.standard_normal((3, 2, M))
        u = rng.standard_normal((3, 2, 2))
        p = params_of(cell)
        out = ops.convert_to_numpy(cell(z, u))
        jac = ops.convert_to_numpy(cell.jacobian(z))
        diag = ops.convert_to_numpy(cell.jacobian_diagonal(z))
        assert all(v.dtype == "float64" for v in cell.weights)
    assert out.dtype == np.float64 and jac.dtype == np.float64
    np.testing.assert_allclose(out, np_map(kind, p, z, u, **np_kw(kind)), rtol=1e-12, atol=1e-12)
    fd = np_jacobian_fd(lambda x: np_map(kind, p, x, u, **np_kw(kind)), z)
    np.testing.assert_allclose(jac, fd, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(diag, np.diagonal(fd, axis1=-2, axis2=-1), rtol=1e-7, atol=1e-8)


# -------------------------------------------------------------- vectorisation
@pytest.mark.parametrize("kind", KINDS)
def test_leading_dims_equal_per_step_loop(kind):
    cell = built(kind, input_dim=2)
    rng = np.random.default_rng(10)
    z = rng.standard_normal((3, 4, M)).astype("float32")
    u = rng.standard_normal((3, 4, 2)).astype("float32")
    out = ops.convert_to_numpy(cell(z, u))
    jac = ops.convert_to_numpy(cell.jacobian(z, u))
    diag = ops.convert_to_numpy(cell.jacobian_diagonal(z, u))
    for t in range(4):
        np.testing.assert_allclose(out[:, t], ops.convert_to_numpy(cell(z[:, t], u[:, t])), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(jac[:, t], ops.convert_to_numpy(cell.jacobian(z[:, t])), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(diag[:, t], ops.convert_to_numpy(cell.jacobian_diagonal(z[:, t])), rtol=1e-6, atol=1e-6)
    # a single unbatched state [M]
    one = ops.convert_to_numpy(cell(z[1, 2], u[1, 2]))
    np.testing.assert_allclose(one, out[1, 2], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(ops.convert_to_numpy(cell.jacobian(z[1, 2])), jac[1, 2], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------- initialisation
def test_normalized_positive_definite():
    k = ops.convert_to_numpy(normalized_positive_definite(6, seed=3)).astype(np.float64)
    np.testing.assert_allclose(k, k.T, atol=1e-6)
    eig = np.linalg.eigvalsh(k)
    assert eig.min() > 0
    np.testing.assert_allclose(eig.max(), 1.0, rtol=1e-5)


def test_initialisations_follow_lab_code():
    m, l_ = 6, 40
    plrnn = PLRNN(m, seed=1)
    plrnn.build((m,))
    p = params_of(plrnn)
    k = np.diag(p["a"]) + p["W"]  # a = diag(K), W = offdiag(K)
    np.testing.assert_array_equal(np.diag(p["W"]), 0.0)
    np.testing.assert_allclose(k, k.T, atol=1e-6)
    np.testing.assert_allclose(np.linalg.eigvalsh(k).max(), 1.0, rtol=1e-5)
    assert np.all(p["a"] > 0) and np.all(p["a"] <= 1 + 1e-6)
    np.testing.assert_array_equal(p["h"], 0.0)

    for cls in (ShallowPLRNN, ClippedShallowPLRNN):
        cell = cls(m, l_, input_dim=3, seed=2)
        cell.build((m,))
        p = params_of(cell)
        assert p["W1"].shape == (m, l_) and p["W2"].shape == (l_, m)
        assert np.abs(p["W1"]).max() <= l_**-0.5 and np.abs(p["W1"]).max() > 0.8 * l_**-0.5
        assert np.abs(p["W2"]).max() <= m**-0.5 and np.abs(p["W2"]).max() > 0.8 * m**-0.5
        assert np.all(p["a"] > 0) and np.all(p["a"] <= 1 + 1e-6)
        np.testing.assert_array_equal(p["h1"], 0.0)
        glorot = np.sqrt(6.0 / (3 + m))
        assert np.abs(p["C"]).max() <= glorot
        if cls is ShallowPLRNN:
            np.testing.assert_array_equal(p["h2"], 0.0)
        else:
            assert np.abs(p["h2"]).max() <= l_**-0.5 and np.abs(p["h2"]).min() >= 0
            assert np.abs(p["h2"]).max() > 0.5 * l_**-0.5

    alrnn = ALRNN(20, 2, seed=3)
    alrnn.build((20,))
    p = params_of(alrnn)
    assert 0.008 < p["W"].std() < 0.012
    assert np.all(p["a"] > 0) and np.all(p["a"] <= 1 + 1e-6)
    np.testing.assert_array_equal(p["h"], 0.0)


@pytest.mark.parametrize("kind", KINDS)
def test_seed_makes_initialisation_reproducible(kind):
    c1, c2, c3 = make_cell(kind, seed=7), make_cell(kind, seed=7), make_cell(kind, seed=8)
    for c in (c1, c2, c3):
        c.build((M,))
    for w1, w2 in zip(c1.get_weights(), c2.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    assert any(np.abs(w1 - w3).max() > 0 for w1, w3 in zip(c1.get_weights(), c3.get_weights()))


# ------------------------------------------------------------------ training
def test_plrnn_w_diagonal_stays_zero_after_gradient_step():
    cell = PLRNN(M, seed=0)
    model = keras.Sequential([keras.Input((M,)), cell])
    w0 = params_of(cell)["W"]
    np.testing.assert_array_equal(np.diag(w0), 0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((32, M)).astype("float32")
    y = rng.standard_normal((32, M)).astype("float32")
    model.train_on_batch(x, y)
    w1 = params_of(cell)["W"]
    np.testing.assert_array_equal(np.diag(w1), 0.0)
    off = ~np.eye(M, dtype=bool)
    assert np.abs(w1[off] - w0[off]).max() > 1e-4  # the step did move W


# ------------------------------------------------------------ boundedness
def test_clipped_shplrnn_orbits_bounded_from_huge_states():
    m, l_ = 3, 20
    cell = ClippedShallowPLRNN(m, l_)
    cell.build((m,))
    rng = np.random.default_rng(12)
    a = rng.uniform(-0.5, 0.5, m)
    w1, w2 = rng.standard_normal((m, l_)), rng.standard_normal((l_, m))
    h1, h2 = rng.standard_normal(m), rng.standard_normal(l_)
    cell.set_weights([x.astype("float32") for x in (a, w1, w2, h1, h2)])
    bound = (np.abs(w1) @ np.abs(h2) + np.abs(h1)).max() / (1 - np.abs(a).max())
    z = (1e6 * rng.standard_normal((8, m))).astype("float32")
    for _ in range(40):
        z = cell(z)
    z = ops.convert_to_numpy(z)
    assert np.all(np.isfinite(z))
    assert np.abs(z).max() <= bound * (1 + 1e-4) + 1e-3
    # The unclipped map with the same weights is not bounded this way.
    sh = ShallowPLRNN(m, l_)
    sh.build((m,))
    sh.set_weights(cell.get_weights())
    z_sh = ops.convert_to_numpy(sh((1e6 * np.ones((1, m))).astype("float32")))
    assert np.abs(z_sh).max() > 10 * bound


# ----------------------------------------------------------- serialisation
@pytest.mark.parametrize("kind", KINDS)
def test_config_round_trip(kind):
    cell = make_cell(kind, input_dim=2, seed=4, name=f"my_{kind}")
    cell.build((M,))
    randomize(cell, 13)
    cfg = cell.get_config()
    clone = type(cell).from_config(cfg)
    assert clone.get_config() == cfg
    clone2 = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(cell))
    assert type(clone2) is type(cell) and clone2.get_config() == cfg
    rng = np.random.default_rng(14)
    z = rng.standard_normal((3, M)).astype("float32")
    u = rng.standard_normal((3, 2)).astype("float32")
    for c in (clone, clone2):
        if not c.built:
            c.build((M,))
        c.set_weights(cell.get_weights())
        np.testing.assert_array_equal(ops.convert_to_numpy(c(z, u)), ops.convert_to_numpy(cell(z, u)))
        np.testing.assert_array_equal(ops.convert_to_numpy(c.jacobian(z)), ops.convert_to_numpy(cell.jacobian(z)))


@pytest.mark.parametrize("kind", KINDS)
def test_keras_file_round_trip(kind, tmp_path):
    cell = make_cell(kind)
    model = keras.Sequential([keras.Input((M,)), cell])
    randomize(cell, 15)
    z = np.random.default_rng(16).standard_normal((5, M)).astype("float32")
    expected = ops.convert_to_numpy(model(z))
    path = tmp_path / "cell.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.layers[0], type(cell))
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded(z)), expected)


def test_functional_model_with_input_round_trip(tmp_path):
    cell = ClippedShallowPLRNN(M, L, input_dim=2)
    z_in, u_in = keras.Input((M,)), keras.Input((2,))
    model = keras.Model([z_in, u_in], cell(z_in, u_in))
    randomize(cell, 17)
    rng = np.random.default_rng(18)
    z = rng.standard_normal((5, M)).astype("float32")
    u = rng.standard_normal((5, 2)).astype("float32")
    expected = ops.convert_to_numpy(model([z, u]))
    np.testing.assert_allclose(expected, np_map("clipped", params_of(cell), z, u), rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "f.keras")
    loaded = keras.saving.load_model(tmp_path / "f.keras")
    np.testing.assert_array_equal(ops.convert_to_numpy(loaded([z, u])), expected)


def test_cells_are_dsr_cells_with_state_size():
    for kind in KINDS:
        cell = make_cell(kind)
        assert isinstance(cell, DSRCell)
        assert cell.state_size == M and cell.output_size == M


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "factory, arg",
    [
        (lambda: PLRNN(0), "latent_dim"),
        (lambda: PLRNN(-2), "latent_dim"),
        (lambda: PLRNN(2.5), "latent_dim"),
        (lambda: ShallowPLRNN(0, 5), "latent_dim"),
        (lambda: ShallowPLRNN(3, 0), "hidden_dim"),
        (lambda: ClippedShallowPLRNN(3, -1), "hidden_dim"),
        (lambda: ALRNN(3, 4), "num_relu"),
        (lambda: ALRNN(3, -1), "num_relu"),
        (lambda: PLRNN(3, input_dim=-1), "input_dim"),
    ],
)
def test_bad_constructor_arguments(factory, arg):
    with pytest.raises(ValueError, match=arg):
        factory()


@pytest.mark.parametrize("kind", KINDS)
def test_bad_call_arguments(kind):
    cell = make_cell(kind)
    bad_z = np.zeros((2, M + 1), "float32")
    with pytest.raises(ValueError, match="`z`"):
        cell(bad_z)  # unbuilt: raised by build
    z = np.zeros((2, M), "float32")
    cell(z)
    for method in (cell, cell.jacobian, cell.jacobian_diagonal):
        with pytest.raises(ValueError, match="`z`"):
            method(bad_z)
        with pytest.raises(ValueError, match="`u`.*input_dim=0"):
            method(z, np.zeros((2, 1), "float32"))
    with_u = make_cell(kind, input_dim=2)
    with pytest.raises(ValueError, match="`u`.*input_dim=2"):
        with_u(z, np.zeros((2, 3), "float32"))
    with_u(z, np.zeros((2, 2), "float32"))
    with pytest.raises(ValueError, match="`u`.*input_dim=2"):
        with_u.jacobian(z, np.zeros((2, 3), "float32"))


@pytest.mark.parametrize("kind", KINDS)
def test_compiled_matches_eager(kind):
    """The map and Jacobians trace under jax.jit / tf.function (as in DEER)."""
    cell = built(kind, input_dim=2)
    rng = np.random.default_rng(19)
    z = rng.standard_normal((2, 3, M)).astype("float32")
    u = rng.standard_normal((2, 3, 2)).astype("float32")

    def fn(z, u):
        return cell(z, u), cell.jacobian(z, u), cell.jacobian_diagonal(z, u)

    if BACKEND == "jax":
        import jax

        compiled = jax.jit(fn)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(fn)
    else:
        compiled = fn
    eager = fn(z, u)
    got = compiled(ops.convert_to_tensor(z), ops.convert_to_tensor(u))
    for g, e in zip(got, eager):
        np.testing.assert_allclose(ops.convert_to_numpy(g), ops.convert_to_numpy(e), rtol=1e-6, atol=1e-6)
