"""DEERLayer and KerasCellAdapter against keras.layers.RNN and plain loops, on every backend."""

import numpy as np
import pytest
import keras
from keras import ops

from conftest import BACKEND, compiled, to_np, value_and_grads
from keras_dsr.cells import ShallowPLRNN
from keras_dsr.cells.keras_adapter import KerasCellAdapter
from keras_dsr.layers import DEERLayer

B, T, D = 2, 50, 3
METHODS = ["deer", "quasi", "damped", "sequential"]
CELLS = {
    "gru": lambda: keras.layers.GRUCell(5, seed=1),
    "lstm": lambda: keras.layers.LSTMCell(4, seed=2),
    "simple": lambda: keras.layers.SimpleRNNCell(6, seed=3),
}


def make_cell(kind):
    """A cell with its weights built and its biases made nonzero."""
    cell = CELLS[kind]()
    cell.build((None, D))
    rng = np.random.default_rng(7)
    for v in cell.trainable_variables:
        if "bias" in v.path:
            v.assign(0.3 * rng.normal(size=v.shape).astype("float32"))
    return cell


def flat_t(result):
    return list(result) if isinstance(result, (list, tuple)) else [result]


def flat(result):
    return [to_np(r) for r in (result if isinstance(result, (list, tuple)) else [result])]


def assert_all_close(got, want, atol=1e-5, rtol=0.0):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape, (g.shape, w.shape)
        np.testing.assert_allclose(g, w, atol=atol, rtol=rtol)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, T, D)).astype("float32")
    return x


@pytest.fixture(scope="module")
def cells():
    return {kind: make_cell(kind) for kind in CELLS}


def _rel_err(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12)


def outputs_and_grads(layer, x, initial_state=None):
    """Outputs (``[output, *states]``) and gradients of one fixed random projection of them.

    One compiled function per layer gives both: the loss is ``sum_i <P_i, out_i>``
    with the projections ``P_i`` passed as arguments, so ``d loss / d P_i = out_i``.
    Returns ``(outs, grads)`` with grads w.r.t. ``x``, the initial states (if given)
    and ``layer.trainable_variables`` (in that order).
    """
    rng = np.random.default_rng(11)
    init = [] if initial_state is None else list(initial_state)
    units = layer.cell.output_size
    t = x.shape[1]
    shapes = [(x.shape[0], t, units) if layer.return_sequences else (x.shape[0], units)]
    if layer.return_state:
        sizes = layer.state_sizes if isinstance(layer, DEERLayer) else keras.tree.flatten(layer.state_size)
        shapes += [(x.shape[0], s) for s in sizes]
    projections = [rng.normal(size=s).astype("float32") for s in shapes]
    if not layer.built:
        layer.build(x.shape)
    trainable = [to_np(v) for v in layer.trainable_variables]
    non_trainable = [v.value for v in layer.non_trainable_variables]
    n_init, n_w = len(init), len(trainable)

    def loss(x, *args):
        states, ws, ps = args[:n_init], args[n_init : n_init + n_w], args[n_init + n_w :]
        kwargs = {"initial_state": list(states)} if n_init else {}
        out, _ = layer.stateless_call(list(ws), non_trainable, x, **kwargs)
        out = out if isinstance(out, (list, tuple)) else [out]
        assert len(out) == len(ps)
        return sum(ops.sum(o * p) for o, p in zip(out, ps))

    _, grads = value_and_grads(loss, [x] + init + trainable + projections)
    n = len(grads) - len(projections)
    return grads[n:], grads[:n]


def initial_states(kind, seed=5):
    if kind != "lstm":
        return None
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(B, 4)).astype("float32") for _ in range(2)]


