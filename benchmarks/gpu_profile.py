"""GPU profile of DEERLayer(GRUCell): one command, timings, memory, Newton iterations (JAX).

For every (T, H) of the grid (batch B, inputs D = 4, float32, same Keras
``GRUCell(H)`` weights for every variant), on the default JAX device:

* variants: ``DEERLayer`` with ``method="deer"``, ``"quasi"`` and ``"deer"`` with
  ``chunk_size=1000`` (only where T > 1000), ``DEERLayer(method="sequential")``,
  a plain ``jax.lax.scan`` over the GRU step (the sequential reference), and, when
  ``--deer PATH`` points to a checkout of the original DEER code
  (``machine-discovery/deer``, never committed here), its ``seq1d`` with ``DEER()``;
* forward and forward + gradient (value and gradient of a fixed random projection
  of the outputs w.r.t. the inputs and every weight): median milliseconds of the
  jit-compiled function, compile excluded, variants interleaved repeat by repeat
  (fewer repeats for calls longer than a second);
* memory: XLA's compiled memory analysis of each function (temporaries + arguments
  + outputs, MiB), and at the end the device's own peak (``memory_stats``) where
  the platform reports it;
* Newton iterations of the DEER variants, and correctness in the same run: the
  largest output difference from ``jax.lax.scan`` and the largest relative
  gradient error against BPTT through ``jax.lax.scan``.

A case that fails (e.g. out of device memory) is recorded as such and the run
goes on; ``--budget-s`` (default 420 s) stops starting new cases once spent, so
the whole profile fits in about 8 minutes. Cases run from small to large.

Usage:
    python benchmarks/gpu_profile.py                        # full grid, on the GPU
    python benchmarks/gpu_profile.py --deer PATH_TO_DEER    # also the original DEER
    python benchmarks/gpu_profile.py --smoke --output /some/where.md   # about a minute, CPU

The table is written atomically to ``--output`` (default
``benchmarks/RESULTS_gpu_profile.md``).
"""

import argparse
import os
import platform
import statistics
import sys
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
from bench_peer import gru_step, load_original  # noqa: E402
from keras_dsr.io import atomic_write  # noqa: E402
from keras_dsr.layers import DEERLayer  # noqa: E402

D = 4
DEFAULT_OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS_gpu_profile.md")


def _block(x):
    return jax.tree_util.tree_map(lambda a: a.block_until_ready(), x)


def _memory_mib(compiled):
    """Temporaries + arguments + outputs of a compiled function (MiB), or None."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every platform reports it
        return None
    if m is None:
        return None
    peak = getattr(m, "peak_memory_in_bytes", None)
    if not peak:
        peak = sum(getattr(m, k, 0) or 0 for k in
                   ("temp_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes"))
    return peak / 2**20


def _time(fns, args, repeats):
    """Median seconds per fn (interleaved); calls over 1 s are repeated fewer times."""
    first = {}
    for name, fn in fns.items():
        _block(fn(*args))  # warm-up (compile is already done)
        t0 = time.perf_counter()
        _block(fn(*args))
        first[name] = time.perf_counter() - t0
    samples = {name: [first[name]] for name in fns}
    for i in range(1, repeats):
        for name, fn in fns.items():
            if first[name] * i > 3.0:
                continue
            t0 = time.perf_counter()
            _block(fn(*args))
            samples[name].append(time.perf_counter() - t0)
    return {name: statistics.median(s) for name, s in samples.items()}


def _rel_err(got, ref):
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-30))


def variants(t, h, batch, original):
    """``{name: (fwd(ws, x) -> (y, iterations or None))}`` on one GRUCell's weights."""
    keras.utils.set_random_seed(1)
    cell = keras.layers.GRUCell(h)
    layers = {
        "deer": DEERLayer(cell, method="deer"),
        "quasi": DEERLayer(cell, method="quasi"),
        "seq_layer": DEERLayer(cell, method="sequential"),
    }
    if t > 1000:
        layers["deer_chunk1000"] = DEERLayer(cell, method="deer", chunk_size=1000)
    for lay in layers.values():
        lay.build((batch, t, D))
    fns = {}
    for name, lay in layers.items():
        nt = [v.value for v in lay.non_trainable_variables]
        index = [v.name for v in lay.non_trainable_variables].index("iterations")

        def fwd(ws, x, lay=lay, nt=nt, index=index):
            y, new_nt = lay.stateless_call(ws, nt, x)
            return y, new_nt[index]

        fns[name] = fwd

    def params(ws):
        return dict(zip(("kernel", "recurrent", "bias"), ws))

    def lax_scan(ws, x):
        p = params(ws)

        def body(hc, xt):
            hn = jax.vmap(lambda hb, xb: gru_step(hb, xb, p))(hc, xt)
            return hn, hn

        _, ys = jax.lax.scan(body, jnp.zeros((x.shape[0], h), x.dtype), jnp.swapaxes(x, 0, 1))
        return jnp.swapaxes(ys, 0, 1), None

    fns["lax_scan"] = lax_scan
    if original is not None:
        seq1d, deer_method = original[0], original[1]

        def orig(ws, x):
            p = params(ws)
            y0 = jnp.zeros((h,), x.dtype)
            return jax.vmap(lambda xb: seq1d(gru_step, y0, xb, p, method=deer_method()).value)(x), None

        fns["orig_deer"] = orig
    return [v.value for v in cell.trainable_variables], fns


