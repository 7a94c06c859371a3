"""Linear recurrences h_t = A_t h_{t-1} + b_t solved by a parallel scan."""

import keras
from keras import ops

from keras_dsr._checks import check_int
from keras_dsr.ops._tensor import as_tensor, matmul, matvec

from keras_dsr.ops.scan import _slice, associative_scan


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


def _check_chunk_size(chunk_size):
    return check_int(chunk_size, "chunk_size", where="linear_recurrence", allow_none=True)


def _chunks_first(x, axis, n, chunk):
    """``[*lead, n*C, *rest]`` (time at ``axis``) -> ``[n, *lead, C, *rest]``."""
    shape = list(ops.shape(x))
    x = ops.reshape(x, shape[:axis] + [n, chunk] + shape[axis + 1 :])
    return ops.moveaxis(x, axis, 0)


def chunked_recurrence(coefficients, xs, h0, chunk_size, reverse=False, remat=False):
    """A linear recurrence whose coefficients are produced chunk by chunk.

    The T steps are cut into chunks of ``chunk_size`` = C steps. For each chunk,
    ``coefficients(*xs_chunk)`` returns that chunk's ``(a_c, b_c)`` (as in
    :func:`linear_recurrence`, with C steps), the chunk is solved by one parallel
    scan started from the state the previous chunk ended with, and the chunks run
    one after another in a sequential ``keras.ops.scan``. So neither the
    coefficients of all T steps nor the scan's temporaries over all T steps ever
    exist at once: the memory is O(T M) for the inputs and the output plus that of
    one chunk. The ``T % C`` leftover steps (at the end going forward, at the start
    going backward) form one last, shorter chunk.

    Args:
        coefficients: ``f(*xs_chunk) -> (a_c, b_c)``; ``xs_chunk`` are the ``xs``
            cut to C (or fewer) steps, ``a_c`` ``[*lead, C, M]`` (diagonal) or
            ``[*lead, C, M, M]`` (dense), ``b_c`` ``[*lead, C, M]``.
        xs: tuple of tensors ``[*lead, T, ...]``: time on the axis after the
            leading dims of ``h0``.
        h0: ``[*lead, M]`` initial state (``h_0``, or ``h_{T+1}`` when reverse).
        chunk_size: C, a positive int.
        reverse: run time backwards, as in :func:`linear_recurrence`.
        remat: on JAX, rematerialise each chunk (``jax.checkpoint``): reverse-mode
            autodiff then stores only the chunks' inputs and recomputes their
            coefficients and scans in the backward pass, so gradients too need
            only O(T M) plus one chunk of memory. Ignored on other backends.

    Returns:
        ``[*lead, T, M]``, the states ``h_1 .. h_T``.
    """
    if not xs:
        raise ValueError("chunked_recurrence: `xs` must hold at least one tensor.")
    check_int(chunk_size, "chunk_size", where="chunked_recurrence")
    axis = len(h0.shape) - 1
    t, m = xs[0].shape[axis], h0.shape[-1]
    if t is None:
        raise ValueError("chunked_recurrence: the length T (axis of time in `xs`) must be known.")
    lead = list(ops.shape(h0)[:-1])
    n, rest = divmod(t, chunk_size)
    # Full chunks cover steps [0, n*C) going forward and [rest, T) going backward;
    # ``edge`` is the position of the state a chunk hands on to the next one.
    start, edge = (rest, 0) if reverse else (0, -1)
    stop = start + n * chunk_size

    def solve(h_in, xs_c):
        a_c, b_c = coefficients(*xs_c)
        dense = len(a_c.shape) > len(b_c.shape)
        return _scan(ops.cast(a_c, h0.dtype), ops.cast(b_c, h0.dtype), h_in, reverse, dense)

    def body(prev, xs_c):
        # The carry is the previous chunk's whole output [*lead, C, M] (TensorFlow's
        # keras scan needs outputs shaped like the carry); its edge state starts this chunk.
        h = solve(prev[..., edge, :], xs_c)
        return h, h

    parts = []
    last = h0[..., None, :]
    if n > 0:
        if remat and keras.backend.backend() == "jax":
            import jax

            body = jax.checkpoint(body, prevent_cse=False)
        pad = ops.zeros(lead + [chunk_size - 1, m], dtype=h0.dtype)
        init = ops.concatenate([last, pad] if reverse else [pad, last], axis=-2)
        chunks = tuple(
            _chunks_first(_slice(x, axis, start, stop), axis, n, chunk_size) for x in xs
        )
        last, hs = ops.scan(body, init, chunks, reverse=reverse)
        parts.append(ops.reshape(ops.moveaxis(hs, 0, axis), lead + [n * chunk_size, m]))
    if rest:
        r0, r1 = (0, rest) if reverse else (stop, t)
        h_rest = solve(last[..., edge, :], tuple(_slice(x, axis, r0, r1) for x in xs))
        parts.insert(0 if reverse else 1, h_rest)
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-2)


def _scan(a, b, h0, reverse, dense):
    """One parallel scan over the whole time axis (validated, same-dtype inputs)."""
    time_axis = len(b.shape) - 2
    if h0 is not None:
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


def linear_recurrence(a, b, h0=None, reverse=False, chunk_size=None):
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

    Chunked (``chunk_size=C``): the time axis is cut into chunks of C steps; each
    chunk is one parallel scan started from the previous chunk's last state, and
    the chunks run one after another (a sequential ``keras.ops.scan``). Same
    result up to float rounding, depth O((T/C) log C), and the scan's temporary
    memory (several ``[..., C, M, M]`` copies instead of several
    ``[..., T, M, M]``) is that of one chunk. Meant for long dense recurrences.

    Args:
        a: ``[..., T, M]`` (diagonal) or ``[..., T, M, M]`` (dense) coefficients.
        b: ``[..., T, M]`` offsets. Leading batch dims are arbitrary.
        h0: optional ``[..., M]`` initial state.
        reverse: run time backwards (see above).
        chunk_size: None (one scan over all T steps) or a positive int C (see
            above); C >= T is the same as None.

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
    chunk_size = _check_chunk_size(chunk_size)
    a = ops.cast(a, b.dtype)
    if h0 is not None:
        h0 = ops.cast(h0, b.dtype)
    if chunk_size is not None and b.shape[-2] is None:
        raise ValueError("linear_recurrence: `chunk_size` needs a known length T (axis -2 of b).")
    if chunk_size is not None and chunk_size < b.shape[-2]:
        if h0 is None:
            h0 = ops.zeros(tuple(ops.shape(b)[:-2]) + (b.shape[-1],), dtype=b.dtype)
        return chunked_recurrence(lambda a_c, b_c: (a_c, b_c), (a, b), h0, chunk_size, reverse)
    return _scan(a, b, h0, reverse, dense)
