"""Scaling benchmark: GTF-DEER vs sequential BPTT over sequence length T and latent size M.

A GTF-forced clipped shPLRNN (``keras_dsr.cells.ClippedShallowPLRNN``, hidden size
L, forcing alpha; data ``bench_ops.lorenz_like_data``) on JAX, for T up to 10^6 and
M in {3, 16, 64}, in the variants

* ``bptt``: ``deer_solve(method="sequential")``, a ``lax.scan`` and BPTT through it;
* ``deer``: GTF-DEER with dense Jacobians; ``deer_c``: the same with ``chunk_size``
  (Jacobians made chunk by chunk, the final step rematerialised);
* ``quasi``: quasi-DEER (diagonal Jacobians in the iterations);

measures the time of a forward pass (the GTF loss) and of a training step (the loss
and its gradient w.r.t. the cell's weights) as medians of repeats interleaved across
the variants of a row (so the ratios to BPTT are side by side), the compile time,
XLA's temporary allocation, the Newton iterations and the agreement with BPTT. For
the largest T, each variant also runs alone in its own subprocess for its peak
memory: the growth of ``ru_maxrss`` over its value after imports and data (before
anything is compiled; includes compilation), the run's own peak above the RSS it
started from (VmHWM, reset through ``/proc/self/clear_refs``), and on a GPU the
device's ``peak_bytes_in_use``. Then ``keras_dsr.ops.linear_recurrence`` (diagonal
and dense) forward and forward + gradient on TensorFlow, PyTorch and JAX, each
backend in its own subprocess.

Memory is estimated before anything runs: configurations above the budget show as
"skipped (est. X GiB)"; a variant whose time per call, extrapolated linearly from the
previous T, exceeds the profile's cap as "skipped (est. X s)"; jobs past the
profile's deadline as "skipped (time budget)"; a failed job shows its error.

Usage:
    python benchmarks/bench_scale.py --quick        # smoke run (about a minute)
    python benchmarks/bench_scale.py                # CPU profile (< ~20 min on 2 cores)
    python benchmarks/bench_scale.py --gpu          # one GPU, < 5 min in all
    python benchmarks/bench_scale.py --output benchmarks/RESULTS_scale.md
    python benchmarks/bench_scale.py --gtf 10000:3,10000:16 --batch 4   # some rows only
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GIB = 2.0**30
MIB = 2.0**20
VARIANTS = ("bptt", "deer", "deer_c", "quasi")
SCAN_BACKENDS = ("tensorflow", "torch", "jax")

# --------------------------------------------------------------------------- profiles


def profile(args, device_bytes=None):
    """The grid, repeats, budgets (GiB, seconds) and chunk size of a run, as a dict."""
    if args.quick:
        p = dict(
            gtf=[(1000, 3, ("train",))], variants=("bptt", "deer", "deer_c"),
            mem_gtf=[(1000, 3, "train")], mem_variants=("deer_c",),
            scans=[(1000, 3)], scan_backends=("torch",), mem_scans=[],
            repeats={10**3: 3}, scan_repeats={10**3: 3}, chunk=250, mem_budget=2.0,
            time_cap=30.0, deadline=150.0,
        )
    elif args.gpu:
        # Compiling dominates a 5-minute budget (each DEER training step takes seconds
        # to compile): training steps only, three variants, one forward row; jobs
        # past the deadline are reported as skipped.
        p = dict(
            gtf=[(10**4, 3, ("train",)), (10**5, 3, ("train",)), (10**5, 16, ("train",)),
                 (10**5, 64, ("train",)), (10**6, 3, ("fwd", "train")),
                 (10**6, 16, ("train",))],
            variants=("bptt", "deer", "deer_c"),
            mem_gtf=[(10**6, 16, "train"), (10**6, 3, "fwd")],
            mem_variants=("bptt", "deer", "deer_c"),
            scans=[(t, m) for t in (10**5, 10**6) for m in (3, 16)],
            scan_backends=("jax",), mem_scans=[],
            repeats={10**4: 10, 10**5: 5, 10**6: 3}, scan_repeats={10**5: 5, 10**6: 3},
            chunk=5000,
            mem_budget=0.6 * (device_bytes or 16 * GIB) / GIB, time_cap=5.0, deadline=270.0,
        )
    else:
        p = dict(
            gtf=[(t, m, ("fwd", "train")) for t in (10**3, 10**4, 10**5) for m in (3, 16, 64)]
            + [(10**4, 8, ("train",)), (10**6, 3, ("fwd",))],
            mem_gtf=[(10**5, m, "train") for m in (3, 16, 64)] + [(10**6, 3, "fwd")],
            mem_variants=("bptt", "deer", "deer_c"),
            scans=[(t, m) for t in (10**3, 10**4, 10**5) for m in (3, 16, 64)],
            scan_backends=("tensorflow", "torch"), mem_scans=[(10**5, m) for m in (3, 16)],
            repeats={10**3: 5, 10**4: 5, 10**5: 2, 10**6: 1},
            scan_repeats={10**3: 5, 10**4: 3, 10**5: 1}, chunk=250,
            mem_budget=4.0, time_cap=10.0, deadline=None,
        )
    if args.gtf:
        # Only these GTF timing rows: no memory subprocesses, no linear_recurrence rows.
        p.update(gtf=args.gtf, mem_gtf=[], scans=[], mem_scans=[])
        p["repeats"] = {t: p["repeats"].get(t, 3) for t, _, _ in args.gtf}
    p.setdefault("variants", VARIANTS)
    p.setdefault("mem_variants", VARIANTS)
    p.setdefault("scan_backends", SCAN_BACKENDS)
    p.update(hidden=args.hidden, alpha=args.alpha, batch=args.batch)
    if args.chunk:
        p["chunk"] = args.chunk
    if args.mem_budget is not None:
        p["mem_budget"] = args.mem_budget
    return p


# ----------------------------------------------------------------- memory helpers


def _proc_status_kib(field):
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def maxrss_bytes():
    """``getrusage`` peak RSS of this process in bytes (ru_maxrss is KiB on Linux)."""
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def run_measured(fn, base, gpu_device=None):
    """Run ``fn()`` once; returns ``(output, seconds, memory dict)``.

    ``base`` is ``maxrss_bytes()`` taken after imports and data, before anything was
    compiled. Memory (bytes): ``growth_bytes``, the process's peak RSS (over
    everything since ``base``: compilation, the run) minus ``base``;
    ``peak_rss_bytes``, that peak itself; ``run_peak_bytes``, the highest RSS during
    the run minus the RSS it started from (None where the kernel's high-water mark
    cannot be reset); ``device_peak_bytes``, the GPU's ``peak_bytes_in_use`` after
    the run (a process-lifetime peak).
    """
    peak_before = maxrss_bytes()  # resetting VmHWM below also lowers ru_maxrss
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # VmHWM := VmRSS
        before = _proc_status_kib("VmRSS")
    except OSError:
        before = None
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    hwm = _proc_status_kib("VmHWM")
    peak = max(peak_before, maxrss_bytes(), 0 if hwm is None else hwm * 1024)
    mem = {"growth_bytes": peak - base, "peak_rss_bytes": peak, "run_peak_bytes": None,
           "device_peak_bytes": None}
    if before is not None and hwm is not None:
        mem["run_peak_bytes"] = max(0, hwm - before) * 1024
    if gpu_device is not None:
        try:
            mem["device_peak_bytes"] = gpu_device.memory_stats()["peak_bytes_in_use"]
        except Exception:  # noqa: BLE001 - memory_stats is optional per platform
            pass
    return out, seconds, mem


# ---------------------------------------------------------------- estimates (bytes)


def estimate_gtf_bytes(variant, t, m, hidden, batch, mode, chunk):
    """Rough upper estimate of one GTF variant's peak memory (float32 bytes).

    Calibrated on XLA's temp sizes at T = 10^5 (CPU): unchunked DEER and quasi-DEER
    (whose final step is dense too) hold about 4 (forward) to 5 (training) copies of
    the ``[B, T, M, M]`` Jacobians, chunked DEER O(B T (M + L)) plus a few copies of
    one chunk's, BPTT O(B T (M + L)) residuals.
    """
    per_step = 24 * m + 6 * hidden  # trajectories, data, iterates, hidden activations
    if variant == "bptt":
        words = batch * t * per_step
    elif variant.endswith("_c"):
        c = min(chunk, t)
        words = batch * (t * per_step + c * (8 * m * m + 4 * m * hidden))
    else:
        words = batch * t * (per_step + (5 if mode == "train" else 4) * m * m)
    return 4.0 * words


def estimate_scan_bytes(backend, kind, t, m, batch, mode):
    """Rough upper estimate of ``linear_recurrence``'s peak memory (float32 bytes)."""
    size = batch * t * (m * m if kind == "dense" else m)
    copies = {"jax": 5, "tensorflow": 8, "torch": 8}[backend] * (2 if mode == "train" else 1)
    return 4.0 * (size * copies + 4 * batch * t * m)


