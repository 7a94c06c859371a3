"""Backend-agnostic numerics: scans, linear recurrences, the DEER Newton solver.

Nothing here knows about Keras layers; everything works on plain tensors of the
active Keras backend (JAX, TensorFlow or PyTorch). Time is axis -2 of a trajectory
(Keras convention: batch, time, features). The ``sharded_*`` functions
(:mod:`keras_dsr.ops.sharded`, JAX only) split time over several devices.
Solvers are strategy objects (:mod:`keras_dsr.ops.solvers`).
"""

from keras_dsr.ops.jacobian import batch_jacobian
from keras_dsr.ops.linear import linear_recurrence
from keras_dsr.ops.newton import deer_solve, default_tolerances, sequential_solve
from keras_dsr.ops.scan import associative_scan
from keras_dsr.ops import solvers
from keras_dsr.ops.solvers import *  # noqa: F401,F403  (the strategies: solvers.__all__)
from keras_dsr.ops.sharded import sharded_deer_solve, sharded_linear_recurrence

__all__ = [
    "associative_scan",
    "batch_jacobian",
    "deer_solve",
    "default_tolerances",
    "linear_recurrence",
    "sequential_solve",
    "sharded_deer_solve",
    "sharded_linear_recurrence",
    "solvers",
] + solvers.__all__
