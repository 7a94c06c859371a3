"""Parameter regularisers for the PLRNN-family cells.

Each regulariser is a callable object ``reg(cell) -> scalar tensor`` (in the
cell's variable dtype) that is differentiable w.r.t. the cell's weights, with a
``get_config`` so it can be serialised; models add ``reg(cell)`` to their loss.
Notation: M latent units, ``a`` the diagonal of the linear part, matrices in the
``y = W x`` convention of :mod:`keras_dsr.cells` (``W[i, j]``: from unit j to
unit i, so row i holds the weights *into* unit i).
"""

import keras
from keras import ops

from keras_dsr._checks import check_int
from keras_dsr.cells.plrnn import ALRNN, PLRNN, ShallowPLRNN


def _check_strength(strength, cls_name):
    if isinstance(strength, bool) or not isinstance(strength, (int, float)):
        raise TypeError(
            f"{cls_name}: `strength` must be a non-negative number, got {strength!r}."
        )
    if not strength >= 0 or strength == float("inf"):
        raise ValueError(
            f"{cls_name}: `strength` must be a finite non-negative number, got "
            f"{strength!r}."
        )
    return float(strength)


def _check_cell(cell, cls_name):
    if not isinstance(cell, (PLRNN, ShallowPLRNN, ALRNN)):
        raise TypeError(
            f"{cls_name}: `cell` must be a PLRNN, ShallowPLRNN, ClippedShallowPLRNN "
            f"or ALRNN, got {type(cell).__name__}."
        )
    if not cell.built:
        raise ValueError(
            f"{cls_name}: `cell` {cell.name!r} is not built yet; call it on data "
            "or call cell.build((latent_dim,)) first."
        )


def _sq(x):
    return ops.sum(ops.square(x))


@keras.saving.register_keras_serializable(package="keras_dsr")
class LatentL2:
    """L2 penalty on a cell's recurrent connection matrices (not on ``a``).

        R(cell) = strength * sum_{k} sum_{ij} (V_k)_{ij}^2

    over the connection matrices V_k of the map:

    * PLRNN: the off-diagonal coupling matrix W (the map's masked W; its
      diagonal is zero by construction);
    * ShallowPLRNN / ClippedShallowPLRNN: W1 [M, L] and W2 [L, M];
    * ALRNN: the full W [M, M] (its diagonal is part of the coupling there).

    Not penalised: the diagonal ``a`` (the autoregressive part), the biases
    (h, h1, h2) and the input matrix C. Matches ``keras.regularizers.L2``
    (sum of squares, no 1/2 factor).

    Args:
        strength: the factor (float >= 0).

    Example:
        >>> cell = ClippedShallowPLRNN(3, 50); cell.build((3,))
        >>> penalty = LatentL2(1e-4)(cell)   # scalar tensor
    """

    def __init__(self, strength):
        self.strength = _check_strength(strength, "LatentL2")

    def __call__(self, cell):
        _check_cell(cell, "LatentL2")
        if isinstance(cell, PLRNN):
            total = _sq(cell.effective_W())
        elif isinstance(cell, ShallowPLRNN):
            total = _sq(cell.W1) + _sq(cell.W2)
        else:
            total = _sq(cell.W)
        return self.strength * total

    def get_config(self):
        return {"strength": self.strength}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@keras.saving.register_keras_serializable(package="keras_dsr")
class ManifoldAttractorRegularization:
    """Manifold-attractor regularisation (Schmidt, Koppe, Monfared, Beutelspacher,
    Durstewitz, ICLR 2021: "Identifying nonlinear dynamical systems with multiple
    time scales and long-range dependencies").

    A subset R of latent units, the *last* ``M_reg`` units (as in the lab's code;
    with identity observation the first N units are the observed ones), is pushed
    towards a continuous attractor / memory: ``a_i -> 1`` and every weight and bias
    that drives ``z_i`` -> 0, so that ``z_i,t = z_i,t-1`` for i in R when the
    penalty is zero. With ``strength`` = lambda:

    * PLRNN:  R = lambda [ sum_{i in R} (1 - a_i)^2 + sum_{i in R} sum_j W_ij^2
      + sum_{i in R} h_i^2 ]  (W the map's masked W; rows = weights into unit i);
    * ShallowPLRNN / ClippedShallowPLRNN:  R = lambda [ sum_{i in R} (1 - a_i)^2
      + sum_{i in R} sum_{l=1..L} (W1)_il^2 + sum_{i in R} (h1)_i^2 ]; the hidden
      layer (W2, h2) is shared by all units and is not regularised;
    * ALRNN:  as for the PLRNN with the full W (rows i in R, incl. W_ii).

    The input matrix C is not regularised (inputs may drive the memory units).
    The terms are squared L2 norms as in the paper (the lab's Julia code uses
    unsquared norms).

    Args:
        strength: lambda (float >= 0).
        num_units: M_reg, number of regularised units (int >= 0, <= M), or
        fraction: M_reg = floor(fraction * M), fraction in [0, 1].
            Give at most one of the two; the default is ``fraction=0.5`` (the
            lab's default).

    Example:
        >>> cell = PLRNN(10); cell.build((10,))
        >>> penalty = ManifoldAttractorRegularization(1e-3, num_units=5)(cell)
    """

    def __init__(self, strength, num_units=None, fraction=None):
        name = "ManifoldAttractorRegularization"
        self.strength = _check_strength(strength, name)
        if num_units is not None and fraction is not None:
            raise ValueError(
                f"{name}: give either `num_units` or `fraction`, not both "
                f"(got num_units={num_units!r}, fraction={fraction!r})."
            )
        if num_units is None and fraction is None:
            fraction = 0.5
        if num_units is not None:
            num_units = check_int(num_units, "num_units", 0, name)
        else:
            if (
                isinstance(fraction, bool)
                or not isinstance(fraction, (int, float))
                or not 0.0 <= fraction <= 1.0
            ):
                raise ValueError(
                    f"{name}: `fraction` must be a number in [0, 1], got {fraction!r}."
                )
            fraction = float(fraction)
        self.num_units = num_units
        self.fraction = fraction

    def regularized_units(self, latent_dim):
        """M_reg for a cell with ``latent_dim`` units (the last M_reg are regularised)."""
        if self.num_units is not None:
            if self.num_units > latent_dim:
                raise ValueError(
                    "ManifoldAttractorRegularization: `num_units`="
                    f"{self.num_units} exceeds the cell's latent_dim={latent_dim}."
                )
            return self.num_units
        # small epsilon so that e.g. 0.3 * 10 gives 3, not 2
        return min(latent_dim, int(self.fraction * latent_dim + 1e-9))

    def __call__(self, cell):
        _check_cell(cell, "ManifoldAttractorRegularization")
        m = cell.latent_dim
        k = self.regularized_units(m)
        start = m - k
        if isinstance(cell, PLRNN):
            w, h = cell.effective_W(), cell.h
        elif isinstance(cell, ShallowPLRNN):
            w, h = cell.W1, cell.h1
        else:
            w, h = cell.W, cell.h
        a = ops.convert_to_tensor(cell.a)
        w = ops.convert_to_tensor(w)
        h = ops.convert_to_tensor(h)
        total = (
            _sq(1.0 - a[start:])
            + _sq(w[start:, :])
            + _sq(h[start:])
        )
        return self.strength * total

    def get_config(self):
        return {
            "strength": self.strength,
            "num_units": self.num_units,
            "fraction": self.fraction,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
