"""The free run of a DSRModel: the shared compiled loop against a per-step Python loop.

On PyTorch, ``DSRModel.generate`` runs the model's step traced once with
``torch.jit.trace`` (:mod:`keras_dsr.models.free_run`); the reference is the plain
loop ``z = cell.call(z)`` under ``torch.no_grad`` (how ``generate`` ran before). On
JAX and TensorFlow the same comparison times the compiled loop against that eager
loop. Both are timed in alternating repeats in one process (medians, the first call,
which compiles or traces, excluded), for the polynomial cell of the Hindmarsh-Rose
preset (degree 3, two RK4 substeps) and the clipped shPLRNN (M = 3, L = 100), batch 1.

Usage:
    KERAS_BACKEND=torch python benchmarks/bench_free_run.py --steps 2000 --repeats 5 \\
        --output benchmarks/RESULTS_free_run.md
"""

import argparse
import os
import platform
import statistics
import sys
import time

import keras_dsr  # noqa: F401
import keras
import numpy as np
from keras import ops

from keras_dsr.cells import ClippedShallowPLRNN, PolynomialFlow
from keras_dsr.models import DSRModel


def eager_loop(cell, z0, steps):
    if keras.backend.backend() == "torch":
        import torch

        with torch.no_grad():
            z = z0
            for _ in range(steps):
                z = cell.call(z)
        return ops.convert_to_numpy(z)
    z = z0
    for _ in range(steps):
        z = cell.call(z)
    return ops.convert_to_numpy(z)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output")
    a = p.parse_args(argv)
    x0 = np.array([[0.1, 0.2, 0.3]], "float32")
    rows = []
    for name, cell in (("polynomial (degree 3, 2 RK4 substeps)",
                        PolynomialFlow(3, degree=3, substeps=2, bound=10.0, seed=0)),
                       ("clipped shPLRNN (M = 3, L = 100)", ClippedShallowPLRNN(3, 100, seed=0))):
        model = DSRModel(cell=cell, gtf=0.5)
        model.build((None, 10, 3))
        z0 = model.gtf.initial_state(ops.convert_to_tensor(x0))
        new = model.generate(x0, a.steps)           # compile / trace
        old_last = eager_loop(cell, z0, a.steps)
        assert np.allclose(new[0, -1], old_last[0], rtol=1e-4, atol=1e-5)
        t_new, t_old = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            model.generate(x0, a.steps)
            t_new.append((time.perf_counter() - t0) / a.steps)
            t0 = time.perf_counter()
            eager_loop(cell, z0, a.steps)
            t_old.append((time.perf_counter() - t0) / a.steps)
        rows.append((name, statistics.median(t_old), statistics.median(t_new)))
        print(rows[-1], flush=True)
    cmd = f"KERAS_BACKEND={keras.backend.backend()} python benchmarks/bench_free_run.py " + \
        " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Free run: compiled loop vs a per-step Python loop ({keras.backend.backend()})",
             "", f"Command: `{cmd.strip()}`", "",
             f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
             f"keras {keras.__version__}; {a.steps} steps, batch 1, medians of {a.repeats} "
             "alternating repeats, the first (compiling) call excluded.", "",
             "| cell | per-step loop ms/step | `generate` ms/step | speed-up |",
             "|---|---|---|---|"]
    for name, old, new in rows:
        lines.append(f"| {name} | {old * 1e3:.3f} | {new * 1e3:.3f} | {old / new:.1f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.output:
        from keras_dsr.io import atomic_write

        with atomic_write(a.output) as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
