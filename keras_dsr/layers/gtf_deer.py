"""Generalized teacher forcing (GTF) solved in parallel along time by DEER."""

import keras
from keras import ops

from keras_dsr.ops import deer_solve
from keras_dsr.ops.auto import resolve_method

ESTIMATORS = (
    "product_upper_bound",
    "parameter_bound",
    "batch_max",
    "geometric_mean",
    "arithmetic_mean",
)


def spectral_norm(mats):
    """Largest singular value of each matrix in ``mats`` ``[..., M, M]`` -> ``[...]``.

    A matrix with a NaN / inf entry gives NaN (PyTorch's SVD would raise on it; the
    non-finite value then reaches the loss, where ``NonFiniteGuard`` handles it).
    """
    mats = ops.convert_to_tensor(mats)  # also a Variable (parameter_norm_bound)
    ok = ops.all(ops.isfinite(mats), axis=(-2, -1))
    safe = ops.where(ok[..., None, None], mats, ops.zeros_like(mats))
    norm = ops.svd(safe, compute_uv=False)[..., 0]
    return ops.where(ok, norm, ops.full_like(norm, float("nan")))


def parameter_norm_bound(cell):
    """Upper bound of ``||J||_2`` over all states from the cell's weights.

    PLRNN / ALRNN: ``max|a| + ||W||_2``; shallow PLRNNs: ``max|a| + ||W1||_2 ||W2||_2``
    (|relu'| <= 1, and the clipped variant's hidden derivative is in {-1, 0, 1}).
    Other cells (e.g. :class:`~keras_dsr.cells.PolynomialFlow`, whose Jacobian is not
    bounded by its weights) raise ``ValueError``.
    """
    if not hasattr(cell, "a"):
        raise ValueError(f"alpha_estimator='parameter_bound' needs a PLRNN-family cell "
                         f"(diagonal `a` plus connection matrices); {type(cell).__name__} "
                         "has no weight bound on its Jacobian. Use an estimator on the "
                         "data, e.g. 'product_upper_bound'.")
    a = ops.max(ops.abs(cell.a))
    if hasattr(cell, "W1"):
        return a + spectral_norm(cell.W1) * spectral_norm(cell.W2)
    return a + spectral_norm(cell.W)


