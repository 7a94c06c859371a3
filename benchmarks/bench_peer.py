"""DEERLayer(GRUCell) against the original DEER code, side by side (JAX).

The original DEER implementation (Lim et al. 2024, the ``machine-discovery/deer``
repository) is not part of this project and is never committed here: pass the path
of a local checkout with ``--deer``. Only its ``deer/fseq1d.py`` (with the modules it
imports) is loaded; the package's ``__init__`` is bypassed, because it also imports
solvers with extra dependencies that this benchmark does not use.

For every (T, H), batch 16, float32, on the same Keras ``GRUCell(H)`` weights:

* forward: ``DEERLayer(GRUCell(H))`` (method "deer") vs the original's
  ``seq1d(..., method=DEER())`` vmapped over the batch;
* forward + gradient (of a fixed random projection of the outputs, w.r.t. the
  inputs and every weight): the same two;
* sequential: ``DEERLayer(..., method="sequential")`` vs ``keras.layers.RNN`` (and
  the original's ``Sequential()`` for reference).

Every function is jit-compiled and run twice before timing (compile excluded); the
variants of one row are interleaved repeat by repeat and the medians reported.
Checked in the same run: outputs of all variants equal to 1e-5, and the gradients
of both DEER implementations equal BPTT's (``keras.layers.RNN``) to 1e-4 relative.

Usage:
    python benchmarks/bench_peer.py --deer PATH_TO_DEER_CHECKOUT            # full grid
    python benchmarks/bench_peer.py --deer PATH --quick                     # T = 1e3 only
    python benchmarks/bench_peer.py --deer PATH --output benchmarks/RESULTS_peer.md
"""

import argparse
import os
import platform
import statistics
import sys
import time
import types

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
from keras_dsr.io import atomic_write  # noqa: E402
from keras_dsr.layers import DEERLayer  # noqa: E402

BATCH, D = 16, 4


def load_original(path):
    """``seq1d``, ``DEER`` and ``Sequential`` from a checkout of the original code."""
    pkg_dir = os.path.join(os.path.abspath(path), "deer")
    if not os.path.isfile(os.path.join(pkg_dir, "fseq1d.py")):
        raise SystemExit(f"--deer: no deer/fseq1d.py under {path!r}.")
    pkg = types.ModuleType("deer")
    pkg.__path__ = [pkg_dir]
    sys.modules["deer"] = pkg
    from deer.fseq1d import DEER, Sequential, seq1d

    return seq1d, DEER, Sequential


def _block(x):
    return jax.tree_util.tree_map(lambda a: a.block_until_ready(), x)


def time_side_by_side(fns, args, repeats):
    """Median seconds of each fn(*args), interleaving the fns repeat by repeat."""
    for fn in fns.values():  # compile + warm up
        _block(fn(*args))
        _block(fn(*args))
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            _block(fn(*args))
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def gru_params(cell):
    """The Keras GRUCell's weights (reset_after=True) as a dict of arrays."""
    return {"kernel": cell.kernel.value, "recurrent": cell.recurrent_kernel.value,
            "bias": cell.bias.value}


def gru_step(h, x, p):
    """Keras ``GRUCell`` (reset_after=True) for one sequence: h [H], x [D] -> [H]."""
    units = h.shape[-1]
    xg = x @ p["kernel"] + p["bias"][0]
    hg = h @ p["recurrent"] + p["bias"][1]
    z = jax.nn.sigmoid(xg[:units] + hg[:units])
    r = jax.nn.sigmoid(xg[units:2 * units] + hg[units:2 * units])
    hh = jnp.tanh(xg[2 * units:] + r * hg[2 * units:])
    return z * h + (1.0 - z) * hh


def _rel_err(got, ref):
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


