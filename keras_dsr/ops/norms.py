"""Norms of Jacobian sequences: the estimates behind adaptive GTF.

Adaptive generalized teacher forcing sets ``alpha = max(0, 1 - 1/G)`` from a norm
estimate G of the model's Jacobians along the data (docs/method.md, "Generalized
teacher forcing"). The estimators here take the Jacobians ``J`` ``[B, T, M, M]``
(B sequences, T time steps) and return the scalar G; their names are the
Durstewitz lab's:

* ``product_upper_bound``: max over sequences of the geometric mean over t of
  ``||J_t||_2`` (a bound on the growth rate of Jacobian products);
* ``explog_approx``: max over sequences of ``||expm(mean_t logm J_t)||_2``, the
  matrix geometric mean (principal matrix logarithm, computed from the
  eigendecomposition; a real negative eigenvalue gets the angle +pi, as
  Julia's and scipy's ``logm`` do);
* ``arithmetic_mean``: max over sequences of ``||mean_t J_t||_2``;
* ``batch_maximum``: max over all sequences and t of ``||J_t||_2``;
* ``elementwise_geometric_mean``: max over sequences of
  ``||exp(mean_t log|J_t|)||_2`` (elementwise magnitudes; not one of the lab's).

Nothing here knows about Keras layers.
"""

from keras import ops
from keras.backend import standardize_dtype

ESTIMATORS = (
    "product_upper_bound",
    "explog_approx",
    "arithmetic_mean",
    "batch_maximum",
    "elementwise_geometric_mean",
)


def spectral_norm(mats):
    """Largest singular value of each matrix in ``mats`` ``[..., M, M]`` -> ``[...]``.

    A matrix with a NaN / inf entry gives NaN (PyTorch's SVD would raise on it).

    Example:
        >>> float(spectral_norm(keras.ops.eye(3) * 2.0))
        2.0
    """
    mats = ops.convert_to_tensor(mats)
    ok = ops.all(ops.isfinite(mats), axis=(-2, -1))
    safe = ops.where(ok[..., None, None], mats, ops.zeros_like(mats))
    norm = ops.svd(safe, compute_uv=False)[..., 0]
    return ops.where(ok, norm, ops.full_like(norm, float("nan")))


def _complex_spectral_norm(mats):
    """``||A||_2`` of complex ``A = X + iY`` from the real matrix ``[[X, -Y], [Y, X]]``,
    whose singular values are those of A, each twice."""
    re, im = ops.real(mats), ops.imag(mats)
    big = ops.concatenate([ops.concatenate([re, -im], axis=-1),
                           ops.concatenate([im, re], axis=-1)], axis=-2)
    return spectral_norm(big)


def _complex(re, im):
    dtype = "complex128" if standardize_dtype(re.dtype) == "float64" else "complex64"
    return ops.cast(re, dtype) + 1j * ops.cast(im, dtype)


def matrix_log(mats):
    """Principal matrix logarithm of real ``mats`` ``[..., M, M]`` (complex result).

    ``logm(A) = V diag(log w) V^-1`` from the eigendecomposition ``A = V diag(w) V^-1``;
    exact for diagonalisable matrices (a defective or singular matrix gives
    inaccurate or infinite entries). A real negative eigenvalue gets the angle
    +pi (principal branch).
    """
    w, v = ops.eig(ops.convert_to_tensor(mats))
    re, im = ops.real(w), ops.imag(w)
    im = ops.where(ops.equal(im, 0), ops.zeros_like(im), im)  # -0.0 -> +0.0: angle +pi
    log_w = _complex(ops.log(ops.abs(w)), ops.arctan2(im, re))
    return ops.matmul(v * ops.expand_dims(log_w, -2), ops.inv(v))


def matrix_exp(mats):
    """Matrix exponential of complex ``mats`` ``[..., M, M]`` by eigendecomposition."""
    w, v = ops.eig(mats)
    return ops.matmul(v * ops.expand_dims(ops.exp(w), -2), ops.inv(v))


def jacobian_norm_estimate(jac, estimator="product_upper_bound"):
    """The norm estimate G of Jacobians ``jac`` ``[B, T, M, M]`` (a scalar tensor).

    Args:
        jac: Jacobians of B sequences at T time steps each.
        estimator: one of :data:`ESTIMATORS` (see the module docstring).

    Example:
        >>> jac = keras.ops.ones((2, 4, 1, 1)) * 2.0
        >>> float(jacobian_norm_estimate(jac, "product_upper_bound"))
        2.0
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"`estimator` must be one of {ESTIMATORS}, got {estimator!r}.")
    jac = ops.convert_to_tensor(jac)
    if len(jac.shape) != 4 or jac.shape[-1] != jac.shape[-2]:
        raise ValueError(f"`jac` must have shape [B, T, M, M], got {tuple(jac.shape)}.")
    if estimator == "product_upper_bound":
        logs = ops.log(ops.maximum(spectral_norm(jac), 1e-30))
        return ops.max(ops.exp(ops.mean(logs, axis=1)))
    if estimator == "batch_maximum":
        return ops.max(spectral_norm(jac))
    if estimator == "arithmetic_mean":
        return ops.max(spectral_norm(ops.mean(jac, axis=1)))
    if estimator == "elementwise_geometric_mean":
        geo = ops.exp(ops.mean(ops.log(ops.maximum(ops.abs(jac), 1e-30)), axis=1))
        return ops.max(spectral_norm(geo))
    # explog_approx: the matrix geometric mean of each sequence
    mean_log = ops.mean(matrix_log(jac), axis=1)
    return ops.max(_complex_spectral_norm(matrix_exp(mean_log)))
