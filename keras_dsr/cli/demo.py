"""``keras-dsr demo``: DEER vs a sequential loop on a GTF-forced shPLRNN (Lorenz-63)."""

import statistics
import time

from keras_dsr.cli._shared import UsageError


def _median_time(fn, args, repeats):
    from keras import ops

    def run():
        out = fn(*args)
        leaves = out if isinstance(out, (tuple, list)) else (out,)
        for leaf in leaves:  # force completion (async backends)
            if isinstance(leaf, (tuple, list)):
                for item in leaf:
                    ops.convert_to_numpy(item)
            else:
                ops.convert_to_numpy(leaf)

    t0 = time.perf_counter()
    run()  # compile + first run
    first = time.perf_counter() - t0
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    return first, statistics.median(samples)


def demo(args):
    import numpy as np

    import keras
    from keras import ops

    from keras_dsr.cells import ClippedShallowPLRNN
    from keras_dsr.ops import deer_solve, sequential_solve
    from keras_dsr.systems import simulate
    from keras_dsr.utils import compile_function, value_and_grad

    t_len, alpha = args.steps, args.alpha
    print(f"keras_dsr demo | backend {keras.backend.backend()} | T = {t_len} | alpha = {alpha}")
    data = simulate("lorenz63", t_len + 1, seed=args.seed).x.astype("float32")
    zhat = ops.convert_to_tensor(data[None, 1:])  # [1, T, 3]: data-inferred states
    z0 = ops.convert_to_tensor(data[None, 0])
    cell = ClippedShallowPLRNN(latent_dim=3, hidden_dim=args.hidden, seed=args.seed)
    cell.build((None, 3))
    print(f"model: clipped shPLRNN, M = 3, L = {args.hidden}; data: Lorenz-63, dt = 0.01")

    def forced(z, u):  # GTF (docs/method.md, "GTF-DEER"): (1 - alpha) F(z) + alpha * zhat
        return (1.0 - alpha) * cell(z) + alpha * u

    def forced_jac(z, u):
        return (1.0 - alpha) * cell.jacobian(z)

    def solve(method):
        def run(z0, zhat):
            if method == "sequential":
                return sequential_solve(forced, z0, zhat), {}
            return deer_solve(forced, z0, zhat, jacobian_fn=forced_jac, method=method,
                              initial_guess=zhat)
        return compile_function(run)

    seq_fn = solve("sequential")
    z_seq = ops.convert_to_numpy(seq_fn(z0, zhat)[0])
    _, t_seq = _median_time(seq_fn, (z0, zhat), args.repeats)
    rows = [("sequential loop", 0, 0.0, t_seq)]
    for method in ("deer", "quasi"):
        fn = solve(method)
        z, info = fn(z0, zhat)
        diff = float(np.max(np.abs(ops.convert_to_numpy(z) - z_seq)))
        _, t_m = _median_time(fn, (z0, zhat), args.repeats)
        rows.append((method, int(ops.convert_to_numpy(info["iterations"])), diff, t_m))
    print("\nforward solve of the forced recurrence (compiled; median of repeats):")
    print(f"  {'method':<16}{'Newton iters':>13}{'max |z - z_seq|':>18}{'time (ms)':>12}")
    for name, it, diff, t_m in rows:
        print(f"  {name:<16}{it:>13}{diff:>18.2e}{t_m * 1e3:>12.2f}")

    def loss(method):
        def fn(*weights):  # the cell's trainable weights, passed functionally
            def f(z, u):
                free, _ = cell.stateless_call(list(weights), [], z)
                return (1.0 - alpha) * free + alpha * u

            if method == "bptt":
                z = sequential_solve(f, z0, zhat)
            else:
                z, _ = deer_solve(f, z0, zhat, method=method, initial_guess=zhat)
            return ops.mean((z - zhat) ** 2)
        return value_and_grad(fn)

    w_vals = [ops.convert_to_tensor(w) for w in cell.trainable_variables]
    _, g_ref = loss("bptt")(*w_vals)
    g_ref = [ops.convert_to_numpy(g) for g in g_ref]
    _, t_bptt = _median_time(loss("bptt"), w_vals, args.repeats)
    print("\nforward + gradient of the GTF loss (compiled; median of repeats):")
    print(f"  {'method':<16}{'max rel. grad err':>18}{'time (ms)':>12}{'vs BPTT':>9}")
    print(f"  {'BPTT':<16}{0.0:>18.2e}{t_bptt * 1e3:>12.2f}{1.0:>9.2f}")
    for method in ("deer",):
        _, g = loss(method)(*w_vals)
        err = max(float(np.max(np.abs(ops.convert_to_numpy(x) - y)) / np.max(np.abs(y)))
                  for x, y in zip(g, g_ref))
        _, t_m = _median_time(loss(method), w_vals, args.repeats)
        print(f"  {method:<16}{err:>18.2e}{t_m * 1e3:>12.2f}{t_m / t_bptt:>9.2f}")

    # Chaos: the unforced Euler-stepped Lorenz-63 map makes plain DEER overflow.
    def lorenz_euler(z, u=None):
        x, y, w = z[..., 0:1], z[..., 1:2], z[..., 2:3]
        return z + 0.01 * ops.concatenate([10 * (y - x), x * (28 - w) - y, x * y - 8 / 3 * w], -1)

    lz0 = ops.convert_to_tensor(np.array([[1.0, 1.0, 20.0]], "float32"))
    z, info = compile_function(lambda z0: deer_solve(lorenz_euler, z0, length=t_len))(lz0)
    z_ref = compile_function(lambda z0: sequential_solve(lorenz_euler, z0, length=t_len))(lz0)
    same = bool(np.array_equal(ops.convert_to_numpy(z), ops.convert_to_numpy(z_ref)))
    print("\nunforced chaotic map (Euler Lorenz-63, alpha = 0):")
    print(f"  converged = {bool(ops.convert_to_numpy(info['converged']))}, "
          f"fell back to sequential = {bool(ops.convert_to_numpy(info['fell_back']))}, "
          f"values equal sequential = {same}, finite = {bool(ops.convert_to_numpy(info['finite']))}")
    ok = rows[1][2] < 1e-3 and same
    print("\nresult:", "OK" if ok else "MISMATCH")
    return 0 if ok else 1


HELP = "DEER vs sequential on a GTF-forced shPLRNN (Lorenz-63)"


def run(args):
    """``demo`` after checking ``--steps`` and ``--alpha``."""
    if args.steps < 2:
        raise UsageError("--steps must be >= 2")
    if not 0.0 <= args.alpha < 1.0:
        raise UsageError("--alpha must be in [0, 1)")
    return demo(args)


def add_arguments(p):
    p.add_argument("--steps", type=int, default=10_000, help="sequence length T")
    p.add_argument("--alpha", type=float, default=0.3, help="GTF forcing in [0, 1)")
    p.add_argument("--hidden", type=int, default=50, help="hidden units L")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats")
