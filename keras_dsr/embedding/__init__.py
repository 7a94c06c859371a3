"""Delay embedding of scalar or few-channel series, with lag and dimension chosen from data.

A measured series x_t (one channel, or a few) is lifted into a state space by
delay coordinates (Takens 1981; Sauer, Yorke & Casdagli 1991)::

    y_i = (x_i, x_{i+lag}, x_{i+2 lag}, ..., x_{i+(dim-1) lag})

:func:`delay_embed` builds these vectors; the rest chooses ``lag`` and ``dim``:

- lag: the first minimum of the auto mutual information (Fraser & Swinney 1986),
  estimated with a histogram (:func:`auto_mutual_information`); when the curve has
  no minimum within ``max_lag``, the first lag where the autocorrelation falls
  below 1/e (:func:`estimate_lag`).
- dimension: false nearest neighbours (Kennel, Brown & Abarbanel 1992,
  :func:`false_nearest_neighbors`) or Cao's averaged false neighbours (Cao 1997,
  :func:`cao_e1_e2`), both with neighbours from ``scipy.spatial.cKDTree`` and a
  Theiler window that keeps temporally adjacent samples out of the neighbour
  search (:func:`estimate_dimension`).
- both at once: :func:`choose_embedding`.
- the whole measurement (observed columns, then the embedding) as one object,
  :class:`Observation`, and the training data with the model settings from the
  command's options (``--observe``, ``--embed``, ``--latent``, ``--observation``):
  :func:`prepare`.

Why not PECUZAL (Krämer et al. 2021), the method the Durstewitz lab used for its
ECG benchmark: its Python implementation on PyPI, ``pecuzal-embedding``, has had
no release since version 1.3.4 (August 2021), and it is a pure-Python
reimplementation whose cost grows with the number of candidate delays times the
number of points; the maintained implementation is the Julia package
DelayEmbeddings.jl. This module therefore uses the two classical, independent
criteria (AMI for the lag, FNN / Cao for the dimension), which need only numpy
and scipy and are quick on 10^4-10^5 points. For non-uniform delays, pass the
delays explicitly to :func:`delay_embed` (``lag`` as a sequence).

Measured on Lorenz-63's x (``keras_dsr.systems.simulate("lorenz63", 20_000,
seed=s)``, dt = 0.01, seeds 0-4; ``tests/test_embedding.py``): first AMI
minimum at 17-21 samples (0.17-0.21 time units, within the 0.15-0.2 time units
usually quoted for this system), FNN gives dimension 3 for every seed (false
fraction about 7 % at d = 2, 0 at d = 3), and so does Cao's rule; 3 is the
embedding dimension Kennel et al. (1992) report for Lorenz-63.

Example:
    >>> import numpy as np
    >>> x = np.arange(10.0)
    >>> delay_embed(x, dim=3, lag=2)[:2]
    array([[0., 2., 4.],
           [1., 3., 5.]])
"""

from keras_dsr.embedding.delay import auto_mutual_information, delay_embed, estimate_lag
from keras_dsr.embedding.dimension import (cao_e1_e2, choose_embedding, estimate_dimension,
                                           false_nearest_neighbors)
from keras_dsr.embedding.observe import (Observation, Prepared, parse_embed, parse_observe,
                                         prepare)

__all__ = [
    "Observation",
    "Prepared",
    "auto_mutual_information",
    "cao_e1_e2",
    "choose_embedding",
    "delay_embed",
    "estimate_dimension",
    "estimate_lag",
    "false_nearest_neighbors",
    "parse_embed",
    "parse_observe",
    "prepare",
]