def run_case(t, h, repeats, original):
    seq1d, DEER, Sequential = original
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(1)
    cell = keras.layers.GRUCell(h)
    layer = DEERLayer(cell, method="deer")
    seq_layer = DEERLayer(cell, method="sequential")
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = jnp.asarray(rng.normal(size=(BATCH, t, D)).astype("float32"))
    proj = jnp.asarray(rng.normal(size=(BATCH, t, h)).astype("float32"))
    for lay in (layer, seq_layer, rnn):
        lay.build((BATCH, t, D))
    nt = {id(lay): [v.value for v in lay.non_trainable_variables] for lay in (layer, seq_layer, rnn)}
    ws = [v.value for v in cell.trainable_variables]

    def keras_fn(lay):
        return lambda ws, x: lay.stateless_call(ws, nt[id(lay)], x)[0]

    def original_fn(method):
        def fwd(ws, x):
            p = dict(zip(("kernel", "recurrent", "bias"), ws))
            y0 = jnp.zeros((h,), x.dtype)
            return jax.vmap(lambda xb: seq1d(gru_step, y0, xb, p, method=method).value)(x)

        return fwd

    fwd = {
        "ours_deer": keras_fn(layer),
        "orig_deer": original_fn(DEER()),
        "ours_seq": keras_fn(seq_layer),
        "keras_rnn": keras_fn(rnn),
        "orig_seq": original_fn(Sequential()),
    }

    def with_grad(f):
        def loss(ws, x):
            return jnp.sum(f(ws, x) * proj)

        return jax.value_and_grad(loss, argnums=(0, 1))

    jit_fwd = {k: jax.jit(f) for k, f in fwd.items()}
    grad_names = ("ours_deer", "orig_deer", "keras_rnn")
    jit_grad = {k: jax.jit(with_grad(fwd[k])) for k in grad_names}

    # Correctness in the same run.
    outs = {k: np.asarray(f(ws, x)) for k, f in jit_fwd.items()}
    out_err = max(float(np.max(np.abs(outs[k] - outs["keras_rnn"]))) for k in outs)
    grads = {k: jax.tree_util.tree_leaves(jit_grad[k](ws, x)[1]) for k in grad_names}
    grad_err = {k: max(_rel_err(np.asarray(a), np.asarray(b))
                       for a, b in zip(grads[k], grads["keras_rnn"]))
                for k in ("ours_deer", "orig_deer")}

    tf_ = time_side_by_side({k: jit_fwd[k] for k in ("ours_deer", "orig_deer")}, (ws, x), repeats)
    tg = time_side_by_side({k: jit_grad[k] for k in ("ours_deer", "orig_deer")}, (ws, x), repeats)
    ts = time_side_by_side({k: jit_fwd[k] for k in ("ours_seq", "keras_rnn", "orig_seq")},
                           (ws, x), repeats)
    return {
        "T": t, "H": h,
        "fwd_ours": tf_["ours_deer"], "fwd_orig": tf_["orig_deer"],
        "grad_ours": tg["ours_deer"], "grad_orig": tg["orig_deer"],
        "seq_ours": ts["ours_seq"], "seq_rnn": ts["keras_rnn"], "seq_orig": ts["orig_seq"],
        "out_err": out_err, "grad_err_ours": grad_err["ours_deer"],
        "grad_err_orig": grad_err["orig_deer"],
    }


def table(rows):
    lines = [
        "| T | H | fwd ours ms | fwd orig ms | ratio | fwd+grad ours ms | fwd+grad orig ms "
        "| ratio | seq ours ms | keras RNN ms | ratio | orig seq ms | max out diff "
        "| grad rel err ours | grad rel err orig |",
        "|" + "---|" * 15,
    ]
    for r in rows:
        lines.append(
            f"| {r['T']} | {r['H']} | {1e3 * r['fwd_ours']:.1f} | {1e3 * r['fwd_orig']:.1f} "
            f"| {r['fwd_ours'] / r['fwd_orig']:.2f} | {1e3 * r['grad_ours']:.1f} "
            f"| {1e3 * r['grad_orig']:.1f} | {r['grad_ours'] / r['grad_orig']:.2f} "
            f"| {1e3 * r['seq_ours']:.1f} | {1e3 * r['seq_rnn']:.1f} "
            f"| {r['seq_ours'] / r['seq_rnn']:.2f} | {1e3 * r['seq_orig']:.1f} "
            f"| {r['out_err']:.1e} | {r['grad_err_ours']:.1e} | {r['grad_err_orig']:.1e} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deer", required=True, help="path of a checkout of machine-discovery/deer")
    parser.add_argument("--quick", action="store_true", help="T = 1000 only, 5 repeats")
    parser.add_argument("--lengths", type=int, nargs="*", default=None)
    parser.add_argument("--hidden", type=int, nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--output", default=None, help="also write the table to this file")
    args = parser.parse_args(argv)
    original = load_original(args.deer)
    lengths = args.lengths or ([1000] if args.quick else [1000, 10000])
    hidden = args.hidden or [1, 8, 16, 32]
    repeats = args.repeats or (5 if args.quick else 7)
    rows = []
    for t in lengths:
        for h in hidden:
            row = run_case(t, h, repeats, original)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    text = (
        f"jax {jax.__version__}, keras {keras.__version__}, {platform.processor() or platform.machine()}, "
        f"{jax.devices()[0].platform}, batch {BATCH}, inputs D = {D}, float32, medians of "
        f"{repeats} interleaved repeats, compile excluded.\n\n" + table(rows) + "\n"
    )
    print(text)
    if args.output:
        with atomic_write(args.output) as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
