"""A Keras GRUCell solved in parallel along time by DEERLayer, next to keras.layers.RNN.

Builds the same GRU twice — ``keras.layers.RNN(cell)`` (sequential) and
``keras_dsr.layers.DEERLayer(cell)`` (Newton over parallel scans; the same
weights) — checks that their outputs agree, times both, then trains the
DEER model with ``model.fit`` on a toy regression task (predict the running mean of
a noisy signal) and reports the loss and the Newton iterations.

Run:  python examples/gru_deer.py            (T = 2000; about a minute on 2 CPU cores)
      python examples/gru_deer.py --smoke    (CI smoke mode)
"""

import argparse
import time

import numpy as np

import keras_dsr  # noqa: F401  (JAX unless a backend was chosen)
import keras
from keras_dsr.layers import DEERLayer
from keras_dsr.utils import set_random_seed  # keras.utils' streams, no TF import


def running_mean_task(n, t, seed=0):
    """Inputs ``[n, t, 1]`` (noisy signal) and targets ``[n, t, 1]`` (its running mean)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, t, 1)).astype("float32") + rng.normal(size=(n, 1, 1)).astype("float32")
    y = np.cumsum(x, axis=1) / np.arange(1, t + 1, dtype="float32")[None, :, None]
    return x, y.astype("float32")


def model_with(layer, units):
    inputs = keras.Input((None, 1))
    return keras.Model(inputs, keras.layers.Dense(1)(layer(inputs)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--length", type=int, default=2000)
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.smoke:
        args.length, args.epochs = 100, 1
    set_random_seed(0)
    x, y = running_mean_task(64, args.length)

    cell = keras.layers.GRUCell(args.units, seed=0)
    rnn = model_with(keras.layers.RNN(cell, return_sequences=True), args.units)
    deer = model_with(DEERLayer(cell, method="deer"), args.units)
    deer.layers[-1].set_weights(rnn.layers[-1].get_weights())  # the GRU cell is shared
    timings = {}
    for name, m in (("keras.layers.RNN", rnn), ("DEERLayer", deer)):
        m.predict(x[:8], verbose=0)  # compile
        t0 = time.perf_counter()
        out = m.predict(x[:8], verbose=0)
        timings[name] = (time.perf_counter() - t0, out)
    diff = np.max(np.abs(timings["DEERLayer"][1] - timings["keras.layers.RNN"][1]))
    print(f"T = {args.length}: max |DEER - RNN| = {diff:.2e}; predict time "
          + ", ".join(f"{k} {v[0] * 1e3:.1f} ms" for k, v in timings.items()))

    deer.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    history = deer.fit(x, y, batch_size=16, epochs=args.epochs, verbose=2)
    layer = deer.layers[1]
    print(f"DEERLayer(GRUCell) trained: loss {history.history['loss'][0]:.4f} -> "
          f"{history.history['loss'][-1]:.4f}; Newton iterations at the last batch: "
          f"{int(keras.ops.convert_to_numpy(layer.iterations))}")
    return diff


if __name__ == "__main__":
    main()
