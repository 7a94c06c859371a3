"""Parallel associative scan over one axis, on every Keras backend.

On JAX this is ``jax.lax.associative_scan``. On TensorFlow and PyTorch it is our own
odd/even (Ladner-Fischer style) recursion written with the backend's native slicing
and ``keras.ops``: O(n) work, O(log n) depth, and, unlike ``keras.ops.associative_scan``
in Keras 3.15, it keeps the dtype and the device of its inputs.
"""

import keras
from keras import ops

from keras_dsr.ops._tensor import as_tensor


def _check_elems(elems, axis):
    if not elems:
        raise ValueError("associative_scan: `elems` must hold at least one tensor.")
    ndims = [len(e.shape) for e in elems]
    rank = min(ndims)
    if not -rank <= axis < rank:
        raise ValueError(
            f"associative_scan: `axis`={axis} is out of range for inputs of rank {rank}."
        )
    axes = [axis % n for n in ndims]
    lengths = {e.shape[a] for e, a in zip(elems, axes)}
    if len(lengths) != 1:
        raise ValueError(
            "associative_scan: every tensor in `elems` must have the same length "
            f"along `axis`={axis}; got lengths {sorted(map(str, lengths))}."
        )
    (length,) = lengths
    return axes, length


def _slice(x, axis, start, stop, step=1):
    index = (slice(None),) * axis + (slice(start, stop, step),)
    return x[index]


def _interleave(even, odd, axis):
    """Merge ``even`` (positions 0, 2, ...) and ``odd`` (1, 3, ...) along ``axis``."""
    n_even, n_odd = even.shape[axis], odd.shape[axis]
    if n_even > n_odd:  # odd total length: pad odd by one, drop the pad after.
        pad = _slice(even, axis, n_even - 1, n_even)
        odd = ops.concatenate([odd, pad], axis=axis)
    pairs = ops.stack([even, odd], axis=axis + 1)
    shape = list(ops.shape(pairs))  # dynamic where a batch dim is unknown (None)
    merged = shape[:axis] + [2 * n_even] + shape[axis + 2 :]
    out = ops.reshape(pairs, merged)
    if n_even > n_odd:
        out = _slice(out, axis, 0, n_even + n_odd)
    return out


def _scan_recursive(fn, elems, axes, length):
    if length < 2:
        return elems
    left = [_slice(e, a, 0, length - 1, 2) for e, a in zip(elems, axes)]
    right = [_slice(e, a, 1, length, 2) for e, a in zip(elems, axes)]
    reduced = list(fn(tuple(left), tuple(right)))
    odd = _scan_recursive(fn, reduced, axes, length // 2)
    # Elements at even positions 2, 4, ... = odd prefix before them combined with them.
    if length % 2 == 0:
        prev = [_slice(o, a, 0, length // 2 - 1) for o, a in zip(odd, axes)]
    else:
        prev = odd
    rest = [_slice(e, a, 2, length, 2) for e, a in zip(elems, axes)]
    if rest[0].shape[axes[0]] > 0:
        combined = list(fn(tuple(prev), tuple(rest)))
        even = [
            ops.concatenate([_slice(e, a, 0, 1), c], axis=a)
            for e, c, a in zip(elems, combined, axes)
        ]
    else:
        even = [_slice(e, a, 0, 1) for e, a in zip(elems, axes)]
    return [_interleave(ev, od, a) for ev, od, a in zip(even, odd, axes)]


def associative_scan(fn, elems, reverse=False, axis=0):
    """Inclusive scan of an associative binary operator along ``axis``.

    Returns the prefix combinations ``out[i] = e[0] * e[1] * ... * e[i]`` where
    ``a * b = fn(a, b)`` with ``a`` the earlier and ``b`` the later element.

    Args:
        fn: associative function ``fn(a, b) -> c`` on tuples of tensors; it must
            be vectorised over the scanned axis (it receives slices of ``elems``).
        elems: a tuple/list of tensors with the same length along ``axis`` (they may
            differ in rank, e.g. matrices ``[..., T, M, M]`` and vectors
            ``[..., T, M]`` scanned at the same axis index).
        reverse: scan from the end to the start (``out[i] = e[n-1] * ... * e[i]``,
            with the later-in-time element passed first to ``fn``).
        axis: the scanned axis, counted from the front (negative values count from
            the back of the lowest-rank input).

    Returns:
        A tuple of tensors of the same shapes and dtypes as ``elems``.

    Example:
        >>> x = keras.ops.arange(1.0, 5.0)
        >>> associative_scan(lambda a, b: (a[0] + b[0],), (x,))[0]  # [1, 3, 6, 10]
    """
    if not callable(fn):
        raise TypeError(f"associative_scan: `fn` must be callable, got {type(fn)}.")
    if not isinstance(elems, (tuple, list)):
        raise TypeError(
            "associative_scan: `elems` must be a tuple or list of tensors, got "
            f"{type(elems).__name__}."
        )
    elems = [as_tensor(e) for e in elems]
    if axis < 0:
        axis = axis % min(len(e.shape) for e in elems)
    axes, length = _check_elems(elems, axis)
    if len(set(axes)) != 1:
        raise ValueError("associative_scan: `axis` must index the same position in all inputs.")
    if length is None:
        raise ValueError(
            "associative_scan: the length along `axis` must be known when the "
            "computation is traced (got None). Use fixed-length sequences."
        )
    if length == 0:
        raise ValueError("associative_scan: cannot scan a sequence of length 0.")
    if keras.backend.backend() == "jax":
        import jax

        out = jax.lax.associative_scan(
            lambda a, b: tuple(fn(tuple(a), tuple(b))), tuple(elems), reverse=reverse, axis=axis
        )
        return tuple(out)
    if reverse:
        elems = [ops.flip(e, axis=a) for e, a in zip(elems, axes)]
    out = _scan_recursive(fn, elems, axes, length)
    if reverse:
        out = [ops.flip(o, axis=a) for o, a in zip(out, axes)]
    return tuple(out)
