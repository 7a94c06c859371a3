"""``DEERLayer``: a recurrent layer evaluated in parallel along time by DEER.

A drop-in for ``keras.layers.RNN(cell, return_sequences=True)``: the same cell, the
same outputs (to float tolerance), but the recurrence ``z_t = F(z_{t-1}, u_t)`` is
solved for all t at once by Newton's method over parallel scans
(:func:`keras_dsr.ops.deer_solve`, docs/method.md "DEER") instead of a loop of T steps.
Gradients are the implicit-function-theorem ones, equal to BPTT's.

The cell is either a Keras RNN cell (wrapped in
:class:`keras_dsr.cells.keras_adapter.KerasCellAdapter`, states concatenated into
one vector, Jacobians by autodiff) or a keras_dsr :class:`DSRCell` (used directly,
with its analytic Jacobian; its output is its state).
"""

import keras
from keras import ops

from keras_dsr._checks import check_int, check_number
from keras_dsr.cells.base import DSRCell
from keras_dsr.cells.keras_adapter import KerasCellAdapter, check_keras_cell
from keras_dsr.ops.auto import resolve_method
from keras_dsr.ops._tensor import as_tensor
from keras_dsr.ops.newton import deer_solve
from keras_dsr.ops.solvers import get_linear_solver, get_solver, method_option, serialize

_NAME = "DEERLayer"


def _in_untracked_jax_trace(value):
    """True for a JAX tracer outside a Keras ``StatelessScope``.

    Assigning it to a variable would leak the tracer out of ``jax.jit``; inside a
    StatelessScope (``stateless_call``, ``model.fit``) Keras collects the update.
    Whether one is open is read from a probe scope's ``original_scope`` (the scope
    it was entered in).
    """
    if keras.backend.backend() != "jax":
        return False
    import jax

    if not isinstance(value, jax.core.Tracer):
        return False
    with keras.StatelessScope(initialize_variables=False) as probe:
        pass
    return getattr(probe, "original_scope", None) is None


def _check_tolerance(value, name):
    return check_number(value, name, low=0, strict=True, where=_NAME, allow_none=True)