# --------------------------------------------------- values and gradients vs RNN
@pytest.mark.parametrize("kind", list(CELLS))
def test_values_and_gradients_equal_keras_rnn(kind, data, cells):
    """DEER: outputs, final states (same structure as RNN's) and all gradients.

    LSTM also gets a given initial state [h0, c0] (gradients w.r.t. it included).
    """
    cell = cells[kind]
    init = initial_states(kind)
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    outs_ref, grads_ref = outputs_and_grads(rnn, data, init)
    # Structure of keras.layers.RNN: output, h (GRU, SimpleRNN) or output, h, c (LSTM).
    assert len(outs_ref) == (3 if kind == "lstm" else 2)
    assert not np.allclose(outs_ref[0][:, 1:], outs_ref[0][:, :-1], atol=1e-3)  # not trivial
    if init is not None:  # the initial state matters here
        zero_start = to_np(keras.layers.RNN(cell, return_sequences=True)(data))
        assert not np.allclose(zero_start[:, :3], outs_ref[0][:, :3], atol=1e-2)
    layer = DEERLayer(cell, return_state=True)
    outs, grads = outputs_and_grads(layer, data, init)
    assert [id(v) for v in layer.trainable_variables] == [id(v) for v in rnn.trainable_variables]
    assert_all_close(outs, outs_ref, atol=1e-5)
    assert len(grads) == len(grads_ref) == 1 + len(init or []) + len(cell.trainable_variables)
    for g, g_ref in zip(grads, grads_ref):
        assert np.max(np.abs(g_ref)) > 0
        assert _rel_err(g, g_ref) < 1e-4, _rel_err(g, g_ref)


@pytest.mark.parametrize("kind", list(CELLS))
def test_every_method_and_return_sequences_false(kind, data, cells):
    """quasi/damped/sequential give RNN's values (deer: test above); return_sequences=False
    (here with damped) gives the last output."""
    cell = cells[kind]
    init = initial_states(kind)
    kwargs = {} if init is None else {"initial_state": init}
    want = flat(keras.layers.RNN(cell, return_sequences=True, return_state=True)(data, **kwargs))
    layers = [
        DEERLayer(cell, method="quasi", return_state=True),
        DEERLayer(cell, method="damped", return_sequences=False, return_state=True),
        DEERLayer(cell, method="sequential", return_state=True),
    ]
    for layer in layers:
        layer.build(data.shape)
    trainable = [to_np(v) for v in cell.trainable_variables]

    def forward(x, *ws):
        res = []
        for layer in layers:
            nt = [v.value for v in layer.non_trainable_variables]
            out, nt = layer.stateless_call(list(ws), nt, x, **kwargs)
            res.append((list(out) if isinstance(out, (list, tuple)) else [out], list(nt)))
        return res

    results = compiled(forward)(data, *trainable)
    for layer, (outs, diagnostics) in zip(layers, results):
        outs = flat(outs)
        names = [v.path.split("/")[-1] for v in layer.non_trainable_variables]
        iterations = int(to_np(diagnostics[names.index("iterations")]))
        fell_back = int(to_np(diagnostics[names.index("fell_back")]))
        assert fell_back == 0
        assert (iterations == 0) == (layer.method == "sequential"), layer.method
        if layer.return_sequences:
            assert_all_close(outs, want, atol=1e-5)
        else:  # the last output, then the final states
            assert outs[0].shape == (B, cell.units)
            assert_all_close(outs, [want[0][:, -1]] + want[1:], atol=1e-5)


