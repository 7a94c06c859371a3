"""SSMModel: a class-(i) DSR model (linear recurrence, nonlinear readout).

The model reads the observed series as its *input* and predicts the next
observation (docs/method.md, "Models", class (i)):

    u_t = x_{t-1},   h_t = lambda_t (.) h_{t-1} + gamma_t (.) (B u_t),
    x_hat_t = x_{t-1} + MLP([h_t, x_{t-1}])      (residual=True)
    x_hat_t = MLP([h_t, x_{t-1}])                 (residual=False)

with ``h_0 = 0`` at the start of each window. Training is one parallel scan per
window (:class:`keras_dsr.layers.ParallelScanRNN`). Generation feeds each
prediction back in as the next input, which is where this class of models is known to
struggle on chaotic data (Hess, Götz, Durstewitz 2026): the recurrence the model was
trained with is linear; only the readout is nonlinear.

Training follows the library convention for DSR models: ``model.fit(x)`` on windows
``x`` of shape ``[B, T, N]`` of observed data alone (no ``y``); the loss (``"mse"``
by default) compares ``model(x)``, the predictions of ``x[:, 1:]`` from
``x[:, :-1]``, with ``x[:, 1:]``.
"""

import math
import warnings

import keras
import numpy as np
from keras import ops

from keras_dsr._checks import check_int
from keras_dsr.layers.parallel_scan_rnn import ParallelScanRNN
from keras_dsr.models._checks import is_array as _is_array
from keras_dsr.models._checks import validate_windows
from keras_dsr.models.engine import GuardedModel
from keras_dsr.models.free_run import FreeRunning


