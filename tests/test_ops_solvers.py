"""Solver strategy objects: every nonlinear x linear solver against a plain loop and BPTT.

Values are compared with a Python loop in numpy; gradients with BPTT, the backend's
autodiff through a Python loop over time (no keras_dsr code in the reference).
"""

import numpy as np
import pytest
import keras
from keras import ops

from conftest import BACKEND, to_np, value_and_grads
from keras_dsr.layers import DEERLayer
from keras_dsr.ops import deer_solve, linear_recurrence
from keras_dsr.ops import solvers as S

B, T, M, K = 2, 23, 4, 2
SOLVERS = [S.Newton(), S.QuasiNewton(), S.DampedNewton(0.8), S.Sequential()]
LINEAR = [S.Scan(), S.ChunkedScan(7), S.ChunkedScan(64), "function"]
if BACKEND == "jax":
    LINEAR.append(S.ShardedScan())  # one device here: the three-phase path, D = 1


def _problem():
    rng = np.random.default_rng(5)
    w = (0.4 * rng.normal(size=(M, M))).astype("float32")
    c = rng.normal(size=(K, M)).astype("float32")
    z0 = (0.5 * rng.normal(size=(B, M))).astype("float32")
    u = rng.normal(size=(B, T, K)).astype("float32")
    return w, c, z0, u


def _numpy_loop(w, c, z0, u):
    z, out = z0.astype(np.float64), []
    for t in range(T):
        z = np.tanh(z @ w + u[:, t] @ c)
        out.append(z)
    return np.stack(out, axis=1)


def _loss(zs):
    weights = ops.convert_to_tensor(np.linspace(-1.0, 1.0, T * M).reshape(T, M).astype("float32"))
    return ops.sum(zs * weights)


def _linear(name):
    if name == "function":
        return lambda a, b, h0: linear_recurrence(a, b, h0)
    return name


@pytest.mark.parametrize("solver", SOLVERS, ids=repr)
@pytest.mark.parametrize("linear", LINEAR, ids=repr)
def test_every_combination_matches_the_loop_and_bptt(solver, linear):
    w, c, z0, u = _problem()

    def solve(w, c, z0, u):
        step = lambda z, x: ops.tanh(ops.matmul(z, w) + ops.matmul(x, c))  # noqa: E731
        z, info = deer_solve(step, z0, u, method=solver, linear_solver=_linear(linear))
        return _loss(z), z, info

    def bptt(w, c, z0, u):
        z, out = z0, []
        for t in range(T):
            z = ops.tanh(ops.matmul(z, w) + ops.matmul(u[:, t], c))
            out.append(z)
        return _loss(ops.stack(out, axis=1))

    _, z, info = solve(*(ops.convert_to_tensor(x) for x in (w, c, z0, u)))
    np.testing.assert_allclose(to_np(z), _numpy_loop(w, c, z0, u), rtol=1e-4, atol=1e-5)
    assert not bool(to_np(info["fell_back"]))
    if solver.parallel:
        assert 1 <= int(to_np(info["iterations"])) < T
    val, grads = value_and_grads(lambda *a: solve(*a)[0], (w, c, z0, u))
    ref_val, ref_grads = value_and_grads(bptt, (w, c, z0, u))
    np.testing.assert_allclose(val, ref_val, rtol=1e-5)
    for g, r in zip(grads, ref_grads):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-4 * np.max(np.abs(r)))


def test_names_are_shortcuts_for_default_objects():
    assert S.METHODS == ("deer", "quasi", "damped", "sequential")
    assert [S.get_solver(m) for m in S.METHODS] == [S.Newton(), S.QuasiNewton(), S.DampedNewton(1.0), S.Sequential()]
    assert S.get_solver("damped", max_jacobian_norm=0.5) == S.DampedNewton(0.5)
    assert S.DampedNewton(0.5) != S.DampedNewton(0.6)
    assert S.get_linear_solver() == S.Scan() and S.get_linear_solver("scan") == S.Scan()
    assert S.get_linear_solver(chunk_size=16) == S.ChunkedScan(16)


@pytest.mark.parametrize(
    "obj", [S.Newton(), S.QuasiNewton(), S.DampedNewton(0.25), S.Sequential(), S.Scan(), S.ChunkedScan(9),
            S.ShardedScan("time")], ids=repr)
