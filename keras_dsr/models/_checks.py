"""Validation of training data shared by the DSR models (:class:`DSRModel`, :class:`SSMModel`)."""

import numpy as np
from keras import ops


def is_array(x):
    """True for data that can be checked up front: a numpy array or a backend tensor."""
    return isinstance(x, np.ndarray) or ops.is_tensor(x)


def validate_windows(x, n_features=None, name="x", where=None):
    """Check training windows ``x`` ``[B, T, N]``: float, finite, T >= 2, N features.

    Args:
        x: numpy array, backend tensor or nested lists of shape ``[B, T, N]``.
        n_features: the number N of observed variables the model expects (None: any).
        name: the argument's name in the messages (``"x"``, ``"validation_data"``).
        where: the caller in the messages, e.g. ``"SSMModel.fit"`` (None: no prefix).

    Returns:
        ``x`` as a numpy array.

    Raises:
        TypeError: non-floating data. ValueError: wrong rank, too short, wrong number
        of features, NaN or inf (the first bad index is named).

    Example:
        >>> validate_windows(np.zeros((2, 10, 3), "float32"), 3).shape
        (2, 10, 3)
    """
    pre = f"{where}: " if where else ""
    arr = ops.convert_to_numpy(x) if ops.is_tensor(x) else np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{pre}`{name}` must hold floating-point data (e.g. float32), got "
                        f"dtype {arr.dtype}.")
    n = "features" if n_features is None else n_features
    if arr.ndim != 3:
        hint = (" (one series [T, N]: use x[None], or windows from keras_dsr.data."
                "TrajectoryWindows)" if arr.ndim == 2 else "")
        raise ValueError(f"{pre}`{name}` must have shape [batch, time, features] = "
                         f"[batch, time, {n}], got shape {arr.shape}{hint}.")
    if arr.shape[1] < 2:
        raise ValueError(f"{pre}`{name}` must have at least 2 time steps (one input, one "
                         f"target), got shape {arr.shape}.")
    if n_features is not None and arr.shape[2] != n_features:
        raise ValueError(f"{pre}`{name}` must have {n_features} features (last axis; the "
                         f"model observes {n_features}), got shape {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{pre}`{name}` contains NaN or inf (first at index {first}) "
                         f"in {int(bad.sum())} of {arr.size} values; remove or interpolate "
                         "missing values first.")
    return arr
