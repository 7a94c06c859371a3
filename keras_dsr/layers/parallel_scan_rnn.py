"""Linear recurrence + nonlinear readout, evaluated by a parallel scan (class (i)).

``ParallelScanRNN`` is the S4/S5/LRU/Mamba-style comparison model of the library: a
*linear*, input-driven recurrence whose state is read out by an MLP,

    h_t = lambda_t (.) h_{t-1} + gamma_t (.) (B u_t),        h_0 = 0 (or given)
    y_t = MLP([Re h_t, Im h_t, u_t])                          (u_t only if skip_input)

Because the recurrence is linear in ``h``, the whole sequence ``h_1 .. h_T`` is one
call of :func:`keras_dsr.ops.linear_recurrence` (an associative scan, depth
O(log T)); no Newton iteration is needed (contrast with DEER, docs/method.md "DEER").

Parametrisation (LRU, Orvieto et al. 2023, "Resurrecting recurrent neural networks
for long sequences"):

* ``complex_modes=True`` (default): ``units`` complex modes with
  ``lambda = exp(-exp(nu) + i exp(theta))``. ``|lambda| = exp(-exp(nu)) < 1`` for
  every real ``nu``, so the recurrence is stable by construction, and the phase
  ``exp(theta) > 0`` lets modes oscillate. Complex numbers are carried as separate
  real and imaginary parts; the state vector is ``[Re h, Im h]`` (size
  ``2 * units``), and the scan uses for each mode the real 2x2 block
  ``[[Re l, -Im l], [Im l, Re l]]`` (complex multiplication) with the modes moved to
  a batch axis, so the work stays O(T * units).
* ``complex_modes=False``: ``units`` real modes, ``lambda = exp(-exp(nu))`` in (0, 1)
  (no oscillation within one mode); state size ``units``.
* Ring initialisation: ``|lambda|`` is drawn uniformly *on the area* of the ring
  ``r_min <= |lambda| <= r_max`` (``|lambda|^2 ~ U(r_min^2, r_max^2)``), the phase
  uniformly in ``(0, max_phase)``.
* Input normalisation: ``gamma = sqrt(1 - |lambda|^2)`` scales ``B u_t`` so that
  white-noise inputs give states of the same size whatever the decay. Here gamma is
  *tied* to lambda (recomputed from it at every step, as
  ``sqrt(-expm1(-2 exp(nu)))``), not a separate trainable vector as in the LRU
  paper; it therefore stays a correct normalisation while lambda is trained and is
  well defined for the input-dependent decay below.
* ``B`` (complex: ``B_re + i B_im``) is initialised ``N(0, 1/(2D))`` per part
  (real variant ``N(0, 1/D)``), ``D`` the input size.

Selective variant (``selective=True``, Mamba-like, Gu & Dao 2023): the decay of each
step depends on the input through a softplus-ed projection

    delta_t = softplus(u_t W_delta + b_delta)       (shape [units], > 0)
    lambda_t = exp(delta_t * (-exp(nu) + i exp(theta)))
    gamma_t = sqrt(1 - |lambda_t|^2)

``b_delta`` starts at softplus^-1(1) and ``W_delta`` small, so at initialisation the
selective layer is close to the time-invariant one. ``|lambda_t| < 1`` for every
input, so it is stable too.

The readout is an MLP (``readout_units`` hidden layers with ``activation``) followed
by a linear map to ``units_out``; with ``skip_input=True`` the input ``u_t`` enters
the readout next to the state (the ``D u_t`` feed-through of S4/S5/LRU).
"""

import math

import keras
import numpy as np
from keras import ops

from keras_dsr._checks import check_int
from keras_dsr.layers._recurrence import _solve_recurrence

_SOFTPLUS_INV_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_INV_ONE) == 1