@keras.saving.register_keras_serializable(package="keras_dsr")
class SSMModel(FreeRunning, GuardedModel):
    """Linear-recurrence / MLP-readout model for dynamical-systems reconstruction.

    ``call(x)`` maps windows ``x [B, T, N]`` to the one-step predictions of
    ``x[:, 1:]`` from ``x[:, :-1]``, shape ``[B, T-1, N]``: with ``u = x[:, :-1]``,
    ``x_hat = u + rnn(u)`` (``residual=True``) or ``rnn(u)``, where ``rnn`` is a
    :class:`~keras_dsr.layers.ParallelScanRNN` started from ``h_0 = 0``.

    Args:
        n_features: N, the number of observed variables.
        units: number of (complex) modes of the recurrence.
        readout_units, activation, selective, complex_modes, r_min, r_max,
            max_phase, skip_input, seed: passed to ``ParallelScanRNN`` (see there).
        residual: predict the increment ``x_t - x_{t-1}`` (default True). The
            readout's output layer then starts at zero, so the untrained model is
            persistence, ``x_hat_t = x_{t-1}``.
        **kwargs: base ``keras.Model`` arguments (``name``, ``dtype``, ...).

    Training: ``model.compile(optimizer)`` (loss defaults to ``"mse"``) then
    ``model.fit(x)`` with ``x [B, T, N]`` alone; the target is ``x[:, 1:]``. Passing
    ``y`` explicitly (shape ``[B, T-1, N]``) is also allowed. ``fit`` and
    ``evaluate`` check numpy/tensor data (dtype, shape, NaN/inf) before training;
    datasets and generators are passed through unchecked (``call`` still checks
    shapes and dtype).

    Generation: :meth:`generate`.

    Example:
        >>> model = SSMModel(n_features=3, units=32)
        >>> model.compile(keras.optimizers.Adam(1e-3))
        >>> model.fit(windows, epochs=10, batch_size=16)     # windows [B, T, 3]
        >>> traj = model.generate(windows[0, -1], steps=1000)  # [1000, 3]
    """

    #: The arguments passed on to :class:`~keras_dsr.layers.ParallelScanRNN`.
    RNN_ARGS = ("units", "readout_units", "activation", "selective", "complex_modes",
                "r_min", "r_max", "max_phase", "skip_input", "seed")

    def __init__(self, n_features, units=64, readout_units=(64,), activation="gelu",
                 selective=False, complex_modes=True, r_min=0.5, r_max=0.99,
                 max_phase=2.0 * math.pi, skip_input=True, residual=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.n_features = check_int(n_features, "n_features", 1, "SSMModel")
        self.residual = bool(residual)
        # Residual: the untrained model is persistence (x_hat_t = x_{t-1}), the natural
        # baseline at a small time step, not O(1) random increments.
        self.rnn = ParallelScanRNN(
            units, units_out=self.n_features, readout_units=readout_units,
            activation=activation, selective=selective, complex_modes=complex_modes,
            r_min=r_min, r_max=r_max, max_phase=max_phase, skip_input=skip_input,
            output_initializer="zeros" if self.residual else "glorot_uniform",
            seed=seed, dtype=self.dtype_policy, name="rnn")

    # ---------------------------------------------------------------- Keras API
    def build(self, input_shape=None):
        self.rnn.build((None, None, self.n_features))

    def compile(self, optimizer="adam", loss="mse", **kwargs):
        """``keras.Model.compile`` with ``loss="mse"`` as the default."""
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        """Re-compile from a saved compile config (used by ``keras.models.load_model``)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)

    def _check_symbolic(self, x, where):
        shape = tuple(x.shape)
        dtype = keras.backend.standardize_dtype(x.dtype)
        if not keras.backend.is_float_dtype(dtype):
            raise TypeError(
                f"SSMModel.{where}: `x` must hold floating-point data, got dtype {dtype}."
            )
        if len(shape) != 3 or shape[-1] != self.n_features:
            raise ValueError(
                f"SSMModel.{where}: `x` must have shape [batch, time, {self.n_features}], "
                f"got shape {shape}."
            )
        if shape[1] is not None and shape[1] < 2:
            raise ValueError(
                f"SSMModel.{where}: `x` must have at least 2 time steps (one input, one "
                f"target), got shape {shape}."
            )

    def call(self, x):
        """Predictions of ``x[:, 1:]`` from ``x[:, :-1]``: ``[B, T-1, N]``."""
        if not hasattr(x, "dtype"):
            x = np.asarray(x)
        self._check_symbolic(x, "call")
        x = ops.cast(x, self.compute_dtype)
        u = x[:, :-1]
        y = self.rnn(u)
        return u + y if self.residual else y

    def compute_output_shape(self, input_shape):
        t = input_shape[1]
        return (input_shape[0], None if t is None else t - 1, self.n_features)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Loss of the one-step predictions; with ``y=None`` the target is ``x[:, 1:]``."""
        if y is None:
            if x is None:
                raise ValueError("SSMModel.compute_loss: need `x` (data windows) when `y` is None.")
            y = ops.cast(x, self.compute_dtype)[:, 1:]
        loss = super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )
        self.record_batch_loss(loss)
        return loss

    def training_targets(self, x, y):
        return ops.cast(x, self.compute_dtype)[:, 1:] if y is None else y

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Compiled metrics; with ``y=None`` the target is ``x[:, 1:]``."""
        if y is None and x is not None:
            y = ops.cast(x, self.compute_dtype)[:, 1:]
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def _validate_fit_args(self, where, x, y, validation_data=None):
        if _is_array(x):
            arr = validate_windows(x, self.n_features, where=f"SSMModel.{where}")
            if y is not None and _is_array(y):
                y_arr = ops.convert_to_numpy(y) if ops.is_tensor(y) else np.asarray(y)
                expected = (arr.shape[0], arr.shape[1] - 1, self.n_features)
                if tuple(y_arr.shape) != expected:
                    raise ValueError(
                        f"SSMModel.{where}: `y` must be the targets of x[:, 1:], shape "
                        f"{expected}, got {tuple(y_arr.shape)} (or pass y=None)."
                    )
        if validation_data is not None:
            val_x = validation_data
            if isinstance(validation_data, (tuple, list)):
                val_x = validation_data[0] if len(validation_data) else None
            if _is_array(val_x):
                validate_windows(val_x, self.n_features, "validation_data", f"SSMModel.{where}")

    def fit(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.fit`` after checking array data (see the class docstring).

        Non-finite steps are never applied (:class:`~keras_dsr.models.engine.GuardedModel`).
        """
        self._validate_fit_args("fit", x, y, kwargs.get("validation_data"))
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """``keras.Model.evaluate`` after checking array data."""
        self._validate_fit_args("evaluate", x, y)
        return super().evaluate(x, y, *args, **kwargs)

    # -------------------------------------------------------------- generation
    def run_initial_state(self, window):
        """``(h_{T-1}, x_T)`` of a warm-up window ``[B, T, N]``: the state before its last
        row was read, and that row (the first free step reads it in)."""
        if window.shape[1] > 1:
            h = self.rnn.compute_states(window[:, :-1])[:, -1]
        else:
            h = ops.zeros((ops.shape(window)[0], self.rnn.state_size), dtype=window.dtype)
        return h, window[:, -1]

    def run_step(self, state):
        h_prev, x_prev = state
        y, h = self.rnn.step(h_prev, x_prev)
        return h, (x_prev + y if self.residual else y)

    def run_observe(self, states):
        return states[1]

    def generate(self, x0=None, steps=None, burn_in=0, return_latent=False, return_state=False,
                 state=None):
        """Free-running trajectory: each prediction is fed back as the next input.

        Args:
            x0: initial condition, numpy-like of shape ``[B, N]`` or ``[N]``, or a
                warm-up window ``[B, T0, N]``. A window is read in (parallel scan
                from ``h_0 = 0``) to set the hidden state; generation then continues
                after its last row. ``[B, N]`` is the window of length 1.
            steps: number of steps returned (positive integer).
            burn_in: steps run first and dropped (int >= 0).
            return_latent: also return the hidden states.
            return_state: also return the last state ``(h, x)``; pass it as ``state``
                to continue the run.
            state: a state ``(h [B, S], x [B, N])`` returned earlier, instead of ``x0``.

        Returns:
            numpy ``x`` of shape ``[B, steps, N]`` (``[steps, N]`` when ``x0`` is
            1-D); row 0 is the step after ``x0`` (after the window's last row). With
            ``return_latent=True`` also ``h`` (``[B, steps, S]``, ``S =
            rnn.state_size``, layout ``[Re h, Im h]``), the state that ``x`` of the
            same row was read out from; with ``return_state`` the last state.

        A trajectory that becomes NaN/inf (the model diverged in free running, a
        known failure of this model class) is returned as is, with a
        ``RuntimeWarning`` naming the first bad step (1-based), as ``DSRModel``
        does. The loop is the shared compiled free run
        (:class:`~keras_dsr.models.free_run.FreeRunning`).

        Example:
            >>> traj = model.generate(x_test[0], steps=5000)   # x_test [T, N]
        """
        steps = check_int(steps, "steps", 1, "SSMModel.generate")
        burn_in = check_int(burn_in, "burn_in", 0, "SSMModel.generate")
        if (x0 is None) == (state is None):
            raise ValueError("SSMModel.generate: give exactly one of `x0` and `state`.")
        if not self.built:
            self.build((None, None, self.n_features))
        squeeze = False
        if state is not None:
            h, x = (np.asarray(ops.convert_to_numpy(s) if ops.is_tensor(s) else s, "float32")
                    for s in state)
            squeeze = x.ndim == 1
            h, x = (h[None], x[None]) if squeeze else (h, x)
            if h.shape != (x.shape[0], self.rnn.state_size) or x.shape[1:] != (self.n_features,):
                raise ValueError(f"SSMModel.generate: `state` must be (h [B, {self.rnn.state_size}]"
                                 f", x [B, {self.n_features}]), got {h.shape}, {x.shape}.")
            start = (ops.convert_to_tensor(h), ops.convert_to_tensor(x))
        else:
            arr = ops.convert_to_numpy(x0) if ops.is_tensor(x0) else np.asarray(x0)
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(
                    f"SSMModel.generate: `x0` must hold real numbers, got dtype {arr.dtype}.")
            squeeze = arr.ndim == 1
            if arr.ndim == 1:
                arr = arr[None, None, :]
            elif arr.ndim == 2:
                arr = arr[:, None, :]
            if (arr.ndim != 3 or arr.shape[-1] != self.n_features or arr.shape[0] < 1
                    or arr.shape[1] < 1):
                raise ValueError(
                    f"SSMModel.generate: `x0` must have shape [{self.n_features}], "
                    f"[batch, {self.n_features}] or a window [batch, time, {self.n_features}], "
                    f"got shape {np.asarray(x0).shape}."
                )
            if not np.isfinite(arr).all():
                raise ValueError("SSMModel.generate: `x0` contains NaN or inf.")
            start = self.run_initial_state(ops.convert_to_tensor(arr.astype(self.compute_dtype)))
        hs, xs = (np.asarray(ops.convert_to_numpy(t)) for t in
                  self.free_run(start, int(burn_in) + int(steps)))
        last = (hs[:, -1], xs[:, -1])
        hs, xs = hs[:, burn_in:], xs[:, burn_in:]
        finite = np.isfinite(xs).all(axis=(0, 2))
        if not finite.all():
            step = int(np.argmin(finite)) + 1
            warnings.warn(
                f"SSMModel.generate: the trajectory became non-finite (NaN/inf) at step "
                f"{step} of {steps}: the model diverged in free running.",
                RuntimeWarning,
                stacklevel=2,
            )
        if squeeze:
            xs, hs, last = xs[0], hs[0], (last[0][0], last[1][0])
        out = (xs,) + ((hs,) if return_latent else ()) + ((last,) if return_state else ())
        return out if len(out) > 1 else xs

    # ------------------------------------------------------------------ config
    def get_config(self):
        config = super().get_config()
        rnn = self.rnn.get_config()
        config.update({name: rnn[name] for name in self.RNN_ARGS})
        config.update(n_features=self.n_features, residual=self.residual)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
