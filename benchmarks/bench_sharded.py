"""Benchmark of sequence parallelism on JAX: time-sharded vs single-device solves.

Side by side in one run, for one long trajectory (batch 1) of length T:

1. linear recurrence h_t = A_t h_{t-1} + b_t (diagonal and dense A):
   ``keras_dsr.ops.linear_recurrence`` on one device vs
   ``keras_dsr.ops.sharded.sharded_linear_recurrence`` with time split over D devices;
2. a GTF-forced shallow PLRNN (docs/method.md §GTF-DEER, §Models), forward + gradient:
   ``deer_solve`` on one device vs ``sharded_deer_solve`` over D devices, with the
   Newton iterations and the gradient agreement.

CPU profile: D devices are simulated on the host (``XLA_FLAGS=
--xla_force_host_platform_device_count=D``, set here before JAX starts). They share
the same CPU cores as the single device, so no speedup is expected there: the CPU
profile measures the overhead of the sharded algorithm (local scans + an all-gather
of D shard totals + a fix-up pass). ``--gpu`` uses every visible GPU as a device.

Every timed function is jit-compiled and warmed up; inputs are placed beforehand
(sharded along time for the sharded solves); timings are medians over repeats,
interleaved repeat by repeat.

Usage:
    python benchmarks/bench_sharded.py                       # CPU, 4 simulated devices
    python benchmarks/bench_sharded.py --devices 2
    python benchmarks/bench_sharded.py --gpu                 # all visible GPUs
    python benchmarks/bench_sharded.py --quick               # smoke run (T = 4096)
    python benchmarks/bench_sharded.py --output benchmarks/RESULTS_sharded.md
"""

import argparse
import functools
import os
import platform
import sys
import time


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gpu", action="store_true", help="GPU profile: every visible GPU")
    parser.add_argument("--devices", type=int, default=4,
                        help="CPU profile: number of simulated host devices (default 4)")
    parser.add_argument("--length", type=int, default=None,
                        help="T (default 10^5; --quick 4096); the GPU profile adds 10^6")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per row")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--output", help="write the markdown results to this file")
    args = parser.parse_args(argv)
    if args.devices < 1:
        parser.error("--devices must be >= 1")
    return args