# ------------------------------------------------------------------ GTF workers


def _gtf_problem(t, m, hidden, batch, seed=0):
    """A built cell (M, L) and data ``[batch, T + 1, M]`` (float32 numpy)."""
    import numpy as np

    from bench_ops import lorenz_like_data
    from keras_dsr.cells import ClippedShallowPLRNN

    cell = ClippedShallowPLRNN(latent_dim=m, hidden_dim=hidden, seed=seed)
    cell.build((None, m))
    zhat = lorenz_like_data(batch, t + 1, m, np.random.default_rng(seed))
    return cell, zhat


def _gtf_functions(cell, zhat, alpha, chunk, variants, mode):
    """Compiled ``f(weights) -> (loss, (iterations, z))`` (``fwd``; z the forced
    trajectory ``[B, T, M]``) or its value_and_grad (``train``) per variant, with
    compile seconds and XLA temp bytes; and the weights."""
    import jax
    import jax.numpy as jnp
    import keras

    from keras_dsr.ops import deer_solve

    zhat = jnp.asarray(zhat)
    z0, target = zhat[:, 0], zhat[:, 1:]
    variables = cell.trainable_variables

    def loss_fn(variant):
        method = "sequential" if variant == "bptt" else variant.split("_")[0]
        # chunk_size only when used: the other variants also run on older keras_dsr.
        chunked = variant.endswith("_c") and chunk < target.shape[1]
        extra = {"chunk_size": chunk} if chunked else {}

        def loss(weights):
            with keras.StatelessScope(state_mapping=list(zip(variables, weights))):
                step = lambda z, u: (1.0 - alpha) * cell(z) + alpha * u  # noqa: E731
                jac = lambda z, u: (1.0 - alpha) * cell.jacobian(z)  # noqa: E731
                z, info = deer_solve(step, z0, target, jacobian_fn=jac, method=method,
                                     initial_guess=target, **extra)
                # GTF loss: unforced one-step predictions F(z~_{t-1}) against the data.
                prev = jnp.concatenate([z0[:, None], z[:, :-1]], axis=1)
                return jnp.mean((cell(prev) - target) ** 2), (info["iterations"], z)

        return loss

    weights = [v.value for v in variables]
    out = {}
    for variant in variants:
        fn = loss_fn(variant)
        if mode == "train":
            fn = jax.value_and_grad(fn, has_aux=True)
        t0 = time.perf_counter()
        compiled = jax.jit(fn).lower(weights).compile()
        compile_s = time.perf_counter() - t0
        try:
            temp = int(compiled.memory_analysis().temp_size_in_bytes)
        except Exception:  # noqa: BLE001 - memory_analysis is optional per platform
            temp = None
        out[variant] = dict(fn=compiled, compile_s=compile_s, xla_temp_bytes=temp)
    return out, weights


