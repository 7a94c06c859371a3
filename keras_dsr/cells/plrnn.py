"""Piecewise-linear RNN cells of the Durstewitz lab: PLRNN, shPLRNN, clipped
shPLRNN and ALRNN, each with its analytic Jacobian.

All maps have a diagonal linear part ``a * z`` (vector ``a``, shape [M]) and ReLU
nonlinearities ``relu(x) = max(x, 0)`` with the derivative convention
``relu'(x) = 1[x > 0]`` (0 at the kink, as in the lab's code). Matrices follow the
mathematical convention ``y = W x``: ``W[i, j]`` is the weight from unit j to unit
i, so on row-vector batches the map computes ``x @ W^T``. The optional input
matrix ``C`` has shape [K, M] and enters as ``u @ C`` (see :class:`DSRCell`).

Initialisation (as in the lab's published code, DurstewitzLab/GTF-shPLRNN
``src/models/initialization.jl`` and ``shallow_plrnn.jl``, and the ALRNN tutorial
of DurstewitzLab/ALRNN-DSR):

* "normalised positive definite" (Talathi & Vartak 2016, arXiv:1511.03771):
  ``R ~ N(0, 1)^{M x M}``, ``K = R^T R / M + I``, ``K <- K / lambda_max(K)``;
  ``a = diag(K)`` (so 0 < a_i <= 1) and, for the PLRNN, ``W = offdiag(K)``.
* "uniform": ``U(-1/sqrt(d), 1/sqrt(d))`` with d the size of the *last* axis of
  the weight in the ``W x`` convention (W1 [M, L]: d = L; W2 [L, M]: d = M).
* biases zero, except h2 of the clipped shPLRNN: uniform with d = L.
* ALRNN: ``W ~ N(0, 0.01^2)`` (full matrix), ``a = diag(K)`` as above, ``h = 0``.
* input matrix C: Glorot uniform.
"""

import keras
from keras import ops

from keras_dsr.ops._tensor import matmul
from keras_dsr._checks import check_int
from keras_dsr.cells.base import DSRCell


def _apply(w, x):
    """``W x`` on row vectors: w [P, Q], x [..., Q] -> [..., P].

    Uses the backend-native :func:`keras_dsr.ops._tensor.matmul`: keras.ops.matmul
    on torch computes float64 inputs in float32 (keras 3.15 type promotion), and
    torch's einsum with an ellipsis is several times slower than matmul on CPU.
    """
    return matmul(x, ops.transpose(w))


def _relu_mask(x):
    """relu'(x) = 1[x > 0], in x's dtype."""
    return ops.cast(ops.greater(x, 0), x.dtype)


def normalized_positive_definite(m, dtype="float32", seed=None):
    """Talathi & Vartak (2016) matrix: symmetric positive definite, largest eigenvalue 1.

    ``R ~ N(0, 1)^{m x m}``, ``K = R^T R / m + I``, returns ``K / lambda_max(K)``
    (shape [m, m]). All eigenvalues lie in (0, 1], and so do the diagonal entries.

    Example:
        >>> K = normalized_positive_definite(3, seed=0)   # [3, 3]
    """
    m = check_int(m, "m", 1, "normalized_positive_definite")
    r = keras.random.normal((m, m), dtype="float32", seed=seed)
    k = ops.matmul(ops.transpose(r), r) / float(m) + ops.eye(m, dtype="float32")
    # K is symmetric positive definite: lambda_max = spectral norm.
    lam = ops.max(ops.eigh(k)[0])
    return ops.cast(k / lam, dtype)


def _uniform_fan(shape, fan, dtype, seed):
    r = 1.0 / float(fan) ** 0.5
    return keras.random.uniform(shape, minval=-r, maxval=r, dtype=dtype, seed=seed)


class _ConstantInit:
    """Initializer returning a precomputed tensor (used inside build only)."""

    def __init__(self, value):
        self.value = value

    def __call__(self, shape, dtype=None):
        return ops.cast(self.value, dtype)