def _setup_devices(args):
    """Set the environment before JAX is imported (it fixes the device count at start)."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    if not args.gpu:
        os.environ["JAX_PLATFORMS"] = "cpu"
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = (
            f"{flags} --xla_force_host_platform_device_count={args.devices}".strip()
        )


def run(args):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    import keras_dsr  # noqa: F401
    import keras
    from keras_dsr.ops import deer_solve, linear_recurrence
    from keras_dsr.ops.sharded import sharded_deer_solve, sharded_linear_recurrence, time_mesh

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_ops import lorenz_like_data, shplrnn, time_side_by_side

    devices = jax.devices()
    mesh = time_mesh(devices)
    n_dev = len(devices)
    single = jax.devices()[0]

    def place(x):
        return jax.device_put(x, single)

    def place_sharded(x, time_axis=None):
        """On the mesh: sharded along ``time_axis``, or replicated when None."""
        spec = [None] * x.ndim
        if time_axis is not None:
            spec[time_axis] = "time"
        return jax.device_put(x, NamedSharding(mesh, PartitionSpec(*spec)))

    def timed(fns, inputs):
        bound = {k: functools.partial(fn, *inputs[k]) for k, fn in fns.items()}
        return time_side_by_side(bound, (), repeats)

    def rel_diff(got, ref):
        got, ref = np.asarray(got), np.asarray(ref)
        return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-12))

    def emit(*cells):
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)

    if args.quick:
        lengths, sizes, repeats = [4096], [3], 3
    elif args.gpu:
        lengths, sizes, repeats = [10**5, 10**6], [3, 16], 20
    else:
        lengths, sizes, repeats = [10**5], [3, 16], 7
    if args.length:
        lengths = [args.length]
    repeats = args.repeats or repeats
    lengths = [t - t % n_dev for t in lengths]  # T must be a multiple of D

    device = devices[0]
    shown = [a for a in ("--gpu", "--quick") if getattr(args, a[2:])]
    shown += [f"--devices {args.devices}"] if not args.gpu and args.devices != 4 else []
    shown += [f"--length {args.length}"] if args.length else []
    shown += [f"--repeats {args.repeats}"] if args.repeats else []
    command = " ".join(["python benchmarks/bench_sharded.py"] + shown)
    lines = [
        "# Sequence-parallel benchmark (JAX): time-sharded vs single-device",
        "",
        f"Command: `{command}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {n_dev} x "
        f"{device.device_kind} ({device.platform}"
        f"{', simulated host devices sharing those cores' if device.platform == 'cpu' else ''}); "
        f"jax {jax.__version__}, keras {keras.__version__}, python {sys.version.split()[0]}; "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        "Times are medians of interleaved repeats of jit-compiled functions (compile excluded);",
        "batch 1 (one long trajectory), float32. 'sharded' splits time over all "
        f"{n_dev} devices.",
        "",
        "## Linear recurrence",
        "",
        "| A | M | T | devices | single device (ms) | sharded (ms) | sharded / single "
        "| max rel. diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    rng = np.random.default_rng(0)
    for dense in (False, True):
        for m in sizes:
            for t in lengths:
                shape = (1, t, m, m) if dense else (1, t, m)
                a = rng.uniform(-1, 1, size=shape).astype("float32")
                if dense:
                    a /= 1.2 * np.sqrt(m)
                b = rng.normal(size=(1, t, m)).astype("float32")
                fns = {
                    "single": jax.jit(linear_recurrence),
                    "sharded": jax.jit(lambda a, b: sharded_linear_recurrence(a, b, mesh=mesh)),
                }
                inputs = {"single": (place(a), place(b)),
                          "sharded": (place_sharded(a, 1), place_sharded(b, 1))}
                got, ref = (fns[k](*inputs[k]) for k in ("sharded", "single"))
                diff = rel_diff(got, ref)
                times = timed(fns, inputs)
                emit("dense" if dense else "diag", str(m), f"{t:,}", str(n_dev),
                     f"{times['single'] * 1e3:.2f}", f"{times['sharded'] * 1e3:.2f}",
                     f"{times['sharded'] / times['single']:.2f}", f"{diff:.1e}")

    title = [
        "",
        "## GTF-forced shPLRNN (M = 3, L = 32, alpha = 0.3): DEER forward + gradient",
        "",
        "| T | devices | single device (ms) | sharded (ms) | sharded / single | iterations "
        "(single, sharded) | max rel. diff z | max rel. diff grad |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += title
    print("\n".join(title), flush=True)
    m, hidden, alpha = 3, 32, 0.3
    prng = np.random.default_rng(1)
    params = (
        prng.uniform(0.5, 0.95, size=(m,)).astype("float32"),
        (prng.uniform(-1, 1, size=(hidden, m)) / np.sqrt(hidden)).astype("float32"),
        (prng.uniform(-1, 1, size=(m, hidden)) / np.sqrt(m)).astype("float32"),
        np.zeros((m,), "float32"),
        (prng.uniform(-1, 1, size=(hidden,)) / np.sqrt(hidden)).astype("float32"),
    )
    for t in lengths:
        zhat = lorenz_like_data(1, t + 1, m, prng)
        z0, target = zhat[:, 0], zhat[:, 1:]

        def make(solve):
            def loss(params, z0, target):
                step, jac = shplrnn(params, alpha)
                z, info = solve(step, z0, target, jacobian_fn=jac, initial_guess=target)
                return jnp.mean((z - target) ** 2), (z, info["iterations"])

            return jax.jit(jax.value_and_grad(loss, has_aux=True))

        fns = {
            "single": make(deer_solve),
            "sharded": make(lambda *a, **k: sharded_deer_solve(*a, mesh=mesh, **k)),
        }
        inputs = {
            "single": (tuple(place(p) for p in params), place(z0), place(target)),
            "sharded": (tuple(place_sharded(p) for p in params), place_sharded(z0),
                        place_sharded(target, 1)),
        }
        out = {k: fn(*inputs[k]) for k, fn in fns.items()}
        (_, (z_ref, it_ref)), g_ref = out["single"]
        (_, (z_sh, it_sh)), g_sh = out["sharded"]
        g_diff = max(rel_diff(x, y) for x, y in zip(g_sh, g_ref))
        times = timed(fns, inputs)
        emit(f"{t:,}", str(n_dev), f"{times['single'] * 1e3:.1f}", f"{times['sharded'] * 1e3:.1f}",
             f"{times['sharded'] / times['single']:.2f}", f"{int(it_ref)}, {int(it_sh)}",
             f"{rel_diff(z_sh, z_ref):.1e}", f"{g_diff:.1e}")
    return lines


def main(argv=None):
    args = _parse(argv)
    _setup_devices(args)
    lines = run(args)
    if args.output:
        with open(args.output, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return lines


if __name__ == "__main__":
    main()