def _as_float_tensor(x, name, dtype):
    """``x`` as a tensor of ``dtype``; TypeError unless it holds floating-point data."""
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    if not keras.backend.is_float_dtype(keras.backend.standardize_dtype(x.dtype)):
        raise TypeError(
            f"ParallelScanRNN: `{name}` must hold floating-point data, got dtype "
            f"{keras.backend.standardize_dtype(x.dtype)}."
        )
    return ops.cast(ops.convert_to_tensor(x), dtype)


@keras.saving.register_keras_serializable(package="keras_dsr")
class ParallelScanRNN(keras.layers.Layer):
    """Linear diagonal recurrence (LRU parametrisation) with an MLP readout.

    Computes, for inputs ``u`` of shape ``[B, T, D]``,

        h_t = lambda_t (.) h_{t-1} + gamma_t (.) (B u_t),  t = 1..T
        y_t = MLP([Re h_t, Im h_t, u_t])

    with all ``h_t`` obtained at once by a parallel associative scan
    (:func:`keras_dsr.ops.linear_recurrence`). See the module docstring for the
    parametrisation ``lambda = exp(-exp(nu) + i exp(theta))``, the ring
    initialisation, the tied normalisation ``gamma = sqrt(1 - |lambda|^2)`` and the
    selective (input-dependent decay) variant.

    Args:
        units: number of modes (complex modes when ``complex_modes``; the real state
            then has ``2 * units`` entries, see ``state_size``).
        units_out: size of the output ``y_t``.
        readout_units: sizes of the hidden layers of the readout MLP (``()``: a
            linear readout).
        activation: activation of the hidden readout layers (default ``"gelu"``).
        selective: input-dependent decay ``delta_t = softplus(u_t W + b)``.
        complex_modes: complex (oscillating) modes, or real decaying ones.
        r_min, r_max: ring of the initial ``|lambda|``, ``0 <= r_min < r_max < 1``.
        max_phase: initial phases are uniform in ``(0, max_phase)``, ``max_phase > 0``
            (complex modes only).
        skip_input: feed ``u_t`` into the readout next to the state.
        output_initializer: initializer of the readout's last (linear) kernel
            (default Glorot uniform; ``"zeros"`` makes the untrained layer output 0).
        seed: integer seed of the initialisation (None: numpy's global generator,
            which ``keras.utils.set_random_seed`` also seeds).
        **kwargs: base ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Input: ``[B, T, D]`` floats. Output: ``[B, T, units_out]``.
    ``call(inputs, initial_state=None)``: ``initial_state`` is ``h_0`` of shape
    ``[B, state_size]`` (zeros when None).

    Single steps (generation): ``y, h = layer.step(h, u)`` with ``h`` of shape
    ``[B, state_size]`` and ``u`` of shape ``[B, D]``; looping ``step`` over t from
    ``h = layer.get_initial_state(B)`` reproduces ``call`` (to float rounding).

    Example:
        >>> layer = ParallelScanRNN(16, units_out=3, readout_units=(32,))
        >>> y = layer(np.zeros((2, 100, 3), "float32"))      # shape (2, 100, 3)
        >>> h = layer.get_initial_state(2)
        >>> y0, h = layer.step(h, np.zeros((2, 3), "float32"))  # y0 == y[:, 0]
    """

    def __init__(
        self,
        units,
        units_out,
        readout_units=(64,),
        activation="gelu",
        selective=False,
        complex_modes=True,
        r_min=0.5,
        r_max=0.99,
        max_phase=2.0 * math.pi,
        skip_input=True,
        output_initializer="glorot_uniform",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_int(units, "units", 1, "ParallelScanRNN")
        self.units_out = check_int(units_out, "units_out", 1, "ParallelScanRNN")
        if isinstance(readout_units, (int, np.integer)):
            readout_units = (readout_units,)
        if not isinstance(readout_units, (list, tuple)):
            raise ValueError(
                "ParallelScanRNN: `readout_units` must be a list/tuple of positive "
                f"integers (hidden layer sizes), got {readout_units!r}."
            )
        self.readout_units = tuple(
            check_int(n, "readout_units[i]", 1, "ParallelScanRNN") for n in readout_units
        )
        self.activation = keras.activations.get(activation)
        self.selective = bool(selective)
        self.complex_modes = bool(complex_modes)
        r_min, r_max, max_phase = float(r_min), float(r_max), float(max_phase)
        if not 0.0 <= r_min < r_max < 1.0:
            raise ValueError(
                "ParallelScanRNN: need 0 <= `r_min` < `r_max` < 1 (ring of initial "
                f"|lambda|), got r_min={r_min}, r_max={r_max}."
            )
        if not max_phase > 0.0:
            raise ValueError(f"ParallelScanRNN: `max_phase` must be > 0, got {max_phase}.")
        self.r_min, self.r_max, self.max_phase = r_min, r_max, max_phase
        self.skip_input = bool(skip_input)
        self.seed = check_int(seed, "seed", low=0, where="ParallelScanRNN", allow_none=True)
        self.hidden_layers = [
            keras.layers.Dense(
                n,
                activation=self.activation,
                kernel_initializer=keras.initializers.GlorotUniform(self._sub_seed(k)),
                name=f"readout_hidden_{k}",
                dtype=self.dtype_policy,
            )
            for k, n in enumerate(self.readout_units)
        ]
        self.output_initializer = keras.initializers.get(output_initializer)
        out_init = self.output_initializer
        out_config = out_init.get_config() if hasattr(out_init, "get_config") else {}
        if self.seed is not None and "seed" in out_config and out_config["seed"] is None:
            out_config["seed"] = self._sub_seed(len(self.readout_units))
            out_init = out_init.__class__.from_config(out_config)
        self.output_layer = keras.layers.Dense(
            self.units_out,
            kernel_initializer=out_init,
            name="readout_out",
            dtype=self.dtype_policy,
        )

    def _sub_seed(self, k):
        return None if self.seed is None else self.seed + 1 + k

    @property
    def state_size(self):
        """Size of the real state vector: ``2 * units`` (complex) or ``units``."""
        return 2 * self.units if self.complex_modes else self.units

    # ------------------------------------------------------------------ build
    def _rng(self):
        return np.random if self.seed is None else np.random.RandomState(self.seed)

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                "ParallelScanRNN: inputs must have shape [batch, time, features] with "
                f"a known number of features, got {tuple(input_shape)}."
            )
        d = int(input_shape[-1])
        self.input_size = d
        m = self.units
        rng = self._rng()
        # Ring initialisation: |lambda|^2 uniform in [r_min^2, r_max^2].
        u1 = rng.uniform(size=m)
        r2 = u1 * (self.r_max**2 - self.r_min**2) + self.r_min**2
        r2 = np.clip(r2, 1e-12, None)
        nu_log = np.log(-0.5 * np.log(r2))  # exp(-exp(nu_log)) = sqrt(r2)
        self.nu_log = self.add_weight(
            shape=(m,), initializer=keras.initializers.Constant(nu_log), name="nu_log"
        )
        if self.complex_modes:
            u2 = rng.uniform(low=1e-6, high=1.0, size=m)
            theta_log = np.log(self.max_phase * u2)
            self.theta_log = self.add_weight(
                shape=(m,), initializer=keras.initializers.Constant(theta_log), name="theta_log"
            )
            scale = 1.0 / math.sqrt(2.0 * d)
            self.B_re = self.add_weight(
                shape=(d, m),
                initializer=keras.initializers.Constant(rng.normal(size=(d, m)) * scale),
                name="B_re",
            )
            self.B_im = self.add_weight(
                shape=(d, m),
                initializer=keras.initializers.Constant(rng.normal(size=(d, m)) * scale),
                name="B_im",
            )
        else:
            self.B_re = self.add_weight(
                shape=(d, m),
                initializer=keras.initializers.Constant(rng.normal(size=(d, m)) / math.sqrt(d)),
                name="B",
            )
        if self.selective:
            self.delta_kernel = self.add_weight(
                shape=(d, m),
                initializer=keras.initializers.Constant(
                    rng.normal(size=(d, m)) * 0.1 / math.sqrt(d)
                ),
                name="delta_kernel",
            )
            self.delta_bias = self.add_weight(
                shape=(m,),
                initializer=keras.initializers.Constant(np.full(m, _SOFTPLUS_INV_ONE)),
                name="delta_bias",
            )
        features = self.state_size + (d if self.skip_input else 0)
        for layer in self.hidden_layers:
            layer.build((None, features))
            features = layer.units
        self.output_layer.build((None, features))

    # ------------------------------------------------------------ the maths
    def _coefficients(self, u):
        """Per-step coefficients for inputs ``u`` of shape ``[..., D]``.

        Returns ``(lam_re, lam_im, b_re, b_im)`` of shape ``[..., units]``
        (``lam_im``/``b_im`` are None for real modes); for a time-invariant layer the
        ``lam`` parts have shape ``[units]``.
        """
        rate = ops.exp(self.nu_log)  # -log|lambda|
        phase = ops.exp(self.theta_log) if self.complex_modes else None
        if self.selective:
            delta = ops.softplus(ops.matmul(u, self.delta_kernel) + self.delta_bias)
            rate = delta * rate
            if phase is not None:
                phase = delta * phase
        modulus = ops.exp(-rate)
        gamma = ops.sqrt(-ops.expm1(-2.0 * rate))  # sqrt(1 - |lambda|^2)
        b_re = gamma * ops.matmul(u, self.B_re)
        if not self.complex_modes:
            return modulus, None, b_re, None
        b_im = gamma * ops.matmul(u, self.B_im)
        return modulus * ops.cos(phase), modulus * ops.sin(phase), b_re, b_im

    def readout(self, h, u):
        """``y = MLP([h, u])`` (``u`` only with ``skip_input``); ``h [..., state_size]``."""
        z = ops.concatenate([h, u], axis=-1) if self.skip_input else h
        for layer in self.hidden_layers:
            z = layer(z)
        return self.output_layer(z)

    def _check_inputs(self, inputs, where):
        shape = tuple(inputs.shape)
        if len(shape) != 3:
            raise ValueError(
                f"ParallelScanRNN.{where}: `inputs` must have shape [batch, time, "
                f"features], got shape {shape}."
            )
        if shape[-1] != self.input_size:
            raise ValueError(
                f"ParallelScanRNN.{where}: `inputs` must have {self.input_size} features "
                f"(last axis), got shape {shape}."
            )

    def compute_states(self, inputs, initial_state=None):
        """All states ``h_1 .. h_T``: ``[B, T, state_size]`` (``[Re h, Im h]`` layout).

        Args:
            inputs: ``u`` of shape ``[B, T, D]``.
            initial_state: optional ``h_0`` of shape ``[B, state_size]``.
        """
        inputs = _as_float_tensor(inputs, "inputs", self.compute_dtype)
        if not self.built:
            self.build(tuple(inputs.shape))
        self._check_inputs(inputs, "compute_states")
        if initial_state is not None:
            initial_state = ops.convert_to_tensor(initial_state, dtype=self.compute_dtype)
            if tuple(initial_state.shape)[-1:] != (self.state_size,) or len(initial_state.shape) != 2:
                raise ValueError(
                    "ParallelScanRNN: `initial_state` must have shape [batch, "
                    f"{self.state_size}], got {tuple(initial_state.shape)}."
                )
        lam_re, lam_im, b_re, b_im = self._coefficients(inputs)
        zeros = ops.zeros_like(b_re)
        lam_re = lam_re + zeros  # broadcast a time-invariant lambda to [B, T, M]
        if not self.complex_modes:
            return _solve_recurrence(lam_re, b_re, initial_state, dense=False)
        lam_im = lam_im + zeros
        # Complex mode j as the real 2x2 block [[re, -im], [im, re]]; modes -> batch axis.
        a = ops.stack(
            [ops.stack([lam_re, -lam_im], axis=-1), ops.stack([lam_im, lam_re], axis=-1)],
            axis=-2,
        )  # [B, T, M, 2, 2]
        a = ops.transpose(a, (0, 2, 1, 3, 4))  # [B, M, T, 2, 2]
        b = ops.transpose(ops.stack([b_re, b_im], axis=-1), (0, 2, 1, 3))  # [B, M, T, 2]
        h0 = None
        if initial_state is not None:
            m = self.units
            h0 = ops.stack([initial_state[:, :m], initial_state[:, m:]], axis=-1)  # [B, M, 2]
        h = _solve_recurrence(a, b, h0, dense=True)  # [B, M, T, 2]
        h_re = ops.transpose(h[..., 0], (0, 2, 1))
        h_im = ops.transpose(h[..., 1], (0, 2, 1))
        return ops.concatenate([h_re, h_im], axis=-1)

    def call(self, inputs, initial_state=None):
        h = self.compute_states(inputs, initial_state=initial_state)
        return self.readout(h, ops.cast(inputs, h.dtype))

    def advance(self, h, u):
        """One step of the state recurrence: ``h_t`` from ``h_{t-1}`` ``[B, S]`` and ``u_t`` ``[B, D]``."""
        lam_re, lam_im, b_re, b_im = self._coefficients(u)
        if not self.complex_modes:
            return lam_re * h + b_re
        m = self.units
        h_re, h_im = h[..., :m], h[..., m:]
        new_re = lam_re * h_re - lam_im * h_im + b_re
        new_im = lam_im * h_re + lam_re * h_im + b_im
        return ops.concatenate([new_re, new_im], axis=-1)

    def step(self, h, u):
        """One recurrent step for generation.

        Args:
            h: ``h_{t-1}``, shape ``[B, state_size]``.
            u: ``u_t``, shape ``[B, D]``.

        Returns:
            ``(y_t, h_t)``: output ``[B, units_out]`` and new state ``[B, state_size]``.
        """
        h = _as_float_tensor(h, "h", self.compute_dtype)
        u = _as_float_tensor(u, "u", self.compute_dtype)
        if not self.built:
            self.build((None, None, u.shape[-1]))
        if u.shape[-1] != self.input_size or h.shape[-1] != self.state_size:
            raise ValueError(
                f"ParallelScanRNN.step: expected `h` [batch, {self.state_size}] and `u` "
                f"[batch, {self.input_size}], got {tuple(h.shape)} and {tuple(u.shape)}."
            )
        h_new = self.advance(h, u)
        return self.readout(h_new, u), h_new

    def get_initial_state(self, batch_size):
        """Zero state ``h_0`` of shape ``[batch_size, state_size]``."""
        return ops.zeros((batch_size, self.state_size), dtype=self.compute_dtype)

    def eigenvalues(self):
        """Numpy complex ``lambda`` of the time-invariant part, shape ``[units]``.

        For ``selective=True`` this is the decay at ``delta = 1``.
        """
        modulus = np.exp(-np.exp(ops.convert_to_numpy(self.nu_log).astype("float64")))
        if not self.complex_modes:
            return modulus.astype(complex)
        phase = np.exp(ops.convert_to_numpy(self.theta_log).astype("float64"))
        return modulus * np.exp(1j * phase)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units_out,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "units_out": self.units_out,
                "readout_units": list(self.readout_units),
                "activation": keras.activations.serialize(self.activation),
                "selective": self.selective,
                "complex_modes": self.complex_modes,
                "r_min": self.r_min,
                "r_max": self.r_max,
                "max_phase": self.max_phase,
                "skip_input": self.skip_input,
                "output_initializer": keras.initializers.serialize(self.output_initializer),
                "seed": self.seed,
            }
        )
        return config