@keras.saving.register_keras_serializable(package="keras_dsr")
class PLRNN(DSRCell):
    """Piecewise-linear RNN: ``z' = a * z + W relu(z) + h (+ u @ C)``.

    W has zero diagonal (self-coupling lives in ``a`` only). The zero diagonal is
    enforced in the map by multiplying the stored ``W`` with the mask ``1 - I``,
    so the gradient of any loss w.r.t. the diagonal of ``W`` is exactly zero and
    the diagonal never moves.

    Jacobian: ``J(z) = diag(a) + W diag(1[z > 0])``; its diagonal is ``a``.

    Weights: ``a`` [M], ``W`` [M, M], ``h`` [M], ``C`` [K, M] if input_dim > 0.
    Initialisation (lab): ``a = diag(K)``, ``W = offdiag(K)`` of one normalised
    positive-definite K (see module docstring), ``h = 0``.

    Args:
        latent_dim: M. input_dim: K (default 0). seed: int or None.

    Example:
        >>> cell = PLRNN(latent_dim=3)
        >>> z = keras.random.normal((8, 100, 3))
        >>> cell(z).shape, cell.jacobian(z).shape
        ((8, 100, 3), (8, 100, 3, 3))
    """

    def build_map_weights(self):
        m = self.latent_dim
        k = normalized_positive_definite(m, seed=self._seed(0))
        eye = ops.eye(m, dtype="float32")
        self.a = self.add_weight(
            shape=(m,), initializer=_ConstantInit(ops.diagonal(k)), name="a"
        )
        self.W = self.add_weight(
            shape=(m, m), initializer=_ConstantInit(k * (1.0 - eye)), name="W"
        )
        self.h = self.add_weight(shape=(m,), initializer="zeros", name="h")

    def effective_W(self, dtype=None):
        """``W`` with its diagonal masked to zero (the matrix the map uses)."""
        w = self.W if dtype is None else ops.cast(self.W, dtype)
        w = ops.convert_to_tensor(w)
        return w * (1.0 - ops.eye(self.latent_dim, dtype=w.dtype))

    def _step(self, z):
        w = self.effective_W(z.dtype)
        return (
            self._var(self.a, z) * z
            + _apply(w, ops.relu(z))
            + self._var(self.h, z)
        )

    def _jacobian(self, z):
        w = self.effective_W(z.dtype)
        d = _relu_mask(z)
        return ops.diag(self._var(self.a, z)) + w * d[..., None, :]

    def _jacobian_diagonal(self, z):
        # diag(W) = 0, so the diagonal is a at every z.
        return self._var(self.a, z) * ops.ones_like(z)