class OutputNotStateCell(keras.layers.Layer):
    """h' = tanh(u K + h R); its output 2 tanh(h') is not one of its states."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent = self.add_weight(shape=(self.units, self.units), name="recurrent",
                                         initializer="orthogonal")

    def call(self, inputs, states):
        h = ops.tanh(ops.matmul(inputs, self.kernel) + ops.matmul(states[0], self.recurrent))
        return 2.0 * ops.tanh(h), [h]


def test_outputs_taken_from_the_states_only_where_the_cell_returns_a_state(data, cells):
    """GRU/LSTM/SimpleRNN return one of their states as output: the layer reads the
    outputs off the solved states (no further cell call). A cell whose output is
    computed separately still gets it computed: values and gradients as RNN's."""
    for kind, index in (("gru", 0), ("lstm", 0), ("simple", 0)):
        layer = DEERLayer(cells[kind])
        layer(data)
        assert layer.cell.output_state_index == index, kind
    cell = OutputNotStateCell()
    cell.build((None, D))
    rnn = keras.layers.RNN(cell, return_sequences=True, return_state=True)
    outs_ref, grads_ref = outputs_and_grads(rnn, data)
    layer = DEERLayer(cell, return_state=True)
    outs, grads = outputs_and_grads(layer, data)
    assert layer.cell.output_state_index is None
    assert not np.allclose(outs_ref[0][:, -1], outs_ref[1], atol=1e-2)  # output != state
    assert_all_close(outs, outs_ref, atol=1e-5)
    for g, g_ref in zip(grads, grads_ref):
        assert _rel_err(g, g_ref) < 1e-4, _rel_err(g, g_ref)


# ------------------------------------------------------------------ a DSRCell
def shplrnn_numpy_loop(cell, x, z0):
    """z' = a z + W1 relu(W2 z + h2) + h1 + u C, a plain numpy loop over t."""
    w = {v.name: to_np(v) for v in cell.trainable_variables}
    z, out = z0, []
    for t in range(x.shape[1]):
        hidden = np.maximum(z @ w["W2"].T + w["h2"], 0.0)
        z = w["a"] * z + hidden @ w["W1"].T + w["h1"] + x[:, t] @ w["C"]
        out.append(z)
    return np.stack(out, axis=1)


