"""The :class:`DSRMeasures` callback: DSR measures in the training logs."""

import warnings

import keras
import numpy as np

from keras_dsr._checks import check_int
from keras_dsr import measures as _m

__all__ = ["DSRMeasures"]


@keras.saving.register_keras_serializable(package="keras_dsr")
class DSRMeasures(keras.callbacks.Callback):
    """Evaluate D_stsp, D_H (and optionally PE, lambda_max) during ``fit``.

    Every ``every`` epochs (epochs 0, every, 2*every, ... counted from 0) the
    model generates a free-running trajectory by the protocol of docs/method.md, "Evaluation measures" (from
    ``x_test[init_index]``, ``1.25 * T_test`` steps, the first ``0.25 * T_test``
    dropped) and the measures of :mod:`keras_dsr.measures` are written into the
    epoch logs as ``val_dstsp``, ``val_dh`` and, if requested, ``val_pe`` and
    ``val_lyap`` (the prefix is configurable). On the epochs in between the
    last values are repeated, so that every epoch's logs hold the keys.

    Because the logs dict is shared, callbacks that read these keys
    (``EarlyStopping(monitor="val_dstsp")``, ``ModelCheckpoint(save_best_only=True,
    monitor="val_dstsp", mode="min")``, keras-tuner objectives such as
    ``keras_tuner.Objective("val_dstsp", "min")``) must come *after* this callback
    in the ``callbacks`` list (keras-tuner appends its own at the end).

    A diverging model (NaN/inf generated) gets ``inf`` for the affected measures,
    with a ``RuntimeWarning``.

    The model must provide ``generate(x0 [B, N], steps) -> [B, steps, N]`` and,
    for ``lyapunov=True``, ``generate(..., return_latent=True)`` and
    ``cell.jacobian``.

    Args:
        x_test: test trajectory ``[T, N]`` (same scaling as the training data).
        every: evaluate every ``every`` epochs (integer >= 1).
        init_index: index of the initial condition in ``x_test``.
        pe_steps: if an integer n, also log PE(n) (``val_pe``) from up to
            ``pe_max_inits`` initial conditions.
        lyapunov: also log the model's lambda_max per time unit (``val_lyap``);
            requires ``dt``.
        dt: sampling interval of the data (time units), for ``val_lyap``.
        n_bins, sigma: D_stsp bins per dimension and D_H smoothing width.
        prefix: prefix of the log keys.
        verbose: 1 prints the measures when they are computed.

    Example:
        >>> cb = DSRMeasures(x_test, every=5)                         # doctest: +SKIP
        >>> stop = keras.callbacks.EarlyStopping("val_dstsp", patience=3)  # doctest: +SKIP
        >>> model.fit(ds, epochs=100, callbacks=[cb, stop])          # doctest: +SKIP
    """

    def __init__(self, x_test, every=1, init_index=0, pe_steps=None, pe_max_inits=1000,
                 lyapunov=False, dt=None, lyap_steps=10_000, n_bins=30, sigma=20.0,
                 prefix="val_", verbose=0):
        super().__init__()
        x = np.asarray(x_test, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 10:
            raise ValueError(f"x_test must have shape [T, N] with T >= 10, got {x.shape}.")
        if not np.all(np.isfinite(x)):
            raise ValueError("x_test contains NaN or inf.")
        check_int(every, "every (epochs)")
        check_int(pe_steps, "pe_steps", allow_none=True)
        if lyapunov and (dt is None or not dt > 0):
            raise ValueError("lyapunov=True needs dt, the sampling interval (> 0).")
        if not -x.shape[0] <= int(init_index) < x.shape[0]:
            raise ValueError(f"init_index must index x_test, got {init_index}.")
        self.x_test = x
        self.every = int(every)
        self.init_index = int(init_index)
        self.pe_steps = pe_steps
        self.pe_max_inits = pe_max_inits
        self.lyapunov = bool(lyapunov)
        self.dt = dt
        self.lyap_steps = int(lyap_steps)
        self.n_bins = int(n_bins)
        self.sigma = float(sigma)
        self.prefix = str(prefix)
        self.verbose = int(verbose)
        self.last = {}
        self.history = []

    def get_config(self):
        """All constructor arguments (``x_test`` as a nested list: large for long tests)."""
        return {
            "x_test": self.x_test.tolist(), "every": self.every,
            "init_index": self.init_index, "pe_steps": self.pe_steps,
            "pe_max_inits": self.pe_max_inits, "lyapunov": self.lyapunov, "dt": self.dt,
            "lyap_steps": self.lyap_steps, "n_bins": self.n_bins, "sigma": self.sigma,
            "prefix": self.prefix, "verbose": self.verbose,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def compute(self):
        """Compute the measures now; returns ``{key: value}`` with prefixed keys."""
        names = ["dstsp", "dh"]
        if self.pe_steps is not None:
            names.append("pe")
        if self.lyapunov:
            names.append("lyap")
        with warnings.catch_warnings():
            warnings.simplefilter("always", RuntimeWarning)
            vals = _m.evaluate(
                self.model, self.x_test, measures=names, dt=self.dt,
                init_index=self.init_index, n_bins=self.n_bins, sigma=self.sigma,
                pe_steps=self.pe_steps or 20, pe_max_inits=self.pe_max_inits,
                lyap_steps=self.lyap_steps,
            )
        return {self.prefix + k: float(v) for k, v in vals.items()}

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every == 0 or not self.last:
            self.last = self.compute()
            self.history.append((int(epoch), dict(self.last)))
            if self.verbose:
                txt = " - ".join(f"{k}: {v:.4g}" for k, v in self.last.items())
                print(f"\nEpoch {epoch + 1}: DSRMeasures {txt}")
        if logs is not None:
            logs.update(self.last)