@keras.saving.register_keras_serializable(package="keras_dsr")
class ShallowPLRNN(DSRCell):
    """Shallow PLRNN: ``z' = a * z + W1 relu(W2 z + h2) + h1 (+ u @ C)``.

    Latent dim M, hidden dim L (``hidden_dim``).
    Jacobian: ``J(z) = diag(a) + W1 diag(1[W2 z + h2 > 0]) W2``, computed as
    ``d @ P`` with ``P[l] = W1[:, l] W2[l, :]`` (no ``[..., M, L]`` temporary); its diagonal
    ``J_ii = a_i + sum_l W1[i, l] 1[.]_l W2[l, i]`` is computed without the full
    matrix (O(L M) per point).

    Weights: ``a`` [M], ``W1`` [M, L], ``W2`` [L, M], ``h1`` [M], ``h2`` [L],
    ``C`` [K, M] if input_dim > 0.
    Initialisation (lab, GTF-shPLRNN): ``a = diag(K)`` of a normalised
    positive-definite K, ``W1 ~ U(+-1/sqrt(L))``, ``W2 ~ U(+-1/sqrt(M))``,
    ``h1 = 0``, ``h2 = 0``.

    Args:
        latent_dim: M. hidden_dim: L (positive int). input_dim: K (default 0).
        seed: int or None.

    Example:
        >>> cell = ShallowPLRNN(latent_dim=3, hidden_dim=50)
        >>> cell(keras.random.normal((16, 3))).shape
        (16, 3)
    """

    def __init__(self, latent_dim, hidden_dim, input_dim=0, seed=None, **kwargs):
        super().__init__(latent_dim, input_dim=input_dim, seed=seed, **kwargs)
        self.hidden_dim = check_int(hidden_dim, "hidden_dim", 1, type(self).__name__)

    def _h2_initializer(self):
        return "zeros"

    def build_map_weights(self):
        m, l_ = self.latent_dim, self.hidden_dim
        k = normalized_positive_definite(m, seed=self._seed(0))
        self.a = self.add_weight(
            shape=(m,), initializer=_ConstantInit(ops.diagonal(k)), name="a"
        )
        self.W1 = self.add_weight(
            shape=(m, l_),
            initializer=keras.initializers.RandomUniform(
                -(l_**-0.5), l_**-0.5, seed=self._seed(1)
            ),
            name="W1",
        )
        self.W2 = self.add_weight(
            shape=(l_, m),
            initializer=keras.initializers.RandomUniform(
                -(m**-0.5), m**-0.5, seed=self._seed(2)
            ),
            name="W2",
        )
        self.h1 = self.add_weight(shape=(m,), initializer="zeros", name="h1")
        self.h2 = self.add_weight(
            shape=(l_,), initializer=self._h2_initializer(), name="h2"
        )

    # Hidden-layer nonlinearity and its derivative, given x = W2 z.
    def _hidden(self, x, h2):
        return ops.relu(x + h2)

    def _hidden_mask(self, x, h2):
        return _relu_mask(x + h2)

    def _step(self, z):
        x = _apply(self._var(self.W2, z), z)
        hidden = self._hidden(x, self._var(self.h2, z))
        return (
            self._var(self.a, z) * z
            + _apply(self._var(self.W1, z), hidden)
            + self._var(self.h1, z)
        )

    def _mask(self, z):
        x = _apply(self._var(self.W2, z), z)
        return self._hidden_mask(x, self._var(self.h2, z))  # [..., L]

    def _jacobian(self, z):
        # sum_l d_l W1[:, l] W2[l, :] as one product d @ P with P[l] = W1[:, l] W2[l, :]
        # ([L, M*M]): no [..., M, L] temporary (4x the Jacobian's size at M=16, L=64).
        d = self._mask(z)
        w1 = self._var(self.W1, z)
        w2 = self._var(self.W2, z)
        m, l_ = self.latent_dim, self.hidden_dim
        p = ops.reshape(ops.transpose(w1)[:, :, None] * w2[:, None, :], (l_, m * m))
        inner = ops.reshape(matmul(d, p), tuple(ops.shape(d)[:-1]) + (m, m))
        return ops.diag(self._var(self.a, z)) + inner

    def _jacobian_diagonal(self, z):
        d = self._mask(z)
        # P[l, i] = W1[i, l] * W2[l, i];  diag_i = a_i + sum_l d_l P[l, i].
        p = ops.transpose(self._var(self.W1, z)) * self._var(self.W2, z)
        return self._var(self.a, z) + matmul(d, p)

    def get_config(self):
        config = super().get_config()
        config["hidden_dim"] = self.hidden_dim
        return config


@keras.saving.register_keras_serializable(package="keras_dsr")
class ClippedShallowPLRNN(ShallowPLRNN):
    """Clipped shallow PLRNN (the lab's default for DSR):

    ``z' = a * z + W1 [relu(W2 z + h2) - relu(W2 z)] + h1 (+ u @ C)``.

    Each hidden unit's bracket is bounded by ``|h2_l|``, so the nonlinear term is
    bounded and orbits stay bounded whenever ``max_i |a_i| < 1``:
    ``limsup |z_i| <= (sum_l |W1[i, l]| |h2_l| + |h1_i|) / (1 - max|a|)`` (autonomous).

    Jacobian: ``J(z) = diag(a) + W1 diag(1[W2 z + h2 > 0] - 1[W2 z > 0]) W2``.

    Weights as :class:`ShallowPLRNN`. Initialisation (lab, GTF-shPLRNN) as there,
    except ``h2 ~ U(+-1/sqrt(L))`` (a zero h2 would make the bracket vanish).

    Example:
        >>> cell = ClippedShallowPLRNN(latent_dim=3, hidden_dim=100)
        >>> cell(keras.random.normal((16, 200, 3))).shape
        (16, 200, 3)
    """

    def _h2_initializer(self):
        r = self.hidden_dim**-0.5
        return keras.initializers.RandomUniform(-r, r, seed=self._seed(3))

    def _hidden(self, x, h2):
        return ops.relu(x + h2) - ops.relu(x)

    def _hidden_mask(self, x, h2):
        return _relu_mask(x + h2) - _relu_mask(x)


