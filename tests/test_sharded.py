"""Sequence parallelism (keras_dsr.ops.sharded) on 4 simulated CPU devices (JAX only).

One subprocess (XLA fixes its device count at start-up) solves every case and saves
the results; the tests compare them with plain Python loops (values), with the
unsharded ``linear_recurrence`` / ``deer_solve``, and with sequential BPTT
(gradients).
"""

import json

import numpy as np
import pytest

from _multidevice import run_on_cpu_devices
from conftest import BACKEND
from test_ops_deer import python_loop, shplrnn_numpy, shplrnn_params
from test_ops_scan import loop_recurrence, random_problem

JAX_ONLY = pytest.mark.skipif(
    BACKEND != "jax", reason="sequence parallelism is JAX-only (jax.shard_map)")

# (name, dense, reverse, with h0, batch, mesh): "4" = Mesh('time': 4); "2x2" =
# Mesh(('batch', 'time'), 2 x 2), time sharded over 'time' and replicated over 'batch'.
LINEAR_CASES = [
    ("diag", False, False, False, (2,), "4"),
    ("diag_h0", False, False, True, (2,), "4"),
    ("diag_reverse_h0", False, True, True, (2,), "4"),
    ("dense_h0", True, False, True, (2,), "4"),
    ("dense_reverse", True, True, False, (2,), "4"),
    ("diag_unbatched_2x2_mesh", False, False, True, (), "2x2"),
]
T = 64
GRAD_NAMES = ["a", "w1", "w2", "h1", "h2", "z0", "zhat"]