def run_case(t, h, batch, repeats, original):
    rng = np.random.default_rng(0)
    ws, fns = variants(t, h, batch, original)
    x = jnp.asarray(rng.normal(size=(batch, t, D)).astype("float32"))
    proj = jnp.asarray(rng.normal(size=(batch, t, h)).astype("float32"))

    def with_grad(f):
        def loss(ws, x):
            return jnp.sum(f(ws, x)[0] * proj)

        return jax.value_and_grad(loss, argnums=(0, 1))

    fwd, grad, mem = {}, {}, {}
    for name, f in fns.items():
        fwd[name] = jax.jit(f).lower(ws, x).compile()
        grad[name] = jax.jit(with_grad(f)).lower(ws, x).compile()
        mem[name] = (_memory_mib(fwd[name]), _memory_mib(grad[name]))
    outs = {name: fn(ws, x) for name, fn in fwd.items()}
    ref = np.asarray(outs["lax_scan"][0])
    ref_grads = jax.tree_util.tree_leaves(grad["lax_scan"](ws, x)[1])
    t_fwd = _time(fwd, (ws, x), repeats)
    t_grad = _time(grad, (ws, x), repeats)
    rows = []
    for name in fns:
        grads = jax.tree_util.tree_leaves(grad[name](ws, x)[1])
        iters = outs[name][1]
        rows.append({
            "T": t, "H": h, "variant": name,
            "fwd_ms": 1e3 * t_fwd[name], "grad_ms": 1e3 * t_grad[name],
            "fwd_vs_scan": t_fwd[name] / t_fwd["lax_scan"],
            "grad_vs_scan": t_grad[name] / t_grad["lax_scan"],
            "fwd_mib": mem[name][0], "grad_mib": mem[name][1],
            "iterations": None if iters is None else int(iters),
            "out_diff": float(np.max(np.abs(np.asarray(outs[name][0]) - ref))),
            "grad_err": max(_rel_err(np.asarray(a), np.asarray(b)) for a, b in zip(grads, ref_grads)),
        })
    return rows


HEADER = ("| T | H | variant | fwd ms | fwd / lax.scan | fwd+grad ms | fwd+grad / lax.scan "
          "| fwd MiB | fwd+grad MiB | Newton iters | max out diff | grad rel err |")


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def row_line(r):
    if "error" in r:
        return f"| {r['T']} | {r['H']} | all | {r['error']} |" + " |" * 8
    return (f"| {r['T']} | {r['H']} | {r['variant']} | {r['fwd_ms']:.2f} | {r['fwd_vs_scan']:.2f} "
            f"| {r['grad_ms']:.2f} | {r['grad_vs_scan']:.2f} | {_fmt(r['fwd_mib'], '.3g')} "
            f"| {_fmt(r['grad_mib'], '.3g')} | {_fmt(r['iterations'], 'd')} "
            f"| {r['out_diff']:.1e} | {r['grad_err']:.1e} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="T = 64, H = 4, batch 2, one repeat: about a minute on a CPU")
    parser.add_argument("--deer", default=None, help="path of a checkout of machine-discovery/deer")
    parser.add_argument("--lengths", type=int, nargs="*", default=None)
    parser.add_argument("--hidden", type=int, nargs="*", default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--budget-s", type=float, default=420.0,
                        help="start no new case after this many seconds")
    parser.add_argument("--output", default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    original = load_original(args.deer) if args.deer else None
    lengths = args.lengths or ([64] if args.smoke else [1000, 10_000, 100_000, 1_000_000])
    hidden = args.hidden or ([4] if args.smoke else [8, 32, 64])
    batch = args.batch or (2 if args.smoke else 8)
    repeats = args.repeats or (1 if args.smoke else 5)
    start, rows, skipped = time.perf_counter(), [], []
    for t in lengths:
        for h in hidden:
            if time.perf_counter() - start > args.budget_s:
                skipped.append((t, h))
                continue
            try:
                case = run_case(t, h, batch, repeats, original)
            except Exception as err:  # noqa: BLE001 - e.g. out of memory: record, go on
                traceback.print_exc()
                case = [{"T": t, "H": h, "error": f"failed: {type(err).__name__}"}]
            rows.extend(case)
            for r in case:
                print(row_line(r), flush=True)
    device = jax.devices()[0]
    stats = getattr(device, "memory_stats", lambda: None)() or {}
    peak = stats.get("peak_bytes_in_use")
    text = "\n".join([
        "# DEERLayer(GRUCell) profile on one device (JAX)",
        "",
        f"Command: `python benchmarks/gpu_profile.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"jax {jax.__version__}, keras {keras.__version__}, device {device.device_kind} "
        f"({device.platform}), {platform.machine()}, batch {batch}, inputs D = {D}, float32, "
        f"medians of up to {repeats} interleaved repeats, compile excluded; "
        f"{time.perf_counter() - start:.0f} s in all.",
        f"Device peak memory of the whole run: "
        f"{'not reported' if peak is None else f'{peak / 2**20:.0f} MiB'}.",
        f"Not run (time budget {args.budget_s:.0f} s spent): "
        f"{', '.join(f'T={t} H={h}' for t, h in skipped) or 'none'}.",
        "",
        HEADER,
        "|" + "---|" * 12,
        *[row_line(r) for r in rows],
        "",
    ])
    with atomic_write(args.output) as fh:
        fh.write(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