def test_strategies_serialise(obj):
    config = keras.saving.serialize_keras_object(obj)
    assert config["registered_name"].startswith("keras_dsr>")
    back = keras.saving.deserialize_keras_object(config)
    assert back == obj and type(back) is type(obj)


def test_bad_strategies_are_named():
    with pytest.raises(ValueError, match="`method` must be one of .*'newton'"):
        S.get_solver("newton")
    with pytest.raises(ValueError, match="max_norm.*-1"):
        S.DampedNewton(-1)
    with pytest.raises(ValueError, match="size.*0"):
        S.ChunkedScan(0)
    with pytest.raises(TypeError, match="linear_solver"):
        S.get_linear_solver(3)
    with pytest.raises(ValueError, match="not both"):
        S.get_linear_solver(S.Scan(), chunk_size=4)
    with pytest.raises(TypeError, match="must describe a NonlinearSolver"):
        S.get_solver(keras.saving.serialize_keras_object(S.Scan()))


def test_deer_layer_takes_objects_and_round_trips():
    x = np.random.default_rng(0).normal(size=(2, 30, 3)).astype("float32")
    ref_layer = keras.layers.RNN(keras.layers.GRUCell(5, seed=2), return_sequences=True)
    ref = to_np(ref_layer(x))
    layer = DEERLayer(keras.layers.GRUCell(5, seed=2), method=S.DampedNewton(0.9), chunk_size=8)
    layer.build(x.shape)
    for v, r in zip(layer.cell.cell.weights, ref_layer.cell.weights):
        v.assign(r)
    np.testing.assert_allclose(to_np(layer(x)), ref, rtol=1e-4, atol=1e-5)
    config = keras.saving.serialize_keras_object(layer)
    back = keras.saving.deserialize_keras_object(config)
    assert back.method == S.DampedNewton(0.9) and back.chunk_size == 8
    assert DEERLayer(keras.layers.GRUCell(5), method="quasi").get_config()["method"] == "quasi"
    sharded = DEERLayer(keras.layers.GRUCell(5), linear_solver=S.ChunkedScan(4)).get_config()
    assert keras.saving.deserialize_keras_object(sharded["linear_solver"]) == S.ChunkedScan(4)
    with pytest.raises(ValueError, match="DEERLayer: .*`method`"):
        DEERLayer(keras.layers.GRUCell(5), method="newton")
    with pytest.raises(ValueError, match="DEERLayer: .*not both"):
        DEERLayer(keras.layers.GRUCell(5), chunk_size=4, linear_solver=S.Scan())


@pytest.mark.parametrize("method, linear", [(S.DampedNewton(0.9), None), (S.QuasiNewton(), None),
                                            (S.Newton(), S.ChunkedScan(8)), (S.Sequential(), None)])
def test_gtf_deer_layer_takes_objects_and_round_trips(method, linear):
    """GTF (alpha = 0.4, full forcing, M = N = 3) solved with solver objects equals a
    Python loop of the forced recurrence, and the objects survive serialisation."""
    from keras_dsr.cells import ClippedShallowPLRNN
    from keras_dsr.layers import GTFDEERLayer

    x = np.random.default_rng(3).normal(size=(2, 40, 3)).astype("float32")
    cell = ClippedShallowPLRNN(3, 8, seed=4)
    layer = GTFDEERLayer(cell, alpha=0.4, method=method, linear_solver=linear)
    out = to_np(layer(x))
    z, ref = x[:, 0], []
    for t in range(1, x.shape[1]):
        pred = to_np(cell(ops.convert_to_tensor(z)))
        ref.append(pred)
        z = (pred + 0.4 * (x[:, t] - pred)).astype("float32")
    np.testing.assert_allclose(out, np.stack(ref, 1), rtol=1e-4, atol=1e-5)
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert back.method == (method.name if method == S.get_solver(method.name) else method)
    assert back.linear_solver == linear
    with pytest.raises(ValueError, match="GTFDEERLayer: .*not both"):
        GTFDEERLayer(ClippedShallowPLRNN(3, 8), chunk_size=4, linear_solver=S.Scan())