@keras.saving.register_keras_serializable(package="keras_dsr")
class ALRNN(DSRCell):
    """Almost-linear RNN (Brenner et al. 2024): ``z' = a * z + W Phi*(z) + h (+ u @ C)``.

    ``Phi*(z) = [z_1, ..., z_{M-P}, relu(z_{M-P+1}), ..., relu(z_M)]``: ReLU on the
    last P = ``num_relu`` units, identity on the first M - P. ``W`` is a full
    [M, M] matrix (its diagonal is allowed, as in the lab's code).

    Jacobian: ``J(z) = diag(a) + W diag(Phi*'(z))`` with ``Phi*'(z)_i = 1`` for the
    linear units and ``1[z_i > 0]`` for the ReLU units; diagonal
    ``a + diag(W) * Phi*'(z)``.

    Weights: ``a`` [M], ``W`` [M, M], ``h`` [M], ``C`` [K, M] if input_dim > 0.
    Initialisation (lab, ALRNN tutorial): ``a = diag(K)`` of a normalised
    positive-definite K, ``W ~ N(0, 0.01^2)``, ``h = 0``.

    Args:
        latent_dim: M. num_relu: P, integer in [0, M]. input_dim: K (default 0).
        seed: int or None.

    Example:
        >>> cell = ALRNN(latent_dim=20, num_relu=2)
        >>> z = cell(keras.random.normal((4, 20)))
        >>> tuple(z.shape)
        (4, 20)
    """

    def __init__(self, latent_dim, num_relu, input_dim=0, seed=None, **kwargs):
        super().__init__(latent_dim, input_dim=input_dim, seed=seed, **kwargs)
        p = check_int(num_relu, "num_relu", 0, "ALRNN")
        if p > self.latent_dim:
            raise ValueError(
                f"ALRNN: `num_relu` must lie in [0, latent_dim={self.latent_dim}], "
                f"got {num_relu!r}."
            )
        self.num_relu = p

    def build_map_weights(self):
        m = self.latent_dim
        k = normalized_positive_definite(m, seed=self._seed(0))
        self.a = self.add_weight(
            shape=(m,), initializer=_ConstantInit(ops.diagonal(k)), name="a"
        )
        self.W = self.add_weight(
            shape=(m, m),
            initializer=keras.initializers.RandomNormal(0.0, 0.01, seed=self._seed(1)),
            name="W",
        )
        self.h = self.add_weight(shape=(m,), initializer="zeros", name="h")

    def _relu_units(self, dtype):
        """1 for the last P (ReLU) units, 0 for the first M - P (linear) units."""
        m, p = self.latent_dim, self.num_relu
        return ops.cast(ops.greater_equal(ops.arange(m), m - p), dtype)

    def _phi_derivative(self, z):
        r = self._relu_units(z.dtype)
        return (1.0 - r) + r * _relu_mask(z)

    def _step(self, z):
        r = self._relu_units(z.dtype)
        phi = (1.0 - r) * z + r * ops.relu(z)
        return (
            self._var(self.a, z) * z
            + _apply(self._var(self.W, z), phi)
            + self._var(self.h, z)
        )

    def _jacobian(self, z):
        d = self._phi_derivative(z)
        return ops.diag(self._var(self.a, z)) + self._var(self.W, z) * d[..., None, :]

    def _jacobian_diagonal(self, z):
        d = self._phi_derivative(z)
        return self._var(self.a, z) + ops.diagonal(self._var(self.W, z)) * d

    def get_config(self):
        config = super().get_config()
        config["num_relu"] = self.num_relu
        return config
