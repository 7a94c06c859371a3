"""Benchmark of the ops core on JAX: scans and DEER vs sequential loops.

Measures, side by side in one run (these machines are shared and noisy, so only the
ratios within one run mean anything):

1. linear recurrence h_t = A_t h_{t-1} + b_t, diagonal and dense A:
   ``keras_dsr.ops.linear_recurrence`` vs raw ``jax.lax.associative_scan`` with the
   same combine vs a sequential ``jax.lax.scan``;
2. a GTF-forced shallow PLRNN (docs/method.md §GTF-DEER, §Models): ``deer_solve`` forward + gradient
   vs sequential BPTT (``jax.lax.scan`` + autodiff), and the Newton iterations.

Every timed function is jit-compiled and warmed up; timings are medians over
repeats, and the variants of one row are interleaved repeat by repeat.

Usage:
    python benchmarks/bench_ops.py                  # CPU profile (a few minutes)
    python benchmarks/bench_ops.py --gpu            # GPU profile (one H200, < 5 min)
    python benchmarks/bench_ops.py --quick          # smoke run
    python benchmarks/bench_ops.py --output benchmarks/RESULTS_ops.md
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import keras_dsr  # noqa: E402,F401
import keras  # noqa: E402
from keras_dsr.ops import deer_solve, linear_recurrence  # noqa: E402


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


def raw_scan(a, b, dense):
    def combine(x, y):
        a1, b1 = x
        a2, b2 = y
        if dense:
            return (
                jnp.matmul(a2, a1, precision="highest"),
                jnp.matmul(a2, b1[..., None], precision="highest")[..., 0] + b2,
            )
        return a2 * a1, a2 * b1 + b2

    return jax.lax.associative_scan(combine, (a, b), axis=b.ndim - 2)[1]


def sequential_scan(a, b, dense):
    def step(h, ab):
        at, bt = ab
        h = (jnp.matmul(at, h[..., None], precision="highest")[..., 0] if dense else at * h) + bt
        return h, h

    a_t = jnp.moveaxis(a, b.ndim - 2, 0)
    b_t = jnp.moveaxis(b, -2, 0)
    _, hs = jax.lax.scan(step, jnp.zeros_like(b_t[0]), (a_t, b_t))
    return jnp.moveaxis(hs, 0, -2)


def bench_scans(lengths, sizes, batch, repeats, rows):
    rng = np.random.default_rng(0)
    for dense in (False, True):
        for m in sizes:
            for t in lengths:
                shape = (batch, t, m, m) if dense else (batch, t, m)
                a = rng.uniform(-1, 1, size=shape).astype("float32")
                if dense:
                    a /= 1.2 * np.sqrt(m)
                a = jnp.asarray(a)
                b = jnp.asarray(rng.normal(size=(batch, t, m)).astype("float32"))
                fns = {
                    "ours": jax.jit(linear_recurrence),
                    "raw": jax.jit(lambda a, b: raw_scan(a, b, dense)),
                    "seq": jax.jit(lambda a, b: sequential_scan(a, b, dense)),
                }
                ours = np.asarray(fns["ours"](a, b))
                ref = np.asarray(fns["seq"](a, b))
                err = float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-12))
                times = time_side_by_side(fns, (a, b), repeats)
                rows.append(
                    dict(kind="dense" if dense else "diag", m=m, t=t, batch=batch, **times, err=err)
                )
                print(_scan_row(rows[-1]), flush=True)


def _scan_row(r):
    return (
        f"| {r['kind']} | {r['m']} | {r['t']:,} | {r['batch']} | {r['ours']*1e3:.3f} | "
        f"{r['raw']*1e3:.3f} | {r['seq']*1e3:.3f} | {r['ours']/r['raw']:.3f} | "
        f"{r['seq']/r['ours']:.2f} | {r['err']:.1e} |"
    )


def shplrnn(params, alpha):
    a, w1, w2, h1, h2 = params

    def step(z, zhat):
        free = a * z + jnp.matmul(jax.nn.relu(jnp.matmul(z, w2) + h2), w1) + h1
        return (1.0 - alpha) * free + alpha * zhat

    def jac(z, zhat):
        mask = (jnp.matmul(z, w2) + h2 > 0).astype(z.dtype)
        inner = jnp.einsum("li,...l,jl->...ij", w1, mask, w2)
        return (1.0 - alpha) * (jnp.eye(a.shape[0], dtype=z.dtype) * a + inner)

    return step, jac


def lorenz_like_data(batch, t, m, rng):
    """A smooth chaotic-looking signal: a few random sinusoids per unit (cheap)."""
    tt = np.arange(t)[None, :, None] * 0.01
    freqs = rng.uniform(0.5, 3.0, size=(batch, 1, m))
    phase = rng.uniform(0, 2 * np.pi, size=(batch, 1, m))
    return np.sin(2 * np.pi * freqs * tt + phase).astype("float32")


def bench_deer(lengths, m, hidden, batch, alpha, repeats, rows):
    rng = np.random.default_rng(1)
    # The lab's shPLRNN initialisation: a in (0, 1), W1 ~ U(+-1/sqrt(L)),
    # W2 ~ U(+-1/sqrt(M)), h2 ~ U(+-1/sqrt(L)) (clipped variant).
    params = (
        jnp.asarray(rng.uniform(0.5, 0.95, size=(m,)).astype("float32")),
        jnp.asarray(rng.uniform(-1, 1, size=(hidden, m)).astype("float32") / np.sqrt(hidden)),
        jnp.asarray(rng.uniform(-1, 1, size=(m, hidden)).astype("float32") / np.sqrt(m)),
        jnp.zeros((m,), "float32"),
        jnp.asarray(rng.uniform(-1, 1, size=(hidden,)).astype("float32") / np.sqrt(hidden)),
    )
    for t in lengths:
        zhat = jnp.asarray(lorenz_like_data(batch, t + 1, m, rng))
        z0, target = zhat[:, 0], zhat[:, 1:]

        def loss_deer(params, method):
            step, jac = shplrnn(params, alpha)
            z, info = deer_solve(step, z0, target, jacobian_fn=jac, method=method, initial_guess=target)
            return jnp.mean((z - target) ** 2), info["iterations"]

        def loss_bptt(params):
            step, _ = shplrnn(params, alpha)

            def body(z, u):
                z = step(z, u)
                return z, z

            _, zs = jax.lax.scan(body, z0, jnp.moveaxis(target, 1, 0))
            return jnp.mean((jnp.moveaxis(zs, 0, 1) - target) ** 2), jnp.int32(0)

        fns = {
            "deer": jax.jit(jax.value_and_grad(lambda p: loss_deer(p, "deer"), has_aux=True)),
            "quasi": jax.jit(jax.value_and_grad(lambda p: loss_deer(p, "quasi"), has_aux=True)),
            "bptt": jax.jit(jax.value_and_grad(loss_bptt, has_aux=True)),
        }
        (_, it_deer), g_deer = fns["deer"](params)
        (_, it_quasi), g_quasi = fns["quasi"](params)
        _, g_bptt = fns["bptt"](params)
        err = max(
            float(jnp.max(jnp.abs(x - y)) / jnp.max(jnp.abs(y))) for x, y in zip(g_deer, g_bptt)
        )
        times = time_side_by_side(fns, (params,), repeats)
        rows.append(
            dict(t=t, m=m, hidden=hidden, batch=batch, alpha=alpha, it_deer=int(it_deer),
                 it_quasi=int(it_quasi), grad_err=err, **times)
        )
        print(_deer_row(rows[-1]), flush=True)


def _deer_row(r):
    return (
        f"| {r['t']:,} | {r['m']} | {r['hidden']} | {r['batch']} | {r['alpha']} | "
        f"{r['deer']*1e3:.2f} | {r['quasi']*1e3:.2f} | {r['bptt']*1e3:.2f} | "
        f"{r['deer']/r['bptt']:.2f} | {r['quasi']/r['bptt']:.2f} | {r['it_deer']} | "
        f"{r['it_quasi']} | {r['grad_err']:.1e} |"
    )


SCAN_HEADER = (
    "| A | M | T | batch | ours (ms) | raw jax.lax.associative_scan (ms) | sequential lax.scan (ms) "
    "| ours / raw | sequential / ours | rel. err vs sequential |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)
DEER_HEADER = (
    "| T | M | L | batch | alpha | DEER fwd+grad (ms) | quasi fwd+grad (ms) | BPTT fwd+grad (ms) "
    "| DEER / BPTT | quasi / BPTT | DEER iters | quasi iters | grad rel. err DEER vs BPTT |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", action="store_true", help="GPU profile (bigger problems)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--output", help="write a markdown table to this file")
    args = parser.parse_args(argv)
    if args.quick:
        lengths, sizes, batch, repeats = [1000], [3], 2, 3
        deer_lengths, deer_batch = [1000], 2
    elif args.gpu:
        lengths, sizes, batch, repeats = [10**3, 10**4, 10**5, 10**6], [3, 16], 16, 20
        deer_lengths, deer_batch = [10**3, 10**4, 10**5], 16
    else:
        lengths, sizes, batch, repeats = [10**3, 10**4, 10**5], [3, 16], 2, 7
        deer_lengths, deer_batch = [10**3, 10**4], 4
    device = jax.devices()[0]
    header = [
        "# ops benchmark (JAX)",
        "",
        f"Command: `python benchmarks/bench_ops.py{' --gpu' if args.gpu else ''}"
        f"{' --quick' if args.quick else ''}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, device {device.device_kind} "
        f"({device.platform}); jax {jax.__version__}, keras {keras.__version__}, "
        f"python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d')}",
        "",
        "Times are medians of interleaved repeats of jit-compiled functions (compile excluded).",
        "",
        "## Linear recurrence (float32)",
        "",
        SCAN_HEADER,
    ]
    print("\n".join(header), flush=True)
    scan_rows, deer_rows = [], []
    bench_scans(lengths, sizes, batch, repeats, scan_rows)
    deer_title = [
        "",
        "## GTF-forced shPLRNN: forward + gradient, DEER vs sequential BPTT",
        "",
        DEER_HEADER,
    ]
    print("\n".join(deer_title), flush=True)
    bench_deer(deer_lengths, 3, 32, deer_batch, 0.3, repeats, deer_rows)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write("\n".join(header) + "\n")
            fh.write("\n".join(_scan_row(r) for r in scan_rows) + "\n")
            fh.write("\n".join(deer_title) + "\n")
            fh.write("\n".join(_deer_row(r) for r in deer_rows) + "\n")
    return scan_rows, deer_rows


if __name__ == "__main__":
    main()
