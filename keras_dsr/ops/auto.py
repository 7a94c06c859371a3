"""``method="auto"``: pick the DEER variant or the sequential loop for the device and problem.

The rule, and the measurements behind it (``benchmarks/RESULTS_scale.md``, one run;
a rerun gave 0.78 at M = 3 and 0.75 at M = 8, a batch-4 run 1.16 at M = 8: parity near M = 8; GTF-forced
clipped shPLRNN, L = 64, batch 1, training step = forward + gradient, JAX, 2-core
CPU):

=====  =========================  ========================
 M      DEER / BPTT, T = 10^3      DEER / BPTT, T = 10^4
=====  =========================  ========================
 3      0.73                       0.82
 8      -                          1.52
 16     2.08                       3.01
 64     15.8                       19.6
=====  =========================  ========================

* CPU: dense DEER (``"deer"``) for latent size M <= 4, where it is faster than
  BPTT and has O(log T) depth (measured at M = 3; at M = 8 the three runs
  scatter 0.75-1.52x, so the cut stays on the safe side); ``"sequential"`` (BPTT, the same gradients) above, where the
  O(T M^3) work of the dense scan loses to the O(T M L) loop on a few cores.
* GPU / TPU: ``"deer"`` for M <= 32, ``"quasi"`` (diagonal Jacobians, O(T M) scan
  work) above. Not yet measured on a GPU (none was available); the ``--gpu``
  profile of ``benchmarks/bench_scale.py`` is the check.

Example:
    >>> choose_method(3, platform="cpu")
    'deer'
    >>> choose_method(64, platform="gpu")
    'quasi'
"""

import keras
from keras_dsr._checks import check_int

__all__ = ["choose_method", "current_platform", "resolve_method"]

CPU_DEER_MAX_LATENT = 4
ACCELERATOR_DEER_MAX_LATENT = 32
PLATFORMS = ("cpu", "gpu", "tpu")


def current_platform():
    """``"cpu"``, ``"gpu"`` or ``"tpu"``: where the current Keras backend computes."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        platform = jax.default_backend()
        return platform if platform in PLATFORMS else "gpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"
    if backend == "torch":
        import torch

        return "gpu" if torch.cuda.is_available() else "cpu"
    return "cpu"


def choose_method(latent_dim, platform=None):
    """The solve method for latent size ``latent_dim`` on ``platform`` (see module docstring).

    Args:
        latent_dim: latent size M (positive int).
        platform: ``"cpu"``, ``"gpu"`` or ``"tpu"``; default :func:`current_platform`.

    Returns:
        ``"deer"``, ``"quasi"`` or ``"sequential"``.
    """
    check_int(latent_dim, "latent_dim")
    platform = current_platform() if platform is None else platform
    if platform not in PLATFORMS:
        raise ValueError(f"`platform` must be one of {PLATFORMS} or None, got {platform!r}.")
    if platform == "cpu":
        return "deer" if latent_dim <= CPU_DEER_MAX_LATENT else "sequential"
    return "deer" if latent_dim <= ACCELERATOR_DEER_MAX_LATENT else "quasi"


def resolve_method(method, latent_dim):
    """``method`` itself, or :func:`choose_method` for ``"auto"``."""
    return choose_method(int(latent_dim)) if method == "auto" else method