@keras.saving.register_keras_serializable(package="keras_dsr")
class GTFDEERLayer(keras.layers.Layer):
    """The GTF-forced recurrence of a DSR cell, solved by DEER (DESIGN §2.3-2.4).

    With a one-step map ``F`` (the cell, latent size M), identity observation of the
    first N latent units, and data ``x_0..x_{T-1}`` (one window), the data-inferred
    states are ``zhat_t = [x_t, 0]`` and the forced recurrence is

        z~_0 = [x_0, g(x_0)]                      (g: zeros or a learned linear map)
        z_t  = F(z~_{t-1})                         (unforced prediction)
        z~_t = z_t - alpha * D (z_t - zhat_t)      (D = diag(1 on the N observed units))

    for t = 1..T-1, i.e. full forcing ``(1 - alpha) z_t + alpha zhat_t`` on the
    observed units and none on the unobserved ones. The whole forced trajectory is
    solved at once by :func:`keras_dsr.ops.deer_solve` (Jacobian
    ``(I - alpha D) dF/dz``, data as the initial guess); gradients equal those of
    sequential GTF training (BPTT through the forced loop).

    ``alpha`` is a non-trainable weight (set it with the callbacks of
    :mod:`keras_dsr.callbacks`). After each call the non-trainable scalars
    ``iterations`` (Newton iterations), ``fell_back`` (1.0 when the solve fell back
    to the sequential loop) and, in training, ``jacobian_norm`` (the estimate G of
    ``||dF/dz||`` used by adaptive GTF, see ``alpha_estimator``) hold diagnostics.

    Args:
        cell: a :class:`keras_dsr.cells.DSRCell` (``call`` + analytic ``jacobian``).
        alpha: initial forcing in [0, 1].
        method: ``"deer"``, ``"quasi"``, ``"damped"`` or ``"sequential"`` (plain
            loop: BPTT with GTF, the reference), or ``"auto"`` (chosen for the
            device and latent size by :func:`keras_dsr.ops.auto.choose_method`).
        latent_init: ``"zeros"`` or ``"learned"`` (a linear map from ``x_0`` to the
            M - N unobserved units; only used when N < M).
        alpha_estimator: estimator of G (adaptive GTF; DESIGN §2.3):
            ``"product_upper_bound"`` (default: max over sequences of the geometric
            mean over t of ``||J(zhat_t)||_2``), ``"batch_max"`` (max over batch and
            t), ``"geometric_mean"`` (``||exp(mean_t log|J(zhat_t)|)||_2``, the
            elementwise geometric mean of the Jacobians' magnitudes), ``"arithmetic_mean"``
            (``||mean_t J(zhat_t)||_2``), ``"parameter_bound"`` (from the weights,
            :func:`parameter_norm_bound`). For the data-based ones at most
            ``estimate_points`` time steps (evenly strided) per sequence are used.
        atol, rtol, max_iter: DEER tolerances (defaults of
            :func:`keras_dsr.ops.default_tolerances`).
        chunk_size: None (default) or a positive int C: each Newton step runs C
            time steps at a time (:func:`keras_dsr.ops.deer_solve`), so the dense
            Jacobians of only one chunk ``[B, C, M, M]`` are held at once. Same
            result; less memory at long T (``benchmarks/RESULTS_scale.md``).

    Input: ``x`` ``[B, T, N]`` (T >= 2). Output: ``[B, T - 1, N]``, the unforced
    one-step predictions ``O(z_t)`` of ``x_1..x_{T-1}``.

    Example:
        >>> from keras_dsr.cells import ClippedShallowPLRNN
        >>> layer = GTFDEERLayer(ClippedShallowPLRNN(latent_dim=3, hidden_dim=20), alpha=0.3)
        >>> y = layer(keras.random.normal((4, 200, 3)))   # [4, 199, 3]
    """

    def __init__(self, cell, alpha=1.0, method="deer", latent_init="zeros",
                 alpha_estimator="product_upper_bound", estimate_points=512,
                 atol=None, rtol=None, max_iter=None, chunk_size=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if not (hasattr(cell, "jacobian") and hasattr(cell, "latent_dim") and callable(cell)):
            raise TypeError(
                "GTFDEERLayer: `cell` must be a keras_dsr DSRCell (with `latent_dim`, "
                f"`call` and `jacobian`), got {type(cell).__name__}."
            )
        _check_alpha(alpha)
        if method not in ("deer", "quasi", "damped", "sequential", "auto"):
            raise ValueError(
                "GTFDEERLayer: `method` must be one of 'deer', 'quasi', 'damped', "
                f"'sequential', 'auto', got {method!r}."
            )
        if latent_init not in ("zeros", "learned"):
            raise ValueError(
                f"GTFDEERLayer: `latent_init` must be 'zeros' or 'learned', got {latent_init!r}."
            )
        if alpha_estimator not in ESTIMATORS:
            raise ValueError(
                f"GTFDEERLayer: `alpha_estimator` must be one of {ESTIMATORS}, got "
                f"{alpha_estimator!r}."
            )
        if not isinstance(estimate_points, int) or estimate_points < 1:
            raise ValueError(
                f"GTFDEERLayer: `estimate_points` must be a positive int, got {estimate_points!r}."
            )
        if chunk_size is not None and (isinstance(chunk_size, bool)
                                       or not isinstance(chunk_size, int) or chunk_size < 1):
            raise ValueError(
                f"GTFDEERLayer: `chunk_size` must be a positive int or None, got {chunk_size!r}."
            )
        self.chunk_size = chunk_size
        self.cell = cell
        self.initial_alpha = float(alpha)
        self.method = method
        self.latent_init = latent_init
        self.alpha_estimator = alpha_estimator
        self.estimate_points = estimate_points
        self.atol, self.rtol, self.max_iter = atol, rtol, max_iter
        self.observed_dim = None
        self.init_map = None

    # ------------------------------------------------------------------ build
    def build(self, x_shape):
        n = x_shape[-1]
        m = self.cell.latent_dim
        if n is None or n > m:
            raise ValueError(
                f"GTFDEERLayer: the data has {n} features but the cell has latent_dim={m}; "
                "identity observation needs N <= M."
            )
        self.observed_dim = int(n)
        if not self.cell.built:
            self.cell.build((None, m))
        scalar = dict(shape=(), trainable=False, dtype="float32")
        self.alpha = self.add_weight(
            initializer=keras.initializers.Constant(self.initial_alpha), name="alpha", **scalar)
        self.iterations = self.add_weight(initializer="zeros", name="iterations", **scalar)
        self.fell_back = self.add_weight(initializer="zeros", name="fell_back", **scalar)
        self.jacobian_norm = self.add_weight(initializer="ones", name="jacobian_norm", **scalar)
        if self.latent_init == "learned" and m > n:
            self.init_map = keras.layers.Dense(m - n, name="latent_init_map")
            self.init_map.build((None, n))
        mask = [1.0] * n + [0.0] * (m - n)
        self._mask = mask

    # -------------------------------------------------------------- helpers
    def infer_latent(self, x):
        """Data-inferred states ``[x, 0]`` ``[..., M]`` from observations ``[..., N]``."""
        m, n = self.cell.latent_dim, x.shape[-1]
        if m == n:
            return x
        pad = ops.zeros(tuple(ops.shape(x)[:-1]) + (m - n,), dtype=x.dtype)
        return ops.concatenate([x, pad], axis=-1)

    def initial_state(self, x0):
        """Initial latent state ``[x_0, g(x_0)]`` ``[..., M]`` from ``x_0`` ``[..., N]``."""
        if self.init_map is not None:
            return ops.concatenate([x0, self.init_map(x0)], axis=-1)
        return self.infer_latent(x0)

    def _forcing(self, dtype):
        return ops.cast(self.alpha, dtype) * ops.convert_to_tensor(self._mask, dtype=dtype)

    def estimate_jacobian_norm(self, zhat):
        """The estimate G of ``||dF/dz||`` (see ``alpha_estimator``); a scalar."""
        if self.alpha_estimator == "parameter_bound":
            return ops.stop_gradient(parameter_norm_bound(self.cell))
        t = zhat.shape[1]
        stride = max(1, -(-t // self.estimate_points))
        jac = ops.stop_gradient(self.cell.jacobian(zhat[:, ::stride]))  # [B, T', M, M]
        if self.alpha_estimator == "product_upper_bound":
            logs = ops.log(ops.maximum(spectral_norm(jac), 1e-12))
            return ops.max(ops.exp(ops.mean(logs, axis=1)))
        if self.alpha_estimator == "batch_max":
            return ops.max(spectral_norm(jac))
        if self.alpha_estimator == "geometric_mean":
            geo = ops.exp(ops.mean(ops.log(ops.maximum(ops.abs(jac), 1e-12)), axis=1))
            return ops.max(spectral_norm(geo))
        return ops.max(spectral_norm(ops.mean(jac, axis=1)))  # arithmetic_mean

    # ----------------------------------------------------------------- call
    def forced_trajectory(self, x):
        """Solve the forced recurrence; returns ``(z0, z~ [B, T-1, M], info)``."""
        zhat = self.infer_latent(x[:, 1:])
        z0 = self.initial_state(x[:, 0])
        forcing = self._forcing(x.dtype)

        def step(z, target):
            pred = self.cell(z)
            return pred - forcing * (pred - target)

        def jacobian(z, target):
            return (1.0 - forcing)[:, None] * self.cell.jacobian(z)

        method = resolve_method(self.method, self.cell.latent_dim)
        z, info = deer_solve(step, z0, zhat, jacobian_fn=jacobian, method=method,
                             initial_guess=zhat, atol=self.atol, rtol=self.rtol,
                             max_iter=self.max_iter,
                             chunk_size=self._chunk(method, zhat.shape[1]))
        return z0, z, info

    def _chunk(self, method, length):
        """The chunk size for this solve: None when unset, sequential, or >= T."""
        if self.chunk_size is None or method == "sequential":
            return None
        if length is not None and self.chunk_size >= length:
            return None
        return self.chunk_size

    def call(self, x, training=None):
        z0, z, info = self.forced_trajectory(x)
        self.iterations.assign(ops.cast(info["iterations"], "float32"))
        self.fell_back.assign(ops.cast(info["fell_back"], "float32"))
        if training:
            self.jacobian_norm.assign(
                ops.cast(self.estimate_jacobian_norm(self.infer_latent(x)), "float32"))
        z_prev = ops.concatenate([ops.expand_dims(z0, 1), z[:, :-1]], axis=1)
        pred = self.cell(z_prev)
        return pred[..., : x.shape[-1]]

    def compute_output_shape(self, x_shape):
        t = None if x_shape[1] is None else x_shape[1] - 1
        return (x_shape[0], t, x_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            cell=keras.saving.serialize_keras_object(self.cell),
            alpha=self.initial_alpha,
            method=self.method,
            latent_init=self.latent_init,
            alpha_estimator=self.alpha_estimator,
            estimate_points=self.estimate_points,
            atol=self.atol,
            rtol=self.rtol,
            max_iter=self.max_iter,
            chunk_size=self.chunk_size,
        )
        return config


def _check_alpha(alpha):
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise TypeError(f"`alpha` must be a number in [0, 1], got {alpha!r}.") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`alpha` must be in [0, 1], got {value}.")
    return value
