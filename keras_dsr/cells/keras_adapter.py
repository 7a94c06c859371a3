"""Any Keras RNN cell as a one-step map on one flat state vector (for DEER).

A Keras RNN cell (``keras.layers.SimpleRNNCell``, ``GRUCell``, ``LSTMCell``, or any
layer with a ``state_size`` and ``call(inputs, states, training=...)``) maps
``(u_t, [s^1_{t-1}, s^2_{t-1}, ..])`` to ``(y_t, [s^1_t, s^2_t, ..])``. The DEER
solver needs a map ``z_t = F(z_{t-1}, u_t)`` on one vector, so the states are
concatenated, ``z = concat(s^1, s^2, ..)`` of size ``M = sum(state sizes)`` (for
``LSTMCell(units)``: ``z = [h, c]``, M = 2 * units), and :class:`KerasCellAdapter`
splits ``z`` again before calling the cell.

Its Jacobian ``dF/dz`` comes from autodiff (:func:`keras_dsr.ops.batch_jacobian`).
Dropout is not supported: DEER evaluates the map many times per step and needs the
same deterministic map every time.
"""

import keras
from keras import ops

from keras_dsr.ops.jacobian import batch_jacobian, value_and_batch_jacobian


def _flat_state_sizes(state_size, where):
    """The state sizes of a cell as a flat list of ints, and their nested structure."""
    if isinstance(state_size, bool) or state_size is None:
        raise TypeError(
            f"{where}: the cell's `state_size` must be an int or a (nested) list of "
            f"ints, got {state_size!r}."
        )
    structure = [state_size] if isinstance(state_size, int) else list(state_size)
    flat = keras.tree.flatten(structure)
    if not flat or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in flat):
        raise TypeError(
            f"{where}: the cell's `state_size` must be a positive int or a (nested) "
            f"list of positive ints, got {state_size!r}."
        )
    return structure, [int(s) for s in flat]


def _check_no_dropout(cell, where):
    """ValueError if ``cell`` (or any cell it stacks) uses dropout."""
    for attr in ("dropout", "recurrent_dropout"):
        rate = getattr(cell, attr, 0.0) or 0.0
        if float(rate) > 0.0:
            raise ValueError(
                f"{where}: the wrapped cell {cell.name!r} has `{attr}`={rate}; dropout is "
                "not supported by DEER (the solver evaluates the step map many times and "
                f"needs it deterministic). Construct the cell with {attr}=0.0."
            )
    for sub in getattr(cell, "cells", None) or []:
        _check_no_dropout(sub, where)


def check_keras_cell(cell, where="KerasCellAdapter", name="cell"):
    """Raise a clear error unless ``cell`` looks like a Keras RNN cell without dropout."""
    if not isinstance(cell, keras.layers.Layer) or getattr(cell, "state_size", None) is None:
        raise TypeError(
            f"{where}: `{name}` must be a Keras RNN cell (a keras.layers.Layer with a "
            "`state_size` and `call(inputs, states, training=...)`, e.g. "
            f"keras.layers.GRUCell(8)), got {type(cell).__name__}: {cell!r}."
        )
    _flat_state_sizes(cell.state_size, where)
    _check_no_dropout(cell, where)


