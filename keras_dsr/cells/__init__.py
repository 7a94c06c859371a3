"""One-step maps with analytic Jacobians (the PLRNN family of the Durstewitz lab).

Every cell is a :class:`DSRCell`: ``cell(z, u=None)`` maps ``z`` [..., M] to the
next state, ``cell.jacobian(z)`` gives ``dF/dz`` [..., M, M] and
``cell.jacobian_diagonal(z)`` its diagonal [..., M].
"""

from keras_dsr.cells.base import DSRCell
from keras_dsr.cells.plrnn import (
    ALRNN,
    PLRNN,
    ClippedShallowPLRNN,
    ShallowPLRNN,
    normalized_positive_definite,
)
from keras_dsr.cells.polynomial import PolynomialFlow, monomial_exponents

__all__ = [
    "DSRCell",
    "PLRNN",
    "ShallowPLRNN",
    "ClippedShallowPLRNN",
    "ALRNN",
    "normalized_positive_definite",
    "PolynomialFlow",
    "monomial_exponents",
]
