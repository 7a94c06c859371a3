"""Generalized teacher forcing (GTF) solved in parallel along time by DEER."""

import keras
from keras import ops

from keras_dsr import schedules as schedules_lib
from keras_dsr.ops import deer_solve
from keras_dsr.ops.auto import resolve_method
from keras_dsr.ops.norms import jacobian_norm_estimate, spectral_norm
from keras_dsr.ops.solvers import get_linear_solver, get_solver, method_option, serialize

OBSERVATIONS = ("identity", "affine")
FORCINGS = ("full", "partial")
LATENT_INITS = ("zeros", "learned")
METHODS = ("deer", "quasi", "damped", "sequential", "auto")

# Kept importable under their earlier names.
ESTIMATORS = schedules_lib.ESTIMATORS
_check_alpha = schedules_lib.check_alpha


def parameter_norm_bound(cell):
    """Upper bound of ``||J||_2`` over all states from the cell's weights.

    PLRNN / ALRNN: ``max|a| + ||W||_2``; shallow PLRNNs: ``max|a| + ||W1||_2 ||W2||_2``
    (|relu'| <= 1, and the clipped variant's hidden derivative is in {-1, 0, 1}).
    Other cells (e.g. :class:`~keras_dsr.cells.PolynomialFlow`, whose Jacobian is not
    bounded by its weights) raise ``ValueError``.
    """
    if not hasattr(cell, "a"):
        raise ValueError(f"estimator 'jacobian_upper_bound' (alias 'parameter_bound') needs a "
                         f"PLRNN-family cell "
                         f"(diagonal `a` plus connection matrices); {type(cell).__name__} "
                         "has no weight bound on its Jacobian. Use an estimator on the "
                         "data, e.g. 'product_upper_bound'.")
    a = ops.max(ops.abs(cell.a))
    if hasattr(cell, "W1"):
        return a + spectral_norm(cell.W1) * spectral_norm(cell.W2)
    return a + spectral_norm(cell.W)