def _iterations_and_error(outputs, mode):
    """Newton iterations, and the max relative error against BPTT of the loss, the
    forced trajectory and (``train``) the gradients (each tensor's max abs difference
    over its max abs value), per variant."""
    import numpy as np

    def flat(o):
        if mode == "train":
            (loss, (its, z)), grads = o
            return [np.asarray(loss), np.asarray(z)] + [np.asarray(g) for g in grads], int(its)
        loss, (its, z) = o
        return [np.asarray(loss), np.asarray(z)], int(its)

    ref, _ = flat(outputs["bptt"])
    res = {}
    for name, o in outputs.items():
        vals, its = flat(o)
        err = max(float(np.max(np.abs(v - r)) / max(float(np.max(np.abs(r))), 1e-30))
                  for v, r in zip(vals, ref))
        res[name] = dict(iterations=its, rel_err=err)
    return res


def worker_gtf_time(job):
    """Time the variants of each row (T, M, pass) side by side; prints one ROW per row."""
    import jax

    from bench_ops import time_side_by_side

    def one(row):
        cell, zhat = _gtf_problem(row["t"], row["m"], job["hidden"], job["batch"])
        fns, weights = _gtf_functions(cell, zhat, job["alpha"], job["chunk"], row["variants"],
                                      row["mode"])
        outputs = {name: jax.block_until_ready(f["fn"](weights)) for name, f in fns.items()}
        checks = _iterations_and_error(outputs, row["mode"]) if "bptt" in outputs else {}
        del outputs
        times = time_side_by_side({k: f["fn"] for k, f in fns.items()}, (weights,),
                                  row["repeats"])
        return {name: dict(seconds=times[name], compile_s=f["compile_s"],
                           xla_temp_bytes=f["xla_temp_bytes"], **checks.get(name, {}))
                for name, f in fns.items()}

    _each_row(job["rows"], one)