def test_dsr_cell_equals_python_loop(data):
    cell = ShallowPLRNN(latent_dim=3, hidden_dim=8, input_dim=D, seed=0)
    cell.build((None, 3), (None, D))
    cell.h2.assign(0.2 * np.random.default_rng(1).normal(size=(8,)).astype("float32"))
    rng = np.random.default_rng(2)
    z0 = rng.normal(size=(B, 3)).astype("float32")
    want = shplrnn_numpy_loop(cell, data, z0)
    assert np.all(np.isfinite(want)) and np.max(np.abs(want)) > 0.1
    layers = [DEERLayer(cell, method=m, return_state=True) for m in ("deer", "damped", "sequential")]
    for layer in layers:
        layer.build(data.shape)
    trainable = [to_np(v) for v in cell.trainable_variables]

    def forward(x, z0, *ws):
        return [flat_t(layer.stateless_call(list(ws), [v.value for v in layer.non_trainable_variables],
                                            x, initial_state=z0)[0]) for layer in layers]

    for layer, outs in zip(layers, compiled(forward)(data, z0, *trainable)):
        seq, last = flat(outs)
        np.testing.assert_allclose(seq, want, atol=1e-5, rtol=1e-5, err_msg=layer.method)
        np.testing.assert_allclose(last, want[:, -1], atol=1e-5, rtol=1e-5)
    # quasi: values and gradients, against the numpy loop and the sequential layer's BPTT
    # (the deer method's gradients are checked against keras.layers.RNN above).
    outs, grads = outputs_and_grads(DEERLayer(cell, method="quasi", return_state=True), data, [z0])
    np.testing.assert_allclose(outs[0], want, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(outs[1], want[:, -1], atol=1e-5, rtol=1e-5)
    outs_ref, grads_ref = outputs_and_grads(layers[-1], data, [z0])
    assert len(grads) == len(grads_ref) == 2 + len(cell.trainable_variables)
    for g, g_ref in zip(grads, grads_ref):
        assert _rel_err(g, g_ref) < 1e-4, _rel_err(g, g_ref)


# ------------------------------------------------------------------- adapter
def test_adapter_map_output_and_jacobian(cells):
    rng = np.random.default_rng(4)
    # LSTM: z = [h, c], M = 8; any leading dims.
    lstm = KerasCellAdapter(cells["lstm"])
    assert lstm.state_size == 8 and lstm.output_size == 4
    z = rng.normal(size=(2, 5, 8)).astype("float32")
    u = rng.normal(size=(2, 5, D)).astype("float32")
    z_next = to_np(lstm(z, u))
    out = to_np(lstm.output(z, u))
    y, (h, c) = cells["lstm"](u.reshape(10, D), [z[..., :4].reshape(10, 4), z[..., 4:].reshape(10, 4)])
    np.testing.assert_allclose(z_next, np.concatenate([to_np(h), to_np(c)], -1).reshape(2, 5, 8), atol=1e-6)
    np.testing.assert_allclose(out, to_np(y).reshape(2, 5, 4), atol=1e-6)
    # SimpleRNN: h' = tanh(u K + h R + b); dF/dh = diag(1 - h'^2) R^T.
    simple = KerasCellAdapter(cells["simple"])
    cell = cells["simple"]
    kern, rec, bias = (to_np(v) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
    z = rng.normal(size=(2, 5, 6)).astype("float32")
    hn = np.tanh(u @ kern + z @ rec + bias)
    np.testing.assert_allclose(to_np(simple(z, u)), hn, atol=1e-6)
    want = (1.0 - hn**2)[..., :, None] * rec.T
    jac = to_np(simple.jacobian(z, u))
    assert jac.shape == (2, 5, 6, 6)
    np.testing.assert_allclose(jac, want, atol=1e-5)
    np.testing.assert_allclose(to_np(simple.jacobian_diagonal(z, u)), np.diagonal(want, 0, -2, -1), atol=1e-5)
    # A cell with nested states: StackedRNNCells([GRU(3), LSTM(2)]), z = [h1, h2, c2].
    stacked_cell = keras.layers.StackedRNNCells([keras.layers.GRUCell(3), keras.layers.LSTMCell(2)])
    stacked = KerasCellAdapter(stacked_cell)
    z = rng.normal(size=(4, 7)).astype("float32")
    states = stacked.split_states(z)
    assert [[s.shape[-1] for s in group] for group in states] == [[3], [2, 2]]
    np.testing.assert_allclose(to_np(stacked.join_states(states)), z)
    y, new = stacked_cell(u[0, :4], states)
    np.testing.assert_allclose(to_np(stacked(z, u[0, :4])),
                               np.concatenate([to_np(a) for a in keras.tree.flatten(new)], -1), atol=1e-6)
    np.testing.assert_allclose(to_np(stacked.output(z, u[0, :4])), to_np(y), atol=1e-6)
    # Serialisation: the wrapped cell comes back with the same config.
    clone = KerasCellAdapter.from_config(lstm.get_config())
    assert isinstance(clone.cell, keras.layers.LSTMCell)
    assert clone.cell.get_config() == cells["lstm"].get_config()


# ------------------------------------------------------------ diagnostics
def test_fallback_and_compiled_direct_call(data, cells):
    """One quasi iteration cannot converge: the sequential values are used, and it says so."""
    want = to_np(keras.layers.RNN(cells["gru"], return_sequences=True)(data))
    capped = DEERLayer(cells["gru"], method="quasi", max_iter=1)
    capped.build(data.shape)
    assert not capped.iterations.trainable and not capped.fell_back.trainable
    got = to_np(compiled(lambda x: capped(x))(data))
    np.testing.assert_allclose(got, want, atol=1e-5)
    fell_back = int(to_np(capped.fell_back))  # must stay readable: no leaked tracer
    if BACKEND == "jax":
        assert fell_back == 0  # not updated by a bare jax.jit (use stateless_call there)
    else:
        assert fell_back == 1 and int(to_np(capped.iterations)) == 1


@pytest.mark.skipif(BACKEND != "tensorflow", reason="only TensorFlow traces unknown dims")
def test_tensorflow_graph_with_unknown_batch_and_length(data, cells):
    import tensorflow as tf

    want = flat(keras.layers.RNN(cells["lstm"], return_sequences=True, return_state=True)(data))
    layer = DEERLayer(cells["lstm"], return_state=True)
    for spec in [(None, T, D), (None, None, D)]:  # parallel solve; sequential loop
        fn = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec(spec, "float32")])
        assert_all_close(flat(fn(data)), want, atol=1e-5)


