"""DEER's gradient (custom VJP on JAX, final Newton step elsewhere) against BPTT.

The reference is a plain Python loop over time through the cell, differentiated by
the backend's autodiff. The cells' weights are Keras variables read through a
``keras.StatelessScope`` (as in ``model.fit``), so the step function closes over
traced values, the case the custom VJP must get right. Also: a cell's
``step_and_jacobian`` against its ``call`` and a finite-difference Jacobian.
"""

import numpy as np
import pytest
import keras
from keras import ops

from conftest import to_np, value_and_grads
from keras_dsr.cells import ALRNN, PLRNN, ClippedShallowPLRNN, PolynomialFlow, ShallowPLRNN
from keras_dsr.cells.keras_adapter import KerasCellAdapter
from keras_dsr.ops import deer_solve

B, T, D = 2, 50, 3


def _rel_err(got, ref):
    return np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-12)


def gru_map():
    cell = keras.layers.GRUCell(5, seed=1)
    adapter = KerasCellAdapter(cell)
    adapter.build((None, 5), (None, D))
    rng = np.random.default_rng(7)
    for v in cell.trainable_variables:
        if "bias" in v.path:
            v.assign(0.3 * rng.normal(size=v.shape).astype("float32"))

    def step(z, u):
        return adapter(z, u)

    step.step_and_jacobian = adapter.step_and_jacobian

    def loop_step(z, u):  # the Keras cell itself, one time step
        return cell(u, [z])[1][0]

    return cell.trainable_variables, step, loop_step, 5


def plrnn_map():
    cell = PLRNN(4, input_dim=D, seed=3)
    cell.build((None, 4), (None, D))
    # A contractive map: the diagonal well inside the unit circle, small W.
    cell.a.assign(np.full((4,), 0.6, "float32"))
    cell.h.assign(np.full((4,), 0.2, "float32"))
    cell.W.assign(0.3 * np.random.default_rng(2).normal(size=(4, 4)).astype("float32"))
    return cell.trainable_variables, cell, cell, 4


_BUILT = {}


def _cached(make):
    def get():
        if make not in _BUILT:
            _BUILT[make] = make()
        return _BUILT[make]

    return get


# Built once each: the loop and the solver must see the same weights.
MAPS = {"gru": _cached(gru_map), "plrnn": _cached(plrnn_map)}


def _grads(make, solver, **kwargs):
    variables, step, loop_step, m = make()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype("float32")
    z0 = (0.5 * rng.normal(size=(B, m))).astype("float32")
    proj = rng.normal(size=(B, T, m)).astype("float32")
    weights = [to_np(v) for v in variables]
    infos = []

    def loss(x, z0, *ws):
        with keras.StatelessScope(state_mapping=list(zip(variables, ws))):
            if solver == "loop":
                z, zs = z0, []
                for t in range(T):
                    z = loop_step(z, x[:, t])
                    zs.append(z)
                z = ops.stack(zs, axis=1)
            else:
                z, info = deer_solve(step, z0, x, method=solver, **kwargs)
                infos.append(info)
        return ops.sum(z * ops.convert_to_tensor(proj))

    value, grads = value_and_grads(loss, [x, z0] + weights)
    return value, grads, infos


_LOOP = {}


def _loop_reference(kind):
    """Value and gradients of the plain loop (BPTT) for map ``kind``, computed once."""
    if kind not in _LOOP:
        _LOOP[kind] = _grads(MAPS[kind], "loop")
    return _LOOP[kind]


@pytest.mark.parametrize("kind", list(MAPS))
@pytest.mark.parametrize("chunk_size", [None, 16])
@pytest.mark.parametrize("method", ["deer", "quasi"])
def test_gradient_equals_bptt_of_plain_loop(kind, chunk_size, method):
    v_ref, g_ref, _ = _loop_reference(kind)
    v, g, _ = _grads(MAPS[kind], method, chunk_size=chunk_size)
    # the loss sums B*T*m terms of order one to a smaller value (cancellation): its
    # float32 rounding is relative to the terms, not to the sum (seen on PyTorch:
    # 2.3e-6 on -0.17 under load, threads summing in another order)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5, atol=1e-5)
    assert len(g) == len(g_ref)
    for i, (got, ref) in enumerate(zip(g, g_ref)):
        assert got.shape == ref.shape
        assert _rel_err(got, ref) < 1e-4, (i, _rel_err(got, ref))


@pytest.mark.parametrize("kind", list(MAPS))
@pytest.mark.parametrize("chunk_size", [None, 16])
def test_gradient_in_the_fallback_case_equals_bptt(kind, chunk_size):
    """One quasi iteration cannot converge: the sequential result and its gradient."""
    v_ref, g_ref, _ = _loop_reference(kind)
    v, g, infos = _grads(MAPS[kind], "quasi", max_iter=1, chunk_size=chunk_size)
    np.testing.assert_allclose(v, v_ref, rtol=1e-5)
    for i, (got, ref) in enumerate(zip(g, g_ref)):
        assert _rel_err(got, ref) < 1e-4, (i, _rel_err(got, ref))
    # The flag, from an eager call with the same settings.
    variables, step, _, m = MAPS[kind]()
    x = np.random.default_rng(0).normal(size=(B, T, D)).astype("float32")
    _, info = deer_solve(step, np.zeros((B, m), "float32"), x, method="quasi", max_iter=1,
                         chunk_size=chunk_size)
    assert bool(to_np(info["fell_back"]))


# ------------------------------------------------------- step_and_jacobian
def _fd_jacobian(fn, z, eps):
    cols = []
    for j in range(z.shape[-1]):
        e = np.zeros(z.shape[-1], z.dtype)
        e[j] = eps
        cols.append((to_np(fn(z + e)) - to_np(fn(z - e))) / (2 * eps))
    return np.stack(cols, axis=-1)


CELLS = {
    "plrnn": lambda: PLRNN(4, input_dim=2, seed=1),
    "shplrnn": lambda: ShallowPLRNN(4, 7, input_dim=2, seed=2),
    "clipped": lambda: ClippedShallowPLRNN(4, 7, input_dim=2, seed=3),
    "alrnn": lambda: ALRNN(4, 2, input_dim=2, seed=4),
    "polynomial": lambda: PolynomialFlow(4, input_dim=2, init_scale=0.05, seed=5),
    "gru_adapter": lambda: KerasCellAdapter(keras.layers.GRUCell(4, seed=6)),
}


@pytest.mark.parametrize("kind", list(CELLS))
def test_step_and_jacobian_equals_call_and_jacobian(kind):
    cell = CELLS[kind]()
    cell.build((None, 4), (None, 2))
    rng = np.random.default_rng(9)
    z = rng.normal(size=(3, 5, 4)).astype("float32")
    u = rng.normal(size=(3, 5, 2)).astype("float32")
    value, jac = cell.step_and_jacobian(z, u)
    np.testing.assert_allclose(to_np(value), to_np(cell(z, u)), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_np(jac), to_np(cell.jacobian(z, u)), rtol=1e-6, atol=1e-6)
    # Independent check of the Jacobian: central differences of the map.
    fd = _fd_jacobian(lambda zz: cell(zz, u), z, 1e-3)
    np.testing.assert_allclose(to_np(jac), fd, atol=2e-3, rtol=1e-2)