def worker_gtf_memory(job):
    """Peak memory of one variant of one (T, M, pass); this process runs nothing else."""
    import jax

    base = maxrss_bytes()  # after imports, before data and compiling anything
    cell, zhat = _gtf_problem(job["t"], job["m"], job["hidden"], job["batch"])
    fns, weights = _gtf_functions(cell, zhat, job["alpha"], job["chunk"], [job["variant"]],
                                  job["mode"])
    f = fns[job["variant"]]
    device = jax.devices()[0]
    out, seconds, mem = run_measured(lambda: jax.block_until_ready(f["fn"](weights)), base,
                                     device if device.platform == "gpu" else None)
    its = out[0][1][0] if job["mode"] == "train" else out[1][0]
    _emit(0, dict(seconds=seconds, iterations=int(its), xla_temp_bytes=f["xla_temp_bytes"],
                  **mem))


# ------------------------------------------------------------------ scan workers


def _scan_setup(kind, t, m, batch, seed=0):
    """``{"fwd": fn, "train": fn}`` for ``linear_recurrence`` on random ``[batch, T, M]``
    data (compiled on JAX and TensorFlow, eager on torch). Each fn reads a small
    result back to the host, so its work is finished when it returns."""
    import numpy as np
    from keras import ops

    from keras_dsr.ops import linear_recurrence
    from keras_dsr.utils import compile_function, value_and_grad

    rng = np.random.default_rng(seed)  # float32 throughout: no float64 temporaries
    shape = (batch, t, m, m) if kind == "dense" else (batch, t, m)
    a = rng.random(shape, dtype=np.float32) * 2.0 - 1.0
    if kind == "dense":
        a /= np.float32(1.2 * np.sqrt(m))
    b, w = (rng.standard_normal((batch, t, m), dtype=np.float32) for _ in range(2))
    a, b, w = (ops.convert_to_tensor(x) for x in (a, b, w))
    fwd = compile_function(lambda a, b: linear_recurrence(a, b)[..., -1, :])
    grad = value_and_grad(lambda a, b: ops.sum(linear_recurrence(a, b) * w))
    return {
        "fwd": lambda: ops.convert_to_numpy(fwd(a, b)),
        "train": lambda: ops.convert_to_numpy(grad(a, b)[1][1][..., -1, :]),
    }


def worker_scan_time(job):
    """Time ``linear_recurrence`` forward and forward + grad for each (kind, T, M) row."""
    from bench_ops import time_side_by_side

    def one(row):
        kind, t, m = row
        fns = _scan_setup(kind, t, m, job["batch"])
        t0 = time.perf_counter()
        fns["fwd"]()  # the first call compiles (JAX, TensorFlow)
        first = time.perf_counter() - t0
        # Wrapped to return None: time_side_by_side blocks on JAX arrays only.
        times = time_side_by_side({k: (lambda f=f: [f(), None][1]) for k, f in fns.items()},
                                  (), job["repeats"][str(t)])
        return dict(first_call_s=first, **times)

    _each_row(job["rows"], one)


def worker_scan_memory(job):
    """Peak memory of one ``linear_recurrence`` (kind, T, M, pass) in its own process.

    The one run is the first call: on TensorFlow it includes tracing the tf.function.
    """
    base = maxrss_bytes()  # after imports, before data and compiling anything
    fns = _scan_setup(job["a_kind"], job["t"], job["m"], job["batch"])
    _, seconds, mem = run_measured(fns[job["mode"]], base)
    _emit(0, dict(seconds=seconds, **mem))