@keras.saving.register_keras_serializable(package="keras_dsr")
class KerasCellAdapter(keras.layers.Layer):
    """A Keras RNN cell as the one-step map ``z_next = F(z, u)`` on a flat state.

    ``z = concat(states)`` has size ``M = sum(state sizes)`` (``state_size``); e.g.
    for ``LSTMCell(units)`` it is ``[h, c]`` (M = 2 units), for ``GRUCell(units)``
    and ``SimpleRNNCell(units)`` just ``h``. All methods accept any number of
    leading dims (e.g. ``[B, M]`` or ``[B, T, M]``), which are flattened into the
    cell's batch axis and restored afterwards.

    Methods:
        ``call(z, u)``: ``z`` [..., M], ``u`` [..., K] -> next state [..., M].
        ``output(z_prev, u)``: the cell's step output [..., output_size] (``h`` for
            the standard cells).
        ``step(z_prev, u)``: both at once, ``(output, z_next)``;
            ``step_states(z_prev, u)``: ``(output, new_states)`` as the cell returns them.
        ``split_states(z)`` / ``join_states(states)``: between the flat vector and
            the cell's own (possibly nested) list of state tensors.
        ``jacobian(z, u)``: ``dF/dz`` [..., M, M] by autodiff;
            ``step_and_jacobian(z, u)``: ``(F(z, u), dF/dz)`` from one pass;
            ``jacobian_diagonal(z, u)``: its diagonal [..., M].

    Args:
        cell: a Keras RNN cell: a layer with ``state_size`` (int or list of ints) and
            ``call(inputs, states, training=...)`` returning ``(output, new_states)``.
            Cells with ``dropout`` or ``recurrent_dropout`` > 0 are rejected.
        training: the ``training`` flag passed to the cell when ``call`` is not given
            one (default False).
        **kwargs: ``keras.layers.Layer`` arguments; the dtype policy defaults to the
            cell's.

    Example:
        >>> adapter = KerasCellAdapter(keras.layers.LSTMCell(4))   # M = 8
        >>> z = keras.ops.zeros((2, 10, 8)); u = keras.ops.ones((2, 10, 3))
        >>> adapter(z, u).shape           # (2, 10, 8): [h, c] after one step
        >>> adapter.output(z, u).shape    # (2, 10, 4): h
        >>> adapter.jacobian(z, u).shape  # (2, 10, 8, 8)
    """

    def __init__(self, cell, **kwargs):
        if isinstance(cell, dict):
            cell = keras.saving.deserialize_keras_object(cell)
        check_keras_cell(cell)
        if "dtype" not in kwargs:
            kwargs["dtype"] = cell.dtype_policy
        super().__init__(**kwargs)
        self.cell = cell
        self._structure, self._sizes = _flat_state_sizes(cell.state_size, "KerasCellAdapter")
        self._structure = self._initial_state_structure(cell) or self._structure
        out = getattr(cell, "output_size", None)
        self._output_size = int(out) if isinstance(out, int) and not isinstance(out, bool) else self._sizes[0]

    def _initial_state_structure(self, cell):
        """Nesting of the cell's own initial states (what keras.layers.RNN feeds it).

        E.g. ``[[3], [2, 2]]`` for ``StackedRNNCells([GRUCell(3), LSTMCell(2)])``,
        where ``state_size`` says ``[3, [2, 2]]``. None if the cell has no
        ``get_initial_state`` or its sizes disagree with ``state_size``.
        """
        get = getattr(cell, "get_initial_state", None)
        if get is None:
            return None
        try:
            init = get(batch_size=1)
        except Exception:  # a custom cell with another signature: use state_size
            return None
        if not keras.tree.is_nested(init):
            init = [init]

        def plain(x):
            if keras.tree.is_nested(x):
                return [plain(e) for e in x]
            return int(x.shape[-1])

        structure = plain(list(init))
        return structure if keras.tree.flatten(structure) == self._sizes else None

    # ----------------------------------------------------------------- sizes
    @property
    def state_size(self):
        """M, the size of the flat state vector (sum of the cell's state sizes)."""
        return sum(self._sizes)

    @property
    def output_size(self):
        """Size of the cell's per-step output."""
        return self._output_size

    @property
    def output_state_index(self):
        """Which of the cell's (flat) new states its output is, or None.

        Known once the cell has been called: the output *is* that state tensor
        (the same object, as for ``GRUCell``, ``SimpleRNNCell`` and ``LSTMCell``'s
        ``h``), so a solved trajectory of states already holds every output and
        no further cell call is needed to get them. None before the first call
        and for cells whose output is computed separately.
        """
        return getattr(self, "_output_state_index", None)

    @property
    def state_sizes(self):
        """The cell's state sizes, flat list."""
        return list(self._sizes)

    # ----------------------------------------------------------------- build
    def build(self, z_shape, u_shape=None):
        """Build the wrapped cell for inputs of ``u_shape`` [..., K]."""
        self._check_z(z_shape)
        if u_shape is None:
            raise ValueError(
                "KerasCellAdapter: the input `u` [..., K] is required to build the cell."
            )
        if not self.cell.built:
            self.cell.build((None, u_shape[-1]))
        self.built = True

    def _check_z(self, shape):
        if shape is None or len(shape) < 1 or (shape[-1] is not None and shape[-1] != self.state_size):
            raise ValueError(
                "KerasCellAdapter: `z` must have shape [..., M] with M = sum of the "
                f"cell's state sizes = {self.state_size} (sizes {self._sizes}), got "
                f"shape {None if shape is None else tuple(shape)}."
            )

    # ------------------------------------------------------- state structure
    def split_states(self, z):
        """Flat ``z`` [..., M] -> the cell's list of state tensors [..., size_i]."""
        parts, start = [], 0
        for size in self._sizes:
            parts.append(z[..., start : start + size])
            start += size
        parts = iter(parts)

        def pack(structure):  # plain (nested) lists, like the cell's state_size
            if isinstance(structure, int):
                return next(parts)
            return [pack(s) for s in structure]

        return pack(self._structure)

    def join_states(self, states):
        """The cell's (nested) list of state tensors -> flat ``z`` [..., M]."""
        flat = keras.tree.flatten(states) if keras.tree.is_nested(states) else [states]
        if len(flat) != len(self._sizes):
            raise ValueError(
                f"KerasCellAdapter: expected {len(self._sizes)} state tensor(s) of sizes "
                f"{self._sizes}, got {len(flat)}."
            )
        for i, (s, size) in enumerate(zip(flat, self._sizes)):
            if s.shape[-1] is not None and s.shape[-1] != size:
                raise ValueError(
                    f"KerasCellAdapter: state tensor {i} must have last dim {size}, got "
                    f"shape {tuple(s.shape)}."
                )
        if len(flat) == 1:
            return flat[0]
        return ops.concatenate(list(flat), axis=-1)

    # ------------------------------------------------------------------- map
    def step(self, z, u, training=None):
        """``(output [..., output_size], z_next [..., M])`` for ``z`` [..., M], ``u`` [..., K]."""
        out, new_states = self.step_states(z, u, training=training)
        return out, self.join_states(new_states)

    def step_states(self, z, u, training=None):
        """``(output, new_states)``: the cell's own return values, leading dims restored.

        ``new_states`` keeps the structure the cell returns (e.g. ``[h, c]`` for
        LSTM, ``[h]`` for GRU), each tensor ``[..., size_i]``.
        """
        if u is None:
            raise ValueError("KerasCellAdapter: the input `u` [..., K] is required.")
        z = ops.convert_to_tensor(z, dtype=self.compute_dtype)
        u = ops.convert_to_tensor(u, dtype=self.compute_dtype)
        self._check_z(tuple(z.shape))
        if len(u.shape) != len(z.shape):
            raise ValueError(
                "KerasCellAdapter: `u` [..., K] must have the leading dims of `z` [..., M]; "
                f"got z {tuple(z.shape)} and u {tuple(u.shape)}."
            )
        if not self.built:
            self.build(tuple(z.shape), tuple(u.shape))
        lead = tuple(ops.shape(z)[:-1])
        m, k = self.state_size, u.shape[-1]
        states = self.split_states(ops.reshape(z, (-1, m)))
        kwargs = {}
        if self.cell._call_has_training_arg:
            kwargs["training"] = bool(training) if training is not None else False
        out, new_states = self.cell(ops.reshape(u, (-1, k)), states, **kwargs)
        self.join_states(new_states)  # validates the sizes
        flat = keras.tree.flatten(new_states) if keras.tree.is_nested(new_states) else [new_states]
        self._output_state_index = next((i for i, s in enumerate(flat) if s is out), None)
        restore = lambda x: ops.reshape(ops.cast(x, z.dtype), lead + (x.shape[-1],))  # noqa: E731
        return restore(out), keras.tree.map_structure(restore, new_states)

    def call(self, z, u=None, training=None):
        """One step of the map: ``z`` [..., M], ``u`` [..., K] -> ``z_next`` [..., M]."""
        return self.step(z, u, training=training)[1]

    def output(self, z_prev, u, training=None):
        """The cell's step output [..., output_size] from ``z_prev`` [..., M] and ``u``."""
        return self.step(z_prev, u, training=training)[0]

    def jacobian(self, z, u=None, training=None):
        """``dF/dz`` at ``(z, u)`` by autodiff: [..., M] -> [..., M, M] (row i = output i)."""
        z = ops.convert_to_tensor(z, dtype=self.compute_dtype)
        if u is not None:
            u = ops.convert_to_tensor(u, dtype=self.compute_dtype)
        return batch_jacobian(lambda zz, uu: self.step(zz, uu, training=training)[1], z, u)

    def step_and_jacobian(self, z, u=None, training=None):
        """``(F(z, u), dF/dz)`` from one autodiff pass (no gradient flows through either)."""
        z = ops.convert_to_tensor(z, dtype=self.compute_dtype)
        if u is not None:
            u = ops.convert_to_tensor(u, dtype=self.compute_dtype)
        return value_and_batch_jacobian(lambda zz, uu: self.step(zz, uu, training=training)[1], z, u)

    def jacobian_diagonal(self, z, u=None, training=None):
        """Diagonal of :meth:`jacobian`: [..., M] -> [..., M]."""
        return ops.diagonal(self.jacobian(z, u, training=training), axis1=-2, axis2=-1)

    def compute_output_shape(self, z_shape, u_shape=None):
        return tuple(z_shape)

    # ---------------------------------------------------------------- config
    def get_config(self):
        config = super().get_config()
        config["cell"] = keras.saving.serialize_keras_object(self.cell)
        return config
