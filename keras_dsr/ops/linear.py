"""Linear recurrences h_t = A_t h_{t-1} + b_t solved by a parallel scan."""

from keras import ops

from keras_dsr.ops._tensor import as_tensor, matmul, matvec

from keras_dsr.ops.scan import associative_scan


def _combine_diagonal(earlier, later):
    a1, b1 = earlier
    a2, b2 = later
    return a2 * a1, a2 * b1 + b2


def _combine_dense(earlier, later):
    a1, b1 = earlier
    a2, b2 = later
    return matmul(a2, a1), matvec(a2, b1) + b2


def _validate(a, b, h0):
    b_rank = len(b.shape)
    if b_rank < 2:
        raise ValueError(
            "linear_recurrence: `b` must have shape [..., T, M] (rank >= 2), got "
            f"shape {tuple(b.shape)}."
        )
    a_rank = len(a.shape)
    if a_rank == b_rank:
        dense = False
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(
                "linear_recurrence: diagonal `a` must have the shape of `b` "
                f"[..., T, M]; got a {tuple(a.shape)} and b {tuple(b.shape)}."
            )
    elif a_rank == b_rank + 1:
        dense = True
        m = b.shape[-1]
        if tuple(a.shape[:-1]) != tuple(b.shape) or a.shape[-1] != m:
            raise ValueError(
                "linear_recurrence: dense `a` must have shape [..., T, M, M] "
                f"matching `b` [..., T, M]; got a {tuple(a.shape)} and b {tuple(b.shape)}."
            )
    else:
        raise ValueError(
            "linear_recurrence: `a` must have rank of `b` (diagonal, [..., T, M]) or "
            f"rank of `b` + 1 (dense, [..., T, M, M]); got a {tuple(a.shape)} and b "
            f"{tuple(b.shape)}."
        )
    if b.shape[-2] == 0:
        raise ValueError("linear_recurrence: the time axis of `b` has length T = 0.")
    if h0 is not None:
        expected = tuple(b.shape[:-2]) + (b.shape[-1],)
        if tuple(h0.shape) != expected:
            raise ValueError(
                f"linear_recurrence: `h0` must have shape [..., M] = {expected}, got "
                f"{tuple(h0.shape)}."
            )
    return dense


def linear_recurrence(a, b, h0=None, reverse=False):
    """Solve ``h_t = A_t h_{t-1} + b_t`` for all t with a parallel scan.

    Time is the second-to-last axis of ``b`` (Keras convention: batch, time,
    features). ``A_t`` is diagonal when ``a`` has the shape of ``b`` and dense when it
    has one more axis.

    Forward (``reverse=False``): ``h_t = A_t h_{t-1} + b_t`` for t = 1..T from
    ``h_0 = h0`` (zeros when None). Reverse (``reverse=True``): ``h_t = A_t h_{t+1} +
    b_t`` for t = T..1 from ``h_{T+1} = h0``; an adjoint recursion
    ``l_t = J_{t+1}^T l_{t+1} + g_t`` is a reverse recurrence with ``A_t = J_{t+1}^T``.

    The scan composes the affine maps ``(A_t, b_t)``: ``(A_i, b_i)`` then
    ``(A_j, b_j)`` is ``(A_j A_i, A_j b_i + b_j)``; ``h0`` is folded into the first
    step. Work is O(T M) for diagonal and O(T M^3) for dense ``A``, depth O(log T).

    Args:
        a: ``[..., T, M]`` (diagonal) or ``[..., T, M, M]`` (dense) coefficients.
        b: ``[..., T, M]`` offsets. Leading batch dims are arbitrary.
        h0: optional ``[..., M]`` initial state.
        reverse: run time backwards (see above).

    Returns:
        ``h`` of shape ``[..., T, M]``: ``h_1 .. h_T`` (dtype of ``b``).

    Example:
        >>> a = keras.ops.full((1, 4, 1), 0.5); b = keras.ops.ones((1, 4, 1))
        >>> linear_recurrence(a, b)[0, :, 0]   # [1, 1.5, 1.75, 1.875]
    """
    a = as_tensor(a)
    b = as_tensor(b)
    if h0 is not None:
        h0 = as_tensor(h0)
    dense = _validate(a, b, h0)
    a = ops.cast(a, b.dtype)
    time_axis = len(b.shape) - 2
    if h0 is not None:
        h0 = ops.cast(h0, b.dtype)
        first = -1 if reverse else 0
        index = (Ellipsis, slice(first, None) if reverse else slice(0, 1), slice(None))
        a_first = a[index + ((slice(None),) if dense else ())]
        b_first = b[index]
        h0e = h0[..., None, :]
        extra = matvec(a_first, h0e) if dense else a_first * h0e
        if reverse:
            b = ops.concatenate([b[..., :-1, :], b_first + extra], axis=-2)
        else:
            b = ops.concatenate([b_first + extra, b[..., 1:, :]], axis=-2)
    combine = _combine_dense if dense else _combine_diagonal
    _, h = associative_scan(combine, (a, b), reverse=reverse, axis=time_axis)
    return h
