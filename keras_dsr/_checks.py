"""One check for the integer arguments of keras_dsr (sizes, steps, seeds, counts).

Example:
    >>> check_int(3, "steps")
    3
    >>> check_int(0, "steps", low=1, where="Recipe")
    Traceback (most recent call last):
    ...
    ValueError: Recipe: steps must be an integer >= 1, got 0.
"""

import numpy as np


def check_int(value, name, low=1, where=None):
    """``int(value)`` when ``value`` is an integer (a bool is not) ``>= low``.

    Args:
        value: the argument.
        name: its name, for the message.
        low: the smallest value allowed.
        where: the function or class it was given to (the message's prefix), or None.

    Raises:
        ValueError: "``where: name`` must be an integer >= ``low``, got ``value``."
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < low:
        prefix = f"{where}: " if where else ""
        raise ValueError(f"{prefix}{name} must be an integer >= {low}, got {value!r}.")
    return int(value)