WORKER = r"""
import json, sys
import numpy as np
import jax, jax.numpy as jnp
import keras_dsr
from keras_dsr.ops import deer_solve, linear_recurrence, sequential_solve
from keras_dsr.ops.sharded import sharded_deer_solve, sharded_linear_recurrence, time_mesh
from test_ops_deer import shplrnn_jacobian, shplrnn_step

assert len(jax.devices()) == 4, jax.devices()
data = dict(np.load(sys.argv[1]))
cases = json.loads(str(data.pop("cases")))
out = {}
meshes = {"4": (time_mesh(), None),
          "2x2": (jax.sharding.Mesh(np.array(jax.devices()).reshape(2, 2), ("batch", "time")),
                  "time")}
for name, reverse, mesh in cases:
    a, b = data[name + "/a"], data[name + "/b"]
    h0 = data.get(name + "/h0")
    mesh, axis = meshes[mesh]
    h = sharded_linear_recurrence(a, b, h0, reverse=bool(reverse), mesh=mesh, axis_name=axis)
    assert h.sharding.spec[b.ndim - 2] == "time", h.sharding
    out[name] = np.asarray(h)
    unsharded = jax.jit(lambda a, b, h0: linear_recurrence(a, b, h0, reverse=bool(reverse)))
    out[name + "/unsharded"] = np.asarray(unsharded(a, b, h0))

for what, call in [
    ("lin", lambda: sharded_linear_recurrence(np.ones((2, 66, 3), "f4"), np.ones((2, 66, 3)))),
    ("deer", lambda: sharded_deer_solve(lambda z, u: z + u, np.zeros((2, 3), "f4"),
                                        np.ones((2, 66, 3), "f4"))),
    ("axis", lambda: sharded_linear_recurrence(data["diag/a"], data["diag/b"],
                                               mesh=meshes["2x2"][0], axis_name="space")),
]:
    try:
        call()
        out["error/" + what] = np.array("no error")
    except ValueError as err:
        out["error/" + what] = np.array(str(err))

params = [jnp.asarray(data["deer/" + k]) for k in ("a", "w1", "w2", "h1", "h2")]
z0, zhat, weights = (jnp.asarray(data["deer/" + k]) for k in ("z0", "zhat", "weights"))

def loss(solver):
    def fn(args):
        a, w1, w2, h1, h2, z0, zhat = args
        step, jac = shplrnn_step(a, w1, w2, h1, h2), shplrnn_jacobian(a, w1, w2, h1, h2)
        if solver == "bptt":
            z, info = sequential_solve(step, z0, zhat), {"iterations": 0, "fell_back": False}
        else:
            solve = sharded_deer_solve if solver == "sharded" else deer_solve
            z, info = solve(step, z0, zhat, jacobian_fn=jac, initial_guess=zhat)
        return jnp.sum(z * weights), (z, info["iterations"], info["fell_back"])
    return jax.jit(jax.value_and_grad(fn, has_aux=True))

for solver in ("sharded", "deer", "bptt"):
    (value, (z, iterations, fell_back)), grads = loss(solver)((*params, z0, zhat))
    out["deer/" + solver + "/z"] = np.asarray(z)
    out["deer/" + solver + "/iterations"] = np.asarray(iterations)
    out["deer/" + solver + "/fell_back"] = np.asarray(fell_back)
    for k, g in enumerate(grads):
        out[f"deer/{solver}/grad{k}"] = np.asarray(g)
np.savez(sys.argv[2], **out)
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    rng = np.random.default_rng(7)
    data, cases = {}, []
    for name, dense, reverse, with_h0, batch, mesh in LINEAR_CASES:
        a, b, h0 = random_problem(rng, batch, T, 3, dense)
        data[name + "/a"], data[name + "/b"] = a, b
        if with_h0:
            data[name + "/h0"] = h0
        cases.append((name, int(reverse), mesh))
    p = shplrnn_params(rng)
    zhat = rng.normal(size=(2, 128, 3)).astype("float32")
    deer = dict(p, z0=zhat[:, 0] + 0.1, zhat=zhat,
                weights=rng.normal(size=zhat.shape).astype("float32"))
    data.update({"deer/" + k: v for k, v in deer.items()})
    folder = tmp_path_factory.mktemp("sharded")
    np.savez(folder / "in.npz", cases=np.array(json.dumps(cases)), **data)
    run_on_cpu_devices(WORKER, folder / "in.npz", folder / "out.npz")
    with np.load(folder / "out.npz") as out:
        return data, dict(out)


@JAX_ONLY
@pytest.mark.parametrize("case", LINEAR_CASES, ids=[c[0] for c in LINEAR_CASES])
def test_sharded_linear_recurrence_matches_loop_and_unsharded(results, case):
    data, out = results
    name, _, reverse, with_h0, _, _ = case
    h0 = data[name + "/h0"] if with_h0 else None
    ref = loop_recurrence(data[name + "/a"], data[name + "/b"], h0, reverse)
    got = out[name]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(got, out[name + "/unsharded"], rtol=1e-5, atol=2e-6)


@JAX_ONLY
def test_sequence_length_not_divisible_by_devices(results):
    _, out = results
    lin, deer = str(out["error/lin"]), str(out["error/deer"])
    assert "`b`" in lin and "T = 66" in lin and "divisible by the 4 devices" in lin, lin
    assert "`inputs`" in deer and "T = 66" in deer and "divisible" in deer, deer
    assert "`axis_name`" in str(out["error/axis"]), str(out["error/axis"])


@JAX_ONLY
def test_sharded_deer_values_and_gradients(results):
    data, out = results
    p = {k: data["deer/" + k] for k in ("a", "w1", "w2", "h1", "h2")}
    z0, zhat = data["deer/z0"], data["deer/zhat"]
    ref = python_loop(shplrnn_numpy(p), z0, zhat, zhat.shape[1])
    z = out["deer/sharded/z"]
    np.testing.assert_allclose(z, ref, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(z, out["deer/deer/z"], atol=2e-6, rtol=1e-6)
    assert not bool(out["deer/sharded/fell_back"])
    assert int(out["deer/sharded/iterations"]) == int(out["deer/deer/iterations"]) >= 1
    for k, name in enumerate(GRAD_NAMES):
        got, unsharded, bptt = (out[f"deer/{s}/grad{k}"] for s in ("sharded", "deer", "bptt"))
        scale = max(np.max(np.abs(bptt)), 1e-12)
        assert np.max(np.abs(got - unsharded)) / scale < 1e-5, name
        assert np.max(np.abs(got - bptt)) / scale < 1e-4, name


@JAX_ONLY
def test_argument_errors_in_process():
    import jax

    from keras_dsr.ops.sharded import sharded_deer_solve, sharded_linear_recurrence, time_mesh

    ones = np.ones((2, 8, 3), "float32")
    with pytest.raises(TypeError, match="`mesh`"):
        sharded_linear_recurrence(ones, ones, mesh="time")
    with pytest.raises(ValueError, match="`axis_name`"):
        sharded_linear_recurrence(ones, ones, mesh=time_mesh(), axis_name="batch")
    two_axes = jax.sharding.Mesh(np.array(jax.devices()[:1]).reshape(1, 1), ("batch", "time"))
    with pytest.raises(ValueError, match="`axis_name` is required"):
        sharded_linear_recurrence(ones, ones, mesh=two_axes)
    with pytest.raises(ValueError, match="`a`"):
        sharded_linear_recurrence(ones[:, :4], ones)
    with pytest.raises(TypeError, match="`linear_solver`"):
        sharded_deer_solve(lambda z, u: z + u, ones[:, 0], ones, linear_solver=None)


@pytest.mark.skipif(BACKEND == "jax", reason="checks the error raised on the other backends")
def test_other_backends_raise_clearly():
    from keras_dsr.ops.sharded import sharded_deer_solve, sharded_linear_recurrence

    ones = np.ones((2, 8, 3), "float32")
    with pytest.raises(NotImplementedError, match="JAX backend"):
        sharded_linear_recurrence(ones, ones)
    with pytest.raises(NotImplementedError, match="JAX backend"):
        sharded_deer_solve(lambda z, u: z + u, ones[:, 0], ones)
