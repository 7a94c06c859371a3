"""The argument checks of keras_dsr: integers (sizes, steps, seeds, counts) and data arrays.

Example:
    >>> check_int(3, "steps")
    3
    >>> check_int(0, "steps", low=1, where="Recipe")
    Traceback (most recent call last):
    ...
    ValueError: Recipe: steps must be an integer >= 1, got 0.
"""

import numpy as np


def _prefix(where):
    return f"{where}: " if where else ""


def check_int(value, name, low=1, where=None, allow_none=False):
    """``int(value)`` when ``value`` is an integer (a bool is not) ``>= low``.

    Args:
        value: the argument.
        name: its name, for the message.
        low: the smallest value allowed.
        where: the function or class it was given to (the message's prefix), or None.
        allow_none: None is allowed too (and returned).

    Raises:
        ValueError: "``where: name`` must be an integer >= ``low``, got ``value``."
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < low:
        alt = " or None" if allow_none else ""
        raise ValueError(f"{_prefix(where)}{name} must be an integer >= {low}{alt}, "
                         f"got {value!r}.")
    return int(value)


def check_number(value, name, low=None, strict=False, where=None, allow_none=False):
    """``float(value)`` when ``value`` is a finite real number (a bool is not) above ``low``.

    Args:
        value: the argument.
        name: its name, for the message.
        low: the bound (None: any finite number).
        strict: ``value > low`` rather than ``value >= low``.
        where: the function or class it was given to (the message's prefix), or None.
        allow_none: None is allowed too (and returned).

    Raises:
        ValueError: "``where: name`` must be a finite number > ``low``, got ``value``."

    Example:
        >>> check_number(0.5, "dt", low=0, strict=True)
        0.5
        >>> check_number(float("nan"), "dt", low=0, strict=True, where="simulate")
        Traceback (most recent call last):
        ...
        ValueError: simulate: dt must be a finite number > 0, got nan.
    """
    if value is None and allow_none:
        return None
    ok = not isinstance(value, (bool, np.bool_)) and \
        isinstance(value, (int, float, np.integer, np.floating)) and np.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        alt = " or None" if allow_none else ""
        raise ValueError(f"{_prefix(where)}{name} must be a finite number{bound}{alt}, "
                         f"got {value!r}.")
    return float(value)


def check_array(x, name, min_length=1, dtype=None):
    """A finite real array ``[T, N]`` (``[T]`` becomes ``[T, 1]``) with ``T >= min_length``.

    ``dtype``: the working dtype; finite values beyond its range (1e39 in
    float32) are refused here rather than becoming inf later.
    """
    try:
        x = np.asarray(x)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"{name} must be an array [T, N] or [T], got {type(x)}.") from e
    if np.iscomplexobj(x):
        raise TypeError(f"{name} is complex ({x.dtype}); only real-valued data are allowed "
                        "(pass x.real or np.abs(x) explicitly if that is what you mean).")
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype}.")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(
            f"{name} must have shape [T, N] or [T] (time steps x variables), got shape "
            f"{x.shape}."
        )
    if x.shape[1] < 1:
        raise ValueError(f"{name} has no variables (shape {x.shape}).")
    if x.shape[0] < min_length:
        raise ValueError(
            f"{name} is too short: {x.shape[0]} time steps, at least {min_length} needed."
        )
    bad = ~np.isfinite(x)
    if bad.any():
        t, n = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN/inf value(s); the first is at time "
            f"step {t}, variable {n}."
        )
    if dtype is not None and np.issubdtype(np.dtype(dtype), np.floating):
        limit = float(np.finfo(dtype).max)
        big = np.abs(x.astype(np.float64, copy=False)) > limit
        if big.any():
            t, n = np.argwhere(big)[0]
            raise ValueError(
                f"{name} has {int(big.sum())} finite value(s) too large for {np.dtype(dtype)} "
                f"(|x| > {limit:.3g}); the first is {x[t, n]:.3g} at time step {t}, variable "
                f"{n}. Rescale the data or choose a wider dtype."
            )
    return x