def _choice(value, allowed, name):
    if value not in allowed:
        raise ValueError(f"GTFDEERLayer: `{name}` must be one of {allowed}, got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package="keras_dsr")
class GTFDEERLayer(keras.layers.Layer):
    """The GTF-forced recurrence of a DSR cell with its observation model, solved by DEER.

    With a one-step map ``F`` (the cell, latent size M), an observation model
    ``x = O(z)`` of N features and its pseudo-inverse ``O+``, and data
    ``x_0..x_{T-1}`` (one window), the forced recurrence is

        zhat_t = O+(x_t)                              (data-inferred states)
        z~_0   = init(x_0)
        z_t    = F(z~_{t-1})                           (unforced prediction)
        z~_t   = (1 - alpha) z_t + alpha zhat_t         (full forcing, default)

    for t = 1..T-1; the output is ``O(z_t)``, the one-step predictions of
    ``x_1..x_{T-1}`` that the loss compares with the data (docs/method.md,
    "Generalized teacher forcing"). The forced trajectory is solved at once by
    :func:`keras_dsr.ops.deer_solve` (Jacobian ``(1 - alpha) dF/dz``, the data-inferred
    states as initial guess); gradients equal those of sequential GTF (BPTT through
    the forced loop).

    Observation models (``observation``):

    * ``"identity"``: the first N latent units are observed, ``O(z) = z[:N]``,
      ``O+(x) = [x, 0]``; ``init(x_0) = [x_0, L x_0]`` with a learned linear ``L``
      (``latent_init="learned"``) or ``[x_0, 0]`` (``"zeros"``). Needs N <= M.
    * ``"affine"``: ``O(z) = B z (+ b)`` with a learned ``B`` (N x M, He-normal
      initialised as in the Durstewitz lab's code) and, with ``use_bias``, ``b``;
      ``O+(x) = pinv(B) (x - b)`` and ``init(x_0) = O+(x_0)``. The forcing signals
      ``zhat`` are held constant in the gradient (as the lab computes them before
      the forward pass); the initial state is differentiable.

    Forcing (``forcing``): ``"full"`` (the lab's default) forces every latent unit
    towards ``zhat``; ``"partial"`` forces only the first N units (the others run
    free).

    alpha: a non-trainable weight, set at every training call by the forcing
    schedule (``gtf``, a :class:`~keras_dsr.schedules.ForcingSchedule`) *before* the
    solve, inside the compiled step; ``forcing_step`` counts the training calls. In
    inference (``training`` false) the current alpha is used unchanged. After each
    call ``last_diagnostics`` holds the tensors ``alpha``, ``norm`` (the estimate G
    when the schedule computed one at this step, else NaN), ``iterations`` and
    ``fell_back`` of that call, for the model's metrics.

    Args:
        cell: a :class:`keras_dsr.cells.DSRCell` (``call`` + analytic ``jacobian``).
        gtf: the forcing schedule: a :class:`~keras_dsr.schedules.ForcingSchedule`,
            ``"adaptive"``, or a number (constant alpha). Default: alpha stays at
            ``alpha`` (:class:`~keras_dsr.schedules.ManualForcing`).
        alpha: initial alpha when ``gtf`` is not given.
        forcing: ``"full"`` or ``"partial"``.
        observation: ``"identity"`` or ``"affine"``; ``use_bias``: the affine bias.
        method: ``"deer"``, ``"quasi"``, ``"damped"``, ``"sequential"`` (the plain
            loop: BPTT with GTF), ``"auto"`` (:func:`keras_dsr.ops.auto.choose_method`)
            or a solver object of :mod:`keras_dsr.ops.solvers` (e.g.
            ``DampedNewton(0.9)``).
        latent_init: ``"zeros"`` or ``"learned"`` (identity observation with N < M).
        atol, rtol, max_iter: DEER tolerances (defaults of
            :func:`keras_dsr.ops.default_tolerances`).
        chunk_size: None or a positive int C: each Newton step runs C time steps at a
            time (same result, the dense Jacobians of one chunk in memory).
        linear_solver: None (one parallel scan per Newton step), or a linear solver
            of :mod:`keras_dsr.ops.solvers` (``Scan()``, ``ChunkedScan(C)``,
            ``ShardedScan()``); not together with ``chunk_size``.

    Input: ``x`` ``[B, T, N]`` (T >= 2). Output: ``[B, T - 1, N]``.

    Example:
        >>> from keras_dsr.cells import ClippedShallowPLRNN
        >>> layer = GTFDEERLayer(ClippedShallowPLRNN(latent_dim=5, hidden_dim=20), gtf=0.3)
        >>> y = layer(keras.random.normal((4, 200, 3)))   # [4, 199, 3]
    """

    def __init__(self, cell, gtf=None, alpha=1.0, forcing="full", observation="identity",
                 use_bias=False, method="deer", latent_init="zeros", atol=None, rtol=None,
                 max_iter=None, chunk_size=None, linear_solver=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if not (hasattr(cell, "jacobian") and hasattr(cell, "latent_dim") and callable(cell)):
            raise TypeError(
                "GTFDEERLayer: `cell` must be a keras_dsr DSRCell (with `latent_dim`, "
                f"`call` and `jacobian`), got {type(cell).__name__}."
            )
        self.schedule = (schedules_lib.ManualForcing(alpha) if gtf is None
                         else schedules_lib.get(gtf))
        self.forcing = _choice(forcing, FORCINGS, "forcing")
        self.observation = _choice(observation, OBSERVATIONS, "observation")
        self.method = method_option(method, "GTFDEERLayer")
        self.latent_init = _choice(latent_init, LATENT_INITS, "latent_init")
        try:
            get_linear_solver(linear_solver, chunk_size)
        except (TypeError, ValueError) as err:
            raise type(err)(f"GTFDEERLayer: {err}") from None
        if isinstance(linear_solver, dict):
            linear_solver = get_linear_solver(linear_solver)
        self.linear_solver = linear_solver
        self.cell = cell
        self.use_bias = bool(use_bias)
        self.chunk_size = chunk_size
        self.atol, self.rtol, self.max_iter = atol, rtol, max_iter
        self.observed_dim = None
        self.init_map = None
        self.kernel = self.bias = None
        self.last_diagnostics = {}

    # ------------------------------------------------------------------ build
    def build(self, x_shape):
        n = x_shape[-1]
        m = self.cell.latent_dim
        if n is None:
            raise ValueError("GTFDEERLayer: the number of observed features must be known.")
        if self.observation == "identity" and n > m:
            raise ValueError(
                f"GTFDEERLayer: the data has {n} features but the cell has latent_dim={m}; "
                "identity observation needs N <= M (use observation='affine' or a larger "
                "latent_dim)."
            )
        self.observed_dim = int(n)
        if not self.cell.built:
            self.cell.build((None, m))
        self.alpha = self.add_weight(
            shape=(), dtype="float32", trainable=False, name="alpha",
            initializer=keras.initializers.Constant(self.schedule.initial_alpha))
        self.forcing_step = self.add_weight(shape=(), dtype="int32", trainable=False,
                                            initializer="zeros", name="forcing_step")
        if self.observation == "affine":
            self.kernel = self.add_weight(
                shape=(m, n), name="observation_kernel",
                initializer=keras.initializers.HeNormal(seed=getattr(self.cell, "seed", None)))
            if self.use_bias:
                self.bias = self.add_weight(shape=(n,), name="observation_bias",
                                            initializer="zeros")
        elif self.latent_init == "learned" and m > n:
            self.init_map = keras.layers.Dense(m - n, name="latent_init_map")
            self.init_map.build((None, n))

    def load_own_variables(self, store):
        # Models saved before the forcing schedule lived in the train step stored
        # four scalars here (alpha and three diagnostics): keep their alpha.
        if len(store.keys()) == 4 and len(self._trainable_variables
                                          + self._non_trainable_variables) == 2:
            self.alpha.assign(store["0"])
            self.forcing_step.assign(0)
            return
        super().load_own_variables(store)

    # -------------------------------------------------------------- observation
    def observe(self, z):
        """Observations ``O(z)`` ``[..., N]`` of latent states ``z`` ``[..., M]``."""
        if self.observation == "identity":
            return z[..., : self.observed_dim]
        out = ops.matmul(z, ops.cast(self.kernel, z.dtype))
        return out if self.bias is None else out + ops.cast(self.bias, z.dtype)

    def _pinv(self, dtype):
        """``pinv(B)`` as the ``[N, M]`` matrix with ``z = x @ pinv`` (row vectors)."""
        k = ops.cast(self.kernel, dtype)  # [M, N]: x = z @ k
        m, n = k.shape
        kt = ops.transpose(k)
        if n <= m:
            return ops.matmul(ops.inv(ops.matmul(kt, k)), kt)
        return ops.matmul(kt, ops.inv(ops.matmul(k, kt)))

    def infer_latent(self, x):
        """Data-inferred states ``O+(x)`` ``[..., M]`` from observations ``[..., N]``."""
        m, n = self.cell.latent_dim, x.shape[-1]
        if self.observation == "affine":
            if self.bias is not None:
                x = x - ops.cast(self.bias, x.dtype)
            return ops.matmul(x, self._pinv(x.dtype))
        if m == n:
            return x
        pad = ops.zeros(tuple(ops.shape(x)[:-1]) + (m - n,), dtype=x.dtype)
        return ops.concatenate([x, pad], axis=-1)

    def initial_state(self, x0):
        """Initial latent state ``init(x_0)`` ``[..., M]`` from ``x_0`` ``[..., N]``."""
        if self.init_map is not None:
            return ops.concatenate([x0, self.init_map(x0)], axis=-1)
        return self.infer_latent(x0)

    # -------------------------------------------------------------- forcing
    def _mask(self, dtype):
        m, n = self.cell.latent_dim, self.observed_dim
        if self.forcing == "full":
            return ops.ones((m,), dtype=dtype)
        return ops.convert_to_tensor([1.0] * n + [0.0] * (m - n), dtype=dtype)

    def estimate_jacobian_norm(self, zhat, estimator, points=None):
        """The estimate G of ``||dF/dz||`` at data-inferred states ``zhat`` ``[B, T, M]``."""
        if estimator == "jacobian_upper_bound":
            return ops.stop_gradient(parameter_norm_bound(self.cell))
        if points is not None:
            stride = max(1, -(-zhat.shape[1] // points))
            zhat = zhat[:, ::stride]
        jac = ops.stop_gradient(self.cell.jacobian(ops.stop_gradient(zhat)))
        return jacobian_norm_estimate(jac, estimator)

    def advance_schedule(self, zhat):
        """One step of the forcing schedule on this batch; returns ``(alpha, norm)``."""
        schedule = self.schedule
        step = ops.convert_to_tensor(self.forcing_step)
        previous = ops.convert_to_tensor(self.alpha)

        def norm_fn():
            return self.estimate_jacobian_norm(zhat, schedule.estimator,
                                               getattr(schedule, "estimate_points", None))

        alpha, norm = schedule(step, previous, norm_fn)
        alpha = ops.stop_gradient(ops.clip(ops.cast(alpha, "float32"), 0.0, 1.0))
        self.alpha.assign(alpha)
        self.forcing_step.assign(step + 1)
        return alpha, ops.cast(norm, "float32")

    # ----------------------------------------------------------------- call
    def forced_trajectory(self, x, alpha=None):
        """Solve the forced recurrence; returns ``(z0, z~ [B, T-1, M], info)``."""
        zhat = ops.stop_gradient(self.infer_latent(x[:, 1:]))
        z0 = self.initial_state(x[:, 0])
        alpha = self.alpha if alpha is None else alpha
        forcing = ops.cast(alpha, x.dtype) * self._mask(x.dtype)

        def step(z, target):
            pred = self.cell(z)
            return pred - forcing * (pred - target)

        def jacobian(z, target):
            return (1.0 - forcing)[:, None] * self.cell.jacobian(z)

        method = resolve_method(self.method, self.cell.latent_dim)
        z, info = deer_solve(step, z0, zhat, jacobian_fn=jacobian, method=method,
                             initial_guess=zhat, atol=self.atol, rtol=self.rtol,
                             max_iter=self.max_iter,
                             chunk_size=self._chunk(method, zhat.shape[1]),
                             linear_solver=self.linear_solver)
        return z0, z, info

    def _chunk(self, method, length):
        """The chunk size for this solve: None when unset, sequential, or >= T."""
        if self.chunk_size is None or not get_solver(method).parallel:
            return None
        if length is not None and self.chunk_size >= length:
            return None
        return self.chunk_size

    def call(self, x, training=None):
        if training:
            alpha, norm = self.advance_schedule(ops.stop_gradient(self.infer_latent(x[:, 1:])))
        else:
            alpha = ops.convert_to_tensor(self.alpha)
            norm = ops.full_like(alpha, float("nan"))
        z0, z, info = self.forced_trajectory(x, alpha)
        self.last_diagnostics = {
            "alpha": alpha, "norm": norm,
            "iterations": ops.cast(info["iterations"], "float32"),
            "fell_back": ops.cast(info["fell_back"], "float32"),
        }
        z_prev = ops.concatenate([ops.expand_dims(z0, 1), z[:, :-1]], axis=1)
        return self.observe(self.cell(z_prev))

    def compute_output_shape(self, x_shape):
        t = None if x_shape[1] is None else x_shape[1] - 1
        return (x_shape[0], t, x_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=keras.saving.serialize_keras_object(self.cell),
            gtf=keras.saving.serialize_keras_object(self.schedule),
            forcing=self.forcing,
            observation=self.observation,
            use_bias=self.use_bias,
            method=serialize(self.method),
            latent_init=self.latent_init,
            atol=self.atol,
            rtol=self.rtol,
            max_iter=self.max_iter,
            chunk_size=self.chunk_size,
            linear_solver=serialize(self.linear_solver),
        )
        return config
