"""Data-parallel DSRModel training (keras.distribution.DataParallel) on 4 simulated CPU devices.

In one subprocess (XLA fixes its device count at start-up) the same model is
trained from the same seed twice, on one device and with DataParallel over four;
the losses, the logged diagnostics and the final weights must agree to float32
rounding, and the batches must really have been split over the devices.
"""

import numpy as np

from _multidevice import JAX_SESSION_ONLY, run_worker_on_array

WORKER = r"""
import sys
import numpy as np
import jax
import keras
import keras_dsr
from keras_dsr.callbacks import ConstantAlpha
from keras_dsr.layers.gtf_deer import GTFDEERLayer
from keras_dsr.models import DSRModel

devices = jax.devices()
assert len(devices) == 4, devices
x = np.load(sys.argv[1])
shardings = []
call = GTFDEERLayer.call

def spy(self, x, training=None):  # records how each batch is laid out over the devices
    jax.debug.inspect_array_sharding(x, callback=lambda s: shardings.append(str(s)))
    return call(self, x, training)

GTFDEERLayer.call = spy
out = {}
for name, distribution in [("single", None),
                           ("data_parallel", keras.distribution.DataParallel(devices=devices))]:
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(0)
    shardings.clear()
    # alpha starts at 1 and ConstantAlpha sets 0.3 from a callback: the value must reach
    # the (replicated) state of the compiled train step.
    model = DSRModel(hidden_dim=16, alpha=1.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = model.fit(x, batch_size=8, epochs=3, shuffle=False, verbose=0,
                        callbacks=[ConstantAlpha(0.3)])
    for key, values in history.history.items():
        out[f"{name}/{key}"] = np.asarray(values)
    for k, v in enumerate(model.trainable_weights):
        out[f"{name}/w{k}"] = np.asarray(v.value)
    out[f"{name}/generate"] = model.generate(x[:8, 0], 50)
    out[f"{name}/sharding"] = np.array(shardings[-1])
keras.distribution.set_distribution(None)
np.savez(sys.argv[2], **out)
"""


@JAX_SESSION_ONLY
def test_data_parallel_training_matches_single_device(tmp_path):
    rng = np.random.default_rng(0)
    # Random-walk windows [B=16, T=64, N=3]: 2 batches of 8 per epoch.
    x = (0.05 * np.cumsum(rng.normal(size=(16, 64, 3)), axis=1)).astype("float32")
    out = run_worker_on_array(WORKER, x, tmp_path)
    # The distributed batches were split along the batch axis over the 4 devices.
    assert "'batch': 4" in str(out["data_parallel/sharding"]), out["data_parallel/sharding"]
    assert "spec=P('batch'" in str(out["data_parallel/sharding"])
    assert "'batch'" not in str(out["single/sharding"])  # one device: not split
    np.testing.assert_allclose(out["data_parallel/alpha"], 0.3, rtol=1e-6)
    assert np.all(out["single/loss"] > 0) and out["single/loss"][-1] < out["single/loss"][0]
    for key in ("loss", "alpha", "deer_iterations", "deer_fallbacks", "gtf_norm"):
        np.testing.assert_allclose(out[f"data_parallel/{key}"], out[f"single/{key}"],
                                   rtol=1e-5, atol=1e-7, err_msg=key)
    weights = sorted(k.split("/")[1] for k in out if k.startswith("single/w"))
    assert len(weights) == 5  # a, W1, W2, h1, h2 of the clipped shPLRNN
    for key in weights:
        np.testing.assert_allclose(out[f"data_parallel/{key}"], out[f"single/{key}"],
                                   rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(out["data_parallel/generate"], out["single/generate"],
                               rtol=1e-4, atol=1e-5)