WORKERS = {
    "gtf_time": worker_gtf_time,
    "gtf_memory": worker_gtf_memory,
    "scan_time": worker_scan_time,
    "scan_memory": worker_scan_memory,
}


def _emit(index, result):
    print(f"ROW {index} " + json.dumps(result), flush=True)


def _each_row(rows, fn):
    """Emit ``fn(row)`` for each row; a row that raises is reported, the next one runs."""
    for i, row in enumerate(rows):
        try:
            result = fn(row)
        except Exception as exc:  # noqa: BLE001 - e.g. RESOURCE_EXHAUSTED on a device
            result = {"error": f"failed ({type(exc).__name__}: {str(exc)[:120]})"}
        _emit(i, result)


def run_worker(job):
    sys.path.insert(0, HERE)
    import keras_dsr  # noqa: F401  (takes the backend from KERAS_BACKEND)

    WORKERS[job["kind"]](job)


# ------------------------------------------------------------------------ parent


class Runner:
    """Runs worker jobs in subprocesses, one at a time, within an optional deadline.

    The workers share a fresh JAX compilation cache, so a memory job loads what the
    timing job compiled instead of compiling it again.
    """

    def __init__(self, deadline_s, gpu):
        self.start = time.perf_counter()
        self.deadline_s = deadline_s
        self.gpu = gpu
        self.cache = tempfile.mkdtemp(prefix="bench_scale_jax_cache_")

    def close(self):
        shutil.rmtree(self.cache, ignore_errors=True)

    def remaining(self):
        if self.deadline_s is None:
            return float("inf")
        return self.deadline_s - (time.perf_counter() - self.start)

    def run(self, job, n_rows=1, backend="jax", timeout=3600.0):
        """A list of ``n_rows`` results; a row that did not finish is ``{"error": ...}``."""
        left = self.remaining()
        if left < 15.0:
            return [{"error": "skipped (time budget)"}] * n_rows
        env = dict(os.environ, KERAS_BACKEND=backend, JAX_COMPILATION_CACHE_DIR=self.cache,
                   PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH"))
                                              if p))
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if self.gpu:
            env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        else:
            env["JAX_PLATFORMS"] = "cpu"
            env["CUDA_VISIBLE_DEVICES"] = ""
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(job)]
        limit = min(timeout, left)
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=limit)
            stdout, stderr, why = proc.stdout, proc.stderr, f"rc {proc.returncode}"
        except subprocess.TimeoutExpired as exc:
            stdout, stderr = exc.stdout or "", exc.stderr or ""
            why = "skipped (time budget)" if limit < timeout else "timed out"
        stdout = stdout.decode() if isinstance(stdout, bytes) else stdout
        stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
        rows = {}
        for line in stdout.splitlines():
            if line.startswith("ROW "):
                index, payload = line[4:].split(" ", 1)
                rows[int(index)] = json.loads(payload)
        tail = (stderr.strip().splitlines() or ["no output"])[-1][:160]
        error = why if why.startswith(("skipped", "timed")) else f"failed ({why}: {tail})"
        return [rows.get(i, {"error": error}) for i in range(n_rows)]


def _gib(x):
    return "-" if x is None else f"{x / GIB:.2f}"


def _ms(s):
    return "-" if s is None else f"{s * 1e3:,.1f}"