@keras.saving.register_keras_serializable(package="keras_dsr")
class DEERLayer(keras.layers.Layer):
    """Recurrent layer solved in parallel along time by DEER (Newton over scans).

    Computes the same as ``keras.layers.RNN(cell, return_sequences=...,
    return_state=...)`` with zero (or given) initial states, for inputs ``[B, T, D]``.

    Args:
        cell: a Keras RNN cell (``keras.layers.GRUCell``, ``LSTMCell``,
            ``SimpleRNNCell``, or any layer with ``state_size`` and
            ``call(inputs, states, training=...)``; wrapped in
            :class:`KerasCellAdapter`) or a keras_dsr ``DSRCell`` (analytic
            Jacobian; outputs are its states; its ``input_dim`` must equal D).
            Cells with dropout are rejected.
        method: the nonlinear solver (:mod:`keras_dsr.ops.solvers`), an object or
            its name: ``Newton()`` / ``"deer"`` (dense Jacobians, the default),
            ``QuasiNewton()`` / ``"quasi"`` (diagonal Jacobians),
            ``DampedNewton(max_norm)`` / ``"damped"`` (norm-clipped Jacobians) or
            ``Sequential()`` / ``"sequential"`` (compiled loop); see
            :func:`keras_dsr.ops.deer_solve`; or ``"auto"`` (by device and state
            size, :func:`keras_dsr.ops.auto.choose_method`).
        chunk_size: None or a positive int C: each Newton step runs C time steps at
            a time (``ChunkedScan(C)``: same result, the dense Jacobians of one
            chunk in memory).
        linear_solver: None (``Scan()``, one parallel scan), or a linear solver
            object (``Scan()``, ``ChunkedScan(C)``, ``ShardedScan()``) or
            ``"scan"``; not together with ``chunk_size``.
        return_sequences: return all outputs ``[B, T, units]`` (default) or only the
            last ``[B, units]``.
        return_state: also return the final states, as ``keras.layers.RNN`` does:
            ``output, *states`` (``output, h`` for GRU/SimpleRNN, ``output, h, c``
            for LSTM, ``output, z`` for a DSRCell).
        atol, rtol, max_iter: Newton stopping rule (defaults of ``deer_solve``).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``, ...).

    Call arguments:
        inputs: ``[B, T, D]``.
        initial_state: None (zeros, like ``keras.layers.RNN``) or the cell's states
            as a list of tensors (``[h0, c0]`` for LSTM), or one tensor.
        training: passed to a Keras cell.

    Diagnostics of the last call (non-trainable int32 scalar variables, updated in
    ``call`` and in ``model.fit``): ``iterations`` (Newton iterations) and
    ``fell_back`` (1 if the solve failed and the sequential result was used).
    (Under a bare ``jax.jit`` without ``stateless_call`` they are not updated.)

    Notes:
        The sequence length T should be known when the computation is traced
        (``keras.Input(shape=(T, D))``): the parallel scans are built for it. On
        TensorFlow a graph traced with an unknown T runs a sequential loop instead.

    Example:
        >>> layer = DEERLayer(keras.layers.GRUCell(8))
        >>> y = layer(keras.random.normal((2, 100, 3)))   # [2, 100, 8]
        >>> int(layer.iterations)                        # Newton iterations used
    """

    def __init__(
        self,
        cell,
        method="deer",
        return_sequences=True,
        return_state=False,
        atol=None,
        rtol=None,
        max_iter=None,
        chunk_size=None,
        linear_solver=None,
        **kwargs,
    ):
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        if isinstance(cell, (DSRCell, KerasCellAdapter)):
            wrapped, auto_wrapped = cell, False
        else:
            check_keras_cell(cell, where=_NAME, name="cell")
            wrapped, auto_wrapped = KerasCellAdapter(cell), True
        method = method_option(method, _NAME)
        try:
            get_linear_solver(linear_solver, chunk_size)
        except (TypeError, ValueError) as err:
            raise type(err)(f"{_NAME}: {err}") from None
        for flag, value in (("return_sequences", return_sequences), ("return_state", return_state)):
            if not isinstance(value, bool):
                raise TypeError(f"{_NAME}: `{flag}` must be a bool, got {value!r}.")
        check_int(max_iter, "max_iter", where=_NAME, allow_none=True)
        super().__init__(**kwargs)
        self.cell = wrapped
        self._auto_wrapped = auto_wrapped
        self.method = method
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.atol = _check_tolerance(atol, "atol")
        self.rtol = _check_tolerance(rtol, "rtol")
        self.max_iter = max_iter
        self.chunk_size = chunk_size
        self.linear_solver = linear_solver
        if isinstance(linear_solver, dict):
            self.linear_solver = get_linear_solver(linear_solver)
        self._is_dsr = isinstance(wrapped, DSRCell)
        self.iterations = None
        self.fell_back = None

    # ----------------------------------------------------------------- sizes
    @property
    def state_size(self):
        """M, the size of the flat state vector solved for."""
        return self.cell.state_size

    @property
    def output_size(self):
        return self.cell.output_size

    @property
    def state_sizes(self):
        """Sizes of the states returned with ``return_state`` (flat list)."""
        return [self.cell.latent_dim] if self._is_dsr else self.cell.state_sizes

    # ----------------------------------------------------------------- build
    def _check_inputs_shape(self, shape):
        if shape is None or len(shape) != 3:
            raise ValueError(
                f"{_NAME}: `inputs` must have shape [batch, time, features] (rank 3), got "
                f"shape {None if shape is None else tuple(shape)}."
            )
        d = shape[-1]
        if self._is_dsr and d is not None and d != self.cell.input_dim:
            raise ValueError(
                f"{_NAME}: the last dim of `inputs` ({d}) must equal the DSRCell's "
                f"input_dim={self.cell.input_dim}; construct the cell with input_dim={d}."
            )

    def build(self, inputs_shape, initial_state_shape=None):
        inputs_shape = None if inputs_shape is None else tuple(inputs_shape)
        self._check_inputs_shape(inputs_shape)
        m = self.state_size
        if not self.cell.built:
            u_shape = (None, inputs_shape[-1])
            if self._is_dsr:
                self.cell.build((None, m), u_shape if self.cell.input_dim > 0 else None)
            else:
                self.cell.build((None, m), u_shape)
        self.iterations = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="iterations"
        )
        self.fell_back = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="fell_back"
        )
        self.built = True

    # ------------------------------------------------------------ the solve
    def _initial_z(self, inputs, initial_state):
        sizes = self.state_sizes
        if initial_state is None:
            batch = ops.shape(inputs)[0]
            if not self._is_dsr and hasattr(self.cell.cell, "get_initial_state"):
                states = self.cell.cell.get_initial_state(batch_size=batch)
                return ops.cast(self.cell.join_states(states), self.compute_dtype)
            return ops.zeros((batch, sum(sizes)), dtype=self.compute_dtype)
        flat = keras.tree.flatten(initial_state) if keras.tree.is_nested(initial_state) else [initial_state]
        if len(flat) != len(sizes):
            raise ValueError(
                f"{_NAME}: `initial_state` must hold {len(sizes)} tensor(s) of shapes "
                f"{[(None, s) for s in sizes]} (the cell's states), got {len(flat)}."
            )
        flat = [ops.convert_to_tensor(s, dtype=self.compute_dtype) for s in flat]
        for i, (s, size) in enumerate(zip(flat, sizes)):
            if len(s.shape) != 2 or (s.shape[-1] is not None and s.shape[-1] != size):
                raise ValueError(
                    f"{_NAME}: `initial_state`[{i}] must have shape [batch, {size}], got "
                    f"shape {tuple(s.shape)}."
                )
        return flat[0] if len(flat) == 1 else ops.concatenate(flat, axis=-1)

    def _functions(self, training):
        """``step_fn(z, u)`` and ``jacobian_fn`` for the solver.

        ``step_fn`` carries the cell's ``step_and_jacobian`` (and, for a DSRCell,
        ``jacobian_diagonal``): :func:`deer_solve` then evaluates the map and its
        Jacobian in one pass per Newton step.
        """
        if self._is_dsr:
            cell = self.cell

            def step_fn(z, u):
                return cell(z, u)

            step_fn.step_and_jacobian = cell.step_and_jacobian
            step_fn.jacobian_diagonal = cell.jacobian_diagonal
            return step_fn, None
        adapter = self.cell

        def step_fn(z, u):
            return adapter.step(z, u, training=training)[1]

        step_fn.step_and_jacobian = lambda z, u: adapter.step_and_jacobian(z, u, training=training)
        return step_fn, None

    def _solve(self, z0, inputs, training):
        """``(z [B, T, M], iterations, fell_back)`` for ``z0`` [B, M], ``inputs`` [B, T, D]."""
        step_fn, jacobian_fn = self._functions(training)
        u = inputs if inputs.shape[-1] != 0 else None
        t = inputs.shape[1]
        if keras.backend.backend() == "tensorflow" and t is None:
            return self._solve_tf_dynamic(step_fn, jacobian_fn, z0, inputs, u)
        z, info = deer_solve(
            step_fn,
            z0,
            u,
            length=t,
            jacobian_fn=jacobian_fn,
            method=resolve_method(self.method, z0.shape[-1]),
            atol=self.atol,
            rtol=self.rtol,
            max_iter=self.max_iter,
            chunk_size=self.chunk_size,
            linear_solver=self.linear_solver,
        )
        return z, info["iterations"], info["fell_back"]

    def _solve_tf_dynamic(self, step_fn, jacobian_fn, z0, inputs, u):
        """TensorFlow graphs traced with an unknown sequence length.

        The parallel scans need the length when the graph is built (an unknown
        batch size is fine). Keras retraces ``predict``/``fit`` with ``None`` for an
        axis whose length changed between calls; the recurrence then runs as a
        sequential ``tf.scan`` (the same values, no Newton iterations).
        """
        import tensorflow as tf

        del jacobian_fn
        xs = tf.transpose(inputs, (1, 0, 2))

        def body(z, x):
            return step_fn(z, x if u is not None else None)

        z = tf.transpose(tf.scan(body, xs, initializer=z0), (1, 0, 2))
        return z, tf.constant(0, "int32"), tf.constant(False)

    # ------------------------------------------------------------------ call
    def call(self, inputs, initial_state=None, training=None):
        inputs = ops.convert_to_tensor(inputs, dtype=self.compute_dtype)
        self._check_inputs_shape(tuple(inputs.shape))
        z0 = self._initial_z(inputs, initial_state)
        if (
            not self._is_dsr
            and inputs.shape[1] is not None
            and not get_solver(resolve_method(self.method, z0.shape[-1])).parallel
        ):
            return self._call_sequential(z0, inputs, training)
        z, iterations, fell_back = self._solve(z0, inputs, training)
        z = ops.cast(z, self.compute_dtype)
        self._record(iterations, fell_back)

        if self._is_dsr:
            outputs = z if self.return_sequences else z[:, -1]
            states = [z[:, -1]]
        elif self.cell.output_state_index is not None:
            # The cell's output is one of its states (GRU, SimpleRNN, LSTM's h):
            # the solved trajectory holds the outputs, and the final states are
            # its last row, in the cell's own structure.
            index = self.cell.output_state_index
            flat = keras.tree.flatten(self.cell.split_states(z))
            outputs = flat[index] if self.return_sequences else flat[index][:, -1]
            last = self.cell.split_states(z[:, -1])
            states = list(last) if keras.tree.is_nested(last) else [last]
        else:
            # The cell's outputs (and, for return_state, its final states in its own
            # structure) from the previous states, in one vectorised cell call.
            if self.return_sequences:
                z_prev = ops.concatenate([z0[:, None, :], z[:, :-1, :]], axis=1)
                outputs, new_states = self.cell.step_states(z_prev, inputs, training=training)
                new_states = keras.tree.map_structure(lambda s: s[:, -1], new_states)
            else:
                t = z.shape[1]
                if t is None:  # TensorFlow, unknown length
                    z_prev = ops.concatenate([z0[:, None, :], z[:, :-1, :]], axis=1)[:, -1]
                else:
                    z_prev = z0 if t == 1 else z[:, -2, :]
                outputs, new_states = self.cell.step_states(z_prev, inputs[:, -1, :], training=training)
            states = list(new_states) if keras.tree.is_nested(new_states) else [new_states]
        outputs = ops.cast(outputs, self.compute_dtype)
        if self.return_state:
            return (outputs, *states)
        return outputs

    def _call_sequential(self, z0, inputs, training):
        """Method "sequential" with a Keras cell: one compiled loop over time.

        Each step calls the cell once and keeps both its output and its new
        states (no second, vectorised pass for the outputs), as
        ``keras.layers.RNN`` does.
        """
        adapter = self.cell

        def body(carry, u):
            # Carry and per-step output have one structure (TensorFlow's scan
            # requires it): (state, cell output).
            z, _ = carry
            out, new_states = adapter.step_states(z, u, training=training)
            z_next = ops.cast(adapter.join_states(new_states), z.dtype)
            step = (z_next, ops.cast(out, z.dtype))
            return step, step

        out0 = ops.zeros((ops.shape(z0)[0], adapter.output_size), dtype=z0.dtype)
        (z_last, _), (_, outs) = ops.scan(body, (z0, out0), ops.moveaxis(inputs, 1, 0))
        self._record(as_tensor(0, "int32"), as_tensor(False))
        outputs = ops.moveaxis(outs, 0, 1) if self.return_sequences else outs[-1]
        outputs = ops.cast(outputs, self.compute_dtype)
        if self.return_state:
            states = adapter.split_states(z_last)
            states = list(states) if keras.tree.is_nested(states) else [states]
            return (outputs, *states)
        return outputs

    def _record(self, iterations, fell_back):
        if self.iterations is None:
            return
        values = (ops.cast(iterations, "int32"), ops.cast(fell_back, "int32"))
        if any(_in_untracked_jax_trace(v) for v in values):
            return
        if keras.backend.backend() == "torch":
            values = tuple(v.detach() for v in values)
        self.iterations.assign(values[0])
        self.fell_back.assign(values[1])

    def compute_output_shape(self, inputs_shape, initial_state_shape=None):
        batch, t = inputs_shape[0], inputs_shape[1]
        units = self.output_size
        out = (batch, t, units) if self.return_sequences else (batch, units)
        if not self.return_state:
            return out
        if self._is_dsr:
            return (out, (batch, self.state_size))
        shapes = keras.tree.pack_sequence_as(
            self.cell._structure, [(batch, s) for s in self.cell.state_sizes]
        )
        return (out, *shapes)

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        cell = self.cell.cell if self._auto_wrapped else self.cell
        config.update(
            {
                "cell": keras.saving.serialize_keras_object(cell),
                "method": serialize(self.method),
                "return_sequences": self.return_sequences,
                "return_state": self.return_state,
                "atol": self.atol,
                "rtol": self.rtol,
                "max_iter": self.max_iter,
                "chunk_size": self.chunk_size,
                "linear_solver": serialize(self.linear_solver),
            }
        )
        return config
