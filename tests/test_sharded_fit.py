"""Sequence-parallel DSRModel.fit on 4 simulated CPU devices (JAX only).

In one subprocess (XLA fixes its device count at start-up) the same model is trained
from the same weights three times: on one device; with the time axis of every window
split over the 4 devices (``solver_options={"linear_solver": ShardedScan()}``); and on a
2 x 2 mesh, batch split over one axis by ``keras.distribution`` and time over the other
by ``ShardedScan("time", mesh)``. Losses, diagnostics and final weights must agree to
float32 rounding, and the scans must really have run sharded.
"""

import numpy as np

from _multidevice import JAX_SESSION_ONLY, run_worker_on_array

WORKER = r"""
import sys
import numpy as np
import jax
import keras
import keras_dsr
from keras_dsr.cells import ClippedShallowPLRNN
from keras_dsr.layers.gtf_deer import GTFDEERLayer
from keras_dsr.models import DSRModel
from keras_dsr.ops import solvers
from keras_dsr.schedules import ConstantForcing

devices = jax.devices()
assert len(devices) == 4, devices
x = np.load(sys.argv[1])
batches, scans = [], []
call, scan = GTFDEERLayer.call, solvers.ShardedScan.__call__

def spy_call(self, x, training=None):  # how each batch is laid out over the devices
    jax.debug.inspect_array_sharding(x, callback=lambda s: batches.append(str(s)))
    return call(self, x, training)

def spy_scan(self, a, b, h0=None):  # traced into the train step: the mesh it shards over
    shape = dict(self.mesh.shape) if self.mesh is not None else {"time": len(jax.devices())}
    scans.append(f"{shape} {self.axis_name!r}")
    return scan(self, a, b, h0)

GTFDEERLayer.call, solvers.ShardedScan.__call__ = spy_call, spy_scan
mesh = jax.sharding.Mesh(np.array(devices).reshape(2, 2), ("batch", "time"))
keras_mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "time"], devices=devices)
cases = [
    ("single", None, {}),
    ("time", None, {"linear_solver": solvers.ShardedScan()}),
    ("batch_time",
     keras.distribution.ModelParallel(layout_map=keras.distribution.LayoutMap(keras_mesh),
                                      batch_dim_name="batch"),
     {"linear_solver": solvers.ShardedScan("time", mesh=mesh)}),
]
out = {}
for name, distribution, options in cases:
    keras.distribution.set_distribution(distribution)
    batches.clear(), scans.clear()
    model = DSRModel(cell=ClippedShallowPLRNN(3, 16, seed=1), gtf=ConstantForcing(0.2),
                     solver_options=options)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, batch_size=2, epochs=3, shuffle=False, verbose=0)
    for key, values in history.history.items():
        out[f"{name}/{key}"] = np.asarray(values)
    for k, w in enumerate(model.trainable_weights):
        out[f"{name}/w{k}"] = np.asarray(w.value)
    out[f"{name}/batch"] = np.array(batches[-1])
    out[f"{name}/scan"] = np.array(scans[-1] if scans else "")
    clone = DSRModel.from_config(model.get_config())
    out[f"{name}/config"] = np.array(type(clone.gtf.linear_solver).__name__)
keras.distribution.set_distribution(None)
np.savez(sys.argv[2], **out)
"""


@JAX_SESSION_ONLY
def test_sequence_parallel_fit_matches_single_device(tmp_path):
    rng = np.random.default_rng(0)
    # Random-walk windows [B=4, T=65, N=3]: 64 forced steps per window, 16 per device.
    x = (0.1 * np.cumsum(rng.normal(size=(4, 65, 3)), axis=1)).astype("float32")
    out = {k: (str(v) if v.dtype.kind == "U" else v)
           for k, v in run_worker_on_array(WORKER, x, tmp_path).items()}
    # The train steps solved with the sharded scans (the sharded scan's own layout
    # and values are tested in test_sharded.py), and the batch was split over 'batch'.
    assert out["time/scan"] == "{'time': 4} None", out["time/scan"]
    assert out["batch_time/scan"] == "{'batch': 2, 'time': 2} 'time'", out["batch_time/scan"]
    assert "spec=P('batch'" in out["batch_time/batch"], out["batch_time/batch"]
    assert out["single/scan"] == ""
    assert out["time/config"] == out["batch_time/config"] == "ShardedScan"  # round trip
    assert np.all(out["single/loss"] > 0) and out["single/loss"][-1] < out["single/loss"][0]
    for name in ("time", "batch_time"):
        for key in ("loss", "deer_iterations", "deer_fallbacks"):
            np.testing.assert_allclose(out[f"{name}/{key}"], out[f"single/{key}"],
                                       rtol=1e-5, atol=1e-7, err_msg=f"{name} {key}")
        weights = sorted(k.split("/")[1] for k in out if k.startswith("single/w"))
        assert len(weights) == 5  # a, W1, W2, h1, h2 of the clipped shPLRNN
        for key in weights:
            np.testing.assert_allclose(out[f"{name}/{key}"], out[f"single/{key}"],
                                       rtol=1e-5, atol=1e-6, err_msg=f"{name} {key}")