def _machine():
    """Cores, load average and RAM of this machine (one line)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    line = (f"{platform.machine()}, {os.cpu_count()} CPU cores, load average "
            f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1 / 5 / 15 min) at the start")
    try:
        with open("/proc/meminfo") as fh:
            line += f", {int(fh.readline().split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return line


def _jax_info(gpu):
    """(jax version, keras version, device kind, device memory bytes or None)."""
    code = (
        "import jax, keras\n"
        "d = jax.devices()[0]\n"
        "try:\n    lim = d.memory_stats()['bytes_limit']\n"
        "except Exception:\n    lim = None\n"
        "print('INFO', jax.__version__, keras.__version__, lim, d.platform, d.device_kind)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="jax")
    if not gpu:
        env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("INFO "):
            jv, kv, lim, plat, kind = line.split(" ", 5)[1:]
            return jv, kv, f"{kind} ({plat})", None if lim == "None" else int(lim)
    return "?", "?", "?", None


# ---------------------------------------------------------------- GTF timing rows


def _plan_gtf_row(p, t, m, mode, last_seconds):
    """The variants one row runs, and those it skips with the reason."""
    budget = None if p["mem_budget"] is None else p["mem_budget"] * GIB
    skipped, variants = {}, []
    for v in p["variants"]:
        est = estimate_gtf_bytes(v, t, m, p["hidden"], p["batch"], mode, p["chunk"])
        prev = last_seconds.get((m, mode, v))
        est_s = None if prev is None else prev[1] * t / prev[0]
        if v != "bptt" and budget is not None and est > budget:
            skipped[v] = f"skipped (est. {est / GIB:.1f} GiB)"
        elif v != "bptt" and est_s is not None and est_s > p["time_cap"]:
            skipped[v] = f"skipped (est. {est_s:.0f} s)"
        else:
            variants.append(v)
    return dict(m=m, mode=mode, skipped=skipped,
                job=dict(t=t, m=m, mode=mode, variants=variants, repeats=p["repeats"][t]))


def gtf_rows(p, runner, log):
    """Timing rows of the GTF grid, one subprocess per T."""
    rows, last_seconds = [], {}
    for t in sorted({g[0] for g in p["gtf"]}):
        plan = [_plan_gtf_row(p, t, m, mode, last_seconds)
                for tt, m, modes in p["gtf"] if tt == t for mode in modes]
        job = dict(kind="gtf_time", hidden=p["hidden"], batch=p["batch"], alpha=p["alpha"],
                   chunk=p["chunk"], rows=[r["job"] for r in plan])
        for row, res in zip(plan, runner.run(job, n_rows=len(plan))):
            if "error" in res:
                res = {v: {"error": res["error"]} for v in row["job"]["variants"]}
            res.update({v: {"error": msg} for v, msg in row["skipped"].items()})
            for v, r in res.items():
                if "seconds" in r:
                    last_seconds[(row["m"], row["mode"], v)] = (t, r["seconds"])
            rows.append(dict(t=t, m=row["m"], mode=row["mode"], res=res))
            log(_gtf_row(rows[-1]))
    return rows


def _gtf_row(r):
    res = r["res"]

    def get(v, key):
        return res.get(v, {}).get(key)

    def cell(v):
        return res.get(v, {}).get("error") or _ms(get(v, "seconds"))

    def ratio(v):
        a, b = get(v, "seconds"), get("bptt", "seconds")
        return "-" if a is None or b is None else f"{a / b:.2f}"

    def joined(key, fmt):
        return " / ".join("-" if get(v, key) is None else fmt(get(v, key)) for v in VARIANTS)

    errs = [get(v, "rel_err") for v in VARIANTS[1:] if get(v, "rel_err") is not None]
    return (
        f"| {r['t']:,} | {r['m']} | {r['mode']} | "
        + " | ".join(cell(v) for v in VARIANTS) + " | "
        + " | ".join(ratio(v) for v in VARIANTS[1:])
        + f" | {get('deer', 'iterations') or '-'} / {get('quasi', 'iterations') or '-'}"
        + f" | {'-' if not errs else f'{max(errs):.1e}'}"
        + f" | {joined('compile_s', lambda x: f'{x:.1f}')}"
        + f" | {joined('xla_temp_bytes', lambda x: f'{x / MIB:.0f}')} |"
    )


GTF_HEADER = (
    "| T | M | pass | BPTT (ms) | DEER (ms) | DEER chunked (ms) | quasi (ms) | DEER / BPTT | "
    "DEER-c / BPTT | quasi / BPTT | Newton iters DEER / quasi | max rel. err vs BPTT "
    "(loss, trajectory, gradients) | "
    "compile s (BPTT / DEER / DEER-c / quasi) | XLA temp MiB (BPTT / DEER / DEER-c / quasi) |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)

# ---------------------------------------------------------------- memory rows


def _run_within_budget(p, runner, est, job, backend="jax"):
    """The one-row result of ``job``, or "skipped" when ``est`` bytes exceed the budget."""
    if p["mem_budget"] is not None and est > p["mem_budget"] * GIB:
        return {"error": f"skipped (est. {est / GIB:.1f} GiB)"}
    return runner.run(job, backend=backend)[0]


def gtf_memory_rows(p, runner, log):
    """One subprocess per (T, M, pass, variant) of ``mem_gtf``."""
    for t, m, mode in p["mem_gtf"]:
        for v in p["mem_variants"]:
            est = estimate_gtf_bytes(v, t, m, p["hidden"], p["batch"], mode, p["chunk"])
            job = dict(kind="gtf_memory", t=t, m=m, mode=mode, variant=v, hidden=p["hidden"],
                       batch=p["batch"], alpha=p["alpha"], chunk=p["chunk"])
            res = _run_within_budget(p, runner, est, job)
            log(_mem_row(dict(t=t, m=m, mode=mode, variant=v, est=est, res=res)))


def _mem_row(r):
    res = r["res"]
    head = f"| {r['t']:,} | {r['m']} | {r['mode']} | {r['variant']} | {r['est'] / GIB:.2f} |"
    if "error" in res:
        return head + f" {res['error']} | | | | | | |"
    return head + (
        f" {_gib(res['growth_bytes'])} | {_gib(res['run_peak_bytes'])} | "
        f"{_gib(res['peak_rss_bytes'])} | {_gib(res['xla_temp_bytes'])} | "
        f"{_gib(res['device_peak_bytes'])} | {res['seconds']:.2f} | {res['iterations']} |")


MEM_HEADER = (
    "| T | M | pass | variant | estimate (GiB) | peak RSS growth incl. compile (GiB) | "
    "run's peak above its starting RSS (GiB) | process peak RSS (GiB) | XLA temp (GiB) | "
    "GPU peak_bytes_in_use (GiB) | one run (s) | Newton iters |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|"
)

# ----------------------------------------------------------------- scan rows


def scan_rows(p, runner, log):
    """``linear_recurrence`` timing rows, one subprocess per backend."""
    rows = []
    budget = None if p["mem_budget"] is None else p["mem_budget"] * GIB
    repeats = {str(t): n for t, n in p["scan_repeats"].items()}
    for backend in p["scan_backends"]:
        todo, done = [], []
        for kind in ("diag", "dense"):
            for m in sorted({m for _, m in p["scans"]}):
                for t in sorted({t for t, mm in p["scans"] if mm == m}):
                    est = estimate_scan_bytes(backend, kind, t, m, p["batch"], "train")
                    row = dict(backend=backend, kind=kind, t=t, m=m)
                    if budget is not None and est > budget:
                        row["error"] = f"skipped (est. {est / GIB:.1f} GiB)"
                    else:
                        todo.append(row)
                    done.append(row)
        job = dict(kind="scan_time", batch=p["batch"], repeats=repeats,
                   rows=[(r["kind"], r["t"], r["m"]) for r in todo])
        for row, res in zip(todo, runner.run(job, n_rows=len(todo), backend=backend)):
            row.update(res)
        for row in done:
            rows.append(row)
            log(_scan_row(row))
    return rows


def _scan_row(r):
    head = f"| {r['backend']} | {r['kind']} | {r['m']} | {r['t']:,} |"
    if "error" in r:
        return head + f" {r['error']} | | |"
    return head + f" {_ms(r['fwd'])} | {_ms(r['train'])} | {r['first_call_s']:.2f} |"


SCAN_HEADER = (
    "| backend | A | M | T | forward (ms) | forward + grad (ms) | first call (s) |\n"
    "|---|---|---|---|---|---|---|"
)


def scan_memory_rows(p, runner, log):
    """One subprocess per (backend, T, M, pass) of ``mem_scans``: dense A, not JAX."""
    for backend in [b for b in p["scan_backends"] if b != "jax"]:
        for t, m in p["mem_scans"]:
            for mode in ("fwd", "train"):
                est = estimate_scan_bytes(backend, "dense", t, m, p["batch"], mode)
                job = dict(kind="scan_memory", a_kind="dense", t=t, m=m, mode=mode,
                           batch=p["batch"])
                res = _run_within_budget(p, runner, est, job, backend)
                log(_scan_mem_row(dict(backend=backend, t=t, m=m, mode=mode, est=est, res=res)))


def _scan_mem_row(r):
    res = r["res"]
    head = (f"| {r['backend']} | dense | {r['m']} | {r['t']:,} | {r['mode']} | "
            f"{r['est'] / GIB:.2f} |")
    if "error" in res:
        return head + f" {res['error']} | | | |"
    return head + (f" {_gib(res['growth_bytes'])} | {_gib(res['run_peak_bytes'])} | "
                   f"{_gib(res['peak_rss_bytes'])} | {res['seconds']:.2f} |")


SCAN_MEM_HEADER = (
    "| backend | A | M | T | pass | estimate (GiB) | peak RSS growth (GiB) | run's peak above "
    "its starting RSS (GiB) | process peak RSS (GiB) | one run (s) |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)

# ---------------------------------------------------------------------- main


def _gtf_rows_arg(text):
    """``"T:M[:PASS],..."`` -> ``[(T, M, (PASS,)), ...]`` for ``--gtf``."""
    rows = []
    for item in text.split(","):
        parts = item.strip().split(":")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("fwd", "train")):
            raise argparse.ArgumentTypeError(f"expected T:M or T:M:fwd|train, got {item!r}")
        rows.append((int(parts[0]), int(parts[1]), (parts[2] if len(parts) == 3 else "train",)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (about a minute)")
    parser.add_argument("--gpu", action="store_true", help="GPU profile (one GPU, < 5 min)")
    parser.add_argument("--output", help="write the markdown results to this file")
    parser.add_argument("--batch", type=int, default=1, help="sequences per batch (default 1)")
    parser.add_argument("--hidden", type=int, default=64, help="hidden size L (default 64)")
    parser.add_argument("--alpha", type=float, default=0.3, help="GTF forcing (default 0.3)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="chunk_size of the chunked variant (CPU 250, GPU 5000)")
    parser.add_argument("--mem-budget", type=float, default=None,
                        help="GiB; configurations estimated above it are skipped (CPU "
                             "default 4, the issue's bound; GPU 60%% of device memory)")
    parser.add_argument("--gtf", type=_gtf_rows_arg, default=None, metavar="T:M[:PASS],...",
                        help="only these GTF timing rows, e.g. 10000:3,10000:16:fwd "
                             "(PASS train (default) or fwd)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(json.loads(args.worker))
        return None
    machine = _machine()
    jax_version, keras_version, device, device_bytes = _jax_info(args.gpu)
    p = profile(args, device_bytes)
    runner = Runner(p["deadline"], args.gpu)
    words = argv if argv is not None else sys.argv[1:]
    out = []

    def log(line=""):
        print(line, flush=True)
        out.append(line)

    log("# Scaling benchmark: GTF-DEER vs BPTT")
    log()
    log(f"Command: `python benchmarks/bench_scale.py{''.join(' ' + w for w in words)}`")
    log(f"Machine: {machine}; JAX device {device}; jax {jax_version}, keras {keras_version}, "
        f"python {sys.version.split()[0]}; {time.strftime('%Y-%m-%d %H:%M')}")
    budget = "none" if p["mem_budget"] is None else f"{p['mem_budget']:.0f} GiB"
    log(f"Problem: GTF-forced clipped shPLRNN, L = {p['hidden']}, alpha = {p['alpha']}, "
        f"batch {p['batch']}, float32, data `bench_ops.lorenz_like_data`; chunked DEER with "
        f"chunk_size = {p['chunk']}; memory budget {budget}.")
    log()
    log("## GTF on JAX: time per pass (medians of interleaved repeats, compile excluded)")
    log()
    log(GTF_HEADER)
    try:
        gtf_rows(p, runner, log)
        if p["mem_gtf"]:
            log()
            log("## GTF on JAX: peak memory, each variant alone in a subprocess")
            log()
            log(MEM_HEADER)
            gtf_memory_rows(p, runner, log)
        if p["scans"]:
            log()
            log("## linear_recurrence (forward: h; grad: of sum(h * w) w.r.t. a and b)")
            log()
            log(SCAN_HEADER)
            scan_rows(p, runner, log)
        if p["mem_scans"]:
            log()
            log("## linear_recurrence: peak memory, each configuration alone in a subprocess")
            log()
            log(SCAN_MEM_HEADER)
            scan_memory_rows(p, runner, log)
    finally:
        runner.close()
    log()
    log(f"Total wall time {time.perf_counter() - runner.start:.0f} s; load average at the "
        f"end {os.getloadavg()[0]:.2f} / {os.getloadavg()[1]:.2f} / {os.getloadavg()[2]:.2f}.")
    if args.output:
        with open(args.output, "w") as fh:
            fh.write("\n".join(out) + "\n")
    return out


if __name__ == "__main__":
    main()
