"""Train your own DSRModel with Keras callbacks that watch the attractor, not just the loss.

Fits a clipped shPLRNN (``keras_dsr.models.DSRModel``) by GTF-DEER on random windows
of a Lorenz-63 trajectory with the model API and these callbacks, in this order:

* ``keras_dsr.callbacks.AdaptiveGTF`` - the GTF forcing alpha (adaptive GTF): at the
  start of ``fit`` it installs its schedule in the model's compiled train step
  (the same as ``DSRModel(gtf=keras_dsr.schedules.AdaptiveForcing(gamma=0.99))``);
* ``keras_dsr.callbacks.DSRMeasures`` - after every epoch, a free run from a
  validation trajectory scored by D_stsp and D_H, logged as ``val_dstsp`` /
  ``val_dh`` (it must come before the callbacks that read these keys);
* ``keras.callbacks.ModelCheckpoint`` - keeps the ``.keras`` model of the epoch with
  the lowest ``val_dstsp``;
* ``keras.callbacks.ReduceLROnPlateau`` and ``EarlyStopping`` on ``val_dstsp``;
* ``keras.callbacks.CSVLogger`` - every epoch's logs in ``training.csv``.

Then it reloads the best checkpoint and scores it on the validation trajectory (the
logged value again) and on an independent test trajectory, next to the floor of a
true trajectory.

Run:  python examples/train_with_callbacks.py                  (T = 10 000 windows, up to
                                                                3000 Adam steps; ~10 min)
      python examples/train_with_callbacks.py --output runs/cb --epochs 50
      python examples/train_with_callbacks.py --smoke          (seconds; CI smoke mode)

Prints a table of the per-epoch logs (loss, alpha, Newton iterations, val D_stsp,
val D_H, learning rate) read back from the CSV log, then
``best checkpoint: epoch k, val D_stsp = ... (logged ...)`` and
``test: D_stsp = ...   D_H = ...   (floor of an independent true trajectory: ... / ...)``.

Measured (JAX, 2 CPU cores shared with other jobs): full mode 30 epochs in ~9.5 min
(~0.18 s per step, 2.4-4 Newton iterations); ReduceLROnPlateau halved the lr from
epoch 9 on; val D_stsp fell from 14.3 to 0.25 (epoch 28, the checkpoint kept); the
reloaded best model scored test D_stsp 0.445, D_H 0.087 (floor 0.033 / 0.044).
Smoke mode: about 1 min.
"""

import argparse
import csv
import os

import numpy as np

import keras_dsr  # noqa: F401  (JAX unless a backend was chosen)
import keras
from keras_dsr.callbacks import AdaptiveGTF, DSRMeasures
from keras_dsr.data import TrajectoryWindows
from keras_dsr.measures import evaluate, power_spectrum_distance, state_space_divergence
from keras_dsr.models import DSRModel
from keras_dsr.systems import simulate, simulate_ensemble
from keras_dsr.utils import set_random_seed  # keras.utils' streams, no TF import

COLUMNS = ("loss", "alpha", "deer_iterations", "val_dstsp", "val_dh", "learning_rate")


def positive(kind):
    """argparse type: a number of ``kind`` (int or float) > 0 (argparse names the option)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI")
    parser.add_argument("--output", default="keras_dsr_callbacks",
                        help="folder for best.keras and training.csv")
    parser.add_argument("--epochs", type=positive(int), default=30)
    parser.add_argument("--steps-per-epoch", type=positive(int), default=100)
    parser.add_argument("--seq-len", type=positive(int), default=10_000)
    parser.add_argument("--hidden", type=positive(int), default=100)
    parser.add_argument("--lr", type=positive(float), default=1e-2)
    parser.add_argument("--patience", type=positive(int), default=8,
                        help="EarlyStopping patience (epochs without a lower val_dstsp)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    train_len, val_len, test_len = 100_000, 20_000, 100_000
    if args.smoke:
        args.epochs, args.steps_per_epoch, args.seq_len, args.hidden = 3, 3, 200, 16
        train_len, val_len, test_len = 5_000, 2_000, 5_000
    if not 10 <= args.seq_len <= train_len:
        parser.error(f"--seq-len must be in [10, {train_len}] (the training trajectory), "
                     f"got {args.seq_len}")
    os.makedirs(args.output, exist_ok=True)
    best_path = os.path.join(args.output, "best.keras")
    csv_path = os.path.join(args.output, "training.csv")

    # Data: training (seed), validation (seed + 1) and test (seed + 2) trajectories,
    # all standardised with the training statistics.
    train = simulate("lorenz63", train_len, seed=args.seed)
    val, test, other = [((t.clean - train.mean) / train.std).astype("float32") for t in
                        simulate_ensemble("lorenz63", max(val_len, test_len),
                                          seeds=(args.seed + 1, args.seed + 2, args.seed + 3),
                                          standardize=False)]
    val = val[:val_len]
    windows = TrajectoryWindows(train.x, seq_len=args.seq_len, batch_size=1,
                                steps_per_epoch=args.steps_per_epoch, seed=args.seed)

    set_random_seed(args.seed)
    model = DSRModel(hidden_dim=args.hidden, alpha="adaptive")   # clipped shPLRNN, GTF-DEER
    model.compile(optimizer=keras.optimizers.Adam(args.lr))      # a float lr: ReduceLROnPlateau
    callbacks = [
        AdaptiveGTF(gamma=0.99),
        DSRMeasures(val, every=1),                                # -> logs val_dstsp, val_dh
        keras.callbacks.ModelCheckpoint(best_path, monitor="val_dstsp", mode="min",
                                        save_best_only=True),
        keras.callbacks.ReduceLROnPlateau(monitor="val_dstsp", mode="min", factor=0.5,
                                          patience=2, min_lr=args.lr / 100),
        keras.callbacks.EarlyStopping(monitor="val_dstsp", mode="min", patience=args.patience),
        keras.callbacks.CSVLogger(csv_path),
    ]
    model.fit(windows, epochs=args.epochs, callbacks=callbacks, verbose=2)

    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    print("\n" + " ".join(f"{c:>15}" for c in ("epoch",) + COLUMNS))
    for row in rows:
        print(f"{int(row['epoch']) + 1:>15d} "
              + " ".join(f"{float(row[c]):>15.4g}" for c in COLUMNS))
    logged = np.array([float(r["val_dstsp"]) for r in rows])
    best_epoch = int(np.argmin(logged))          # the first minimum: what the checkpoint kept

    best = keras.saving.load_model(best_path, compile=False)   # a DSRModel (safe mode)
    again = evaluate(best, val)
    print(f"\nbest checkpoint: epoch {best_epoch + 1} of {len(rows)}, val D_stsp = "
          f"{again['dstsp']:.3f} (logged {logged[best_epoch]:.3f}), val D_H = {again['dh']:.3f}")
    s = evaluate(best, test)
    floor = {"dstsp": state_space_divergence(test, other),
             "dh": power_spectrum_distance(test, other)}
    print(f"test: D_stsp = {s['dstsp']:.3f}   D_H = {s['dh']:.3f}   (floor of an independent "
          f"true trajectory: {floor['dstsp']:.3f} / {floor['dh']:.3f})")
    print(f"files: {best_path}, {csv_path}")
    return s


if __name__ == "__main__":
    main()