# --------------------------------------------------------------- fit, saving
def test_fit_then_save_load_round_trip(tmp_path):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(9)
    t = 20
    x = rng.normal(size=(8, t, D)).astype("float32")
    y = (np.cumsum(x, axis=1)[..., :2] * 0.2).astype("float32")
    inp = keras.Input((t, D))
    lstm = DEERLayer(keras.layers.LSTMCell(4), return_state=True, atol=1e-5, max_iter=40, name="lstm")
    h, h_last, c_last = lstm(inp)
    plrnn = DEERLayer(ShallowPLRNN(latent_dim=3, hidden_dim=6, input_dim=4, seed=2),
                      method="sequential", name="plrnn")
    model = keras.Model(inp, keras.layers.Dense(2)(plrnn(h)))
    assert model.output_shape == (None, t, 2)
    model.compile(keras.optimizers.Adam(0.02), "mse")
    # TensorFlow: batch_size 3 leaves a partial last batch, so the train step is traced
    # with an unknown batch size. Elsewhere equal batches: one compile.
    batch_size = 3 if BACKEND == "tensorflow" else 4
    losses = model.fit(x, y, batch_size=batch_size, epochs=3, verbose=0, shuffle=False).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    assert int(to_np(lstm.iterations)) > 0 and int(to_np(lstm.fell_back)) == 0

    want = model.predict(x[:3], verbose=0)
    path = str(tmp_path / "deer.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x[:3], verbose=0), want)
    first, second = loaded.get_layer("lstm"), loaded.get_layer("plrnn")
    assert first.return_state and first.atol == 1e-5 and first.max_iter == 40
    assert isinstance(first.cell.cell, keras.layers.LSTMCell)
    assert isinstance(second.cell, ShallowPLRNN) and second.method == "sequential"
    for layer in (first, second):
        config = layer.get_config()
        assert DEERLayer.from_config(config).get_config() == config


# -------------------------------------------------------------------- errors
def test_bad_arguments_raise_clear_errors(data, cells):
    with pytest.raises(TypeError, match="`cell`"):
        DEERLayer(keras.layers.Dense(3))
    with pytest.raises(TypeError, match="`cell`"):
        DEERLayer("gru")
    with pytest.raises(ValueError, match="`method`"):
        DEERLayer(cells["gru"], method="newton")
    with pytest.raises(ValueError, match="dropout"):
        DEERLayer(keras.layers.GRUCell(4, dropout=0.2))
    with pytest.raises(ValueError, match="recurrent_dropout"):
        DEERLayer(keras.layers.LSTMCell(4, recurrent_dropout=0.1))
    with pytest.raises(ValueError, match="max_iter must be an integer >= 1 or None"):
        DEERLayer(cells["gru"], max_iter=0)
    with pytest.raises(ValueError, match="atol must be a finite number > 0 or None"):
        DEERLayer(cells["gru"], atol=-1.0)
    layer = DEERLayer(cells["gru"])
    with pytest.raises(ValueError, match="`inputs`"):
        layer(data[:, 0])
    with pytest.raises(ValueError, match="`inputs`"):
        layer(data[None])
    with pytest.raises(ValueError, match="`initial_state`"):
        layer(data, initial_state=[np.zeros((B, 5), "float32")] * 2)
    with pytest.raises(ValueError, match="`initial_state`"):
        layer(data, initial_state=[np.zeros((B, 4), "float32")])
    with pytest.raises(ValueError, match="input_dim"):
        DEERLayer(ShallowPLRNN(latent_dim=3, hidden_dim=4, input_dim=2))(data)
