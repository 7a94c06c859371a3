"""The Lorenz-63 default recipe trained by this checkout against an earlier commit.

For each seed, one after the other in the same run (alternating old and new, so that
both see the same machine load), ``keras_dsr.recipes.reconstruct("lorenz63",
Recipe(seed=s), with_floor=True)`` runs in a fresh process of each checkout: the
training time (``Reconstruction.seconds``, compilation included) and D_stsp / D_H of
the free run against the test trajectory are recorded, and the medians over seeds
are compared. The other checkout is a folder holding that commit's ``keras_dsr``
(make it with ``git worktree add /some/dir COMMIT``); it is put first on
``PYTHONPATH`` of its processes.

Usage:
    KERAS_BACKEND=jax python benchmarks/bench_engine_lorenz63.py --old /some/dir \\
        --seeds 0,1,2,3,4 --output benchmarks/RESULTS_engine_lorenz63.md
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

RUN = """
import json, sys
import keras_dsr
from keras_dsr.recipes import Recipe, reconstruct
import numpy as np
r = reconstruct("lorenz63", Recipe(seed=int(sys.argv[1])), with_floor=True, verbose=0)
test = np.asarray(r.test.x, dtype="float64")
x0 = test[np.random.default_rng(0).integers(0, len(test), 40)].astype("float32")
tail = np.asarray(r.model.generate(x0, 20_000))[:, -5_000:]
# An initial condition reaches the data's attractor when the last 5000 steps of its
# free run span the data's spread (each variable's std within 30 %) and visit both
# signs of x (both wings).
std_ok = np.all(np.abs(tail.std(1) / test.std(0) - 1) < 0.3, axis=1)
wings = (tail[..., 0] < 0).any(1) & (tail[..., 0] > 0).any(1)
print("RESULT " + json.dumps({"seconds": r.seconds, "dstsp": r.scores["dstsp"],
      "dh": r.scores["dh"], "floor": r.floor, "reach": int(np.sum(std_ok & wings)),
      "spe": int(getattr(r.model, "steps_per_execution", 1))}))
"""


def run(root, seed):
    env = dict(os.environ, PYTHONPATH=root, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"))
    proc = subprocess.run([sys.executable, "-c", RUN, str(seed)], cwd=root, env=env,
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"error": " / ".join(tail)}
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, help="folder holding the earlier commit's keras_dsr")
    p.add_argument("--old-name", default="0718ff0", help="the earlier commit, for the table")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--output")
    p.add_argument("--rows", help="JSON file of result rows: read first (seeds already "
                   "there are not run again), written after every run")
    a = p.parse_args(argv)
    seeds = [int(s) for s in a.seeds.split(",")]
    rows = []
    if a.rows and os.path.exists(a.rows):
        with open(a.rows) as fh:
            rows = [tuple(r) for r in json.load(fh)]
    for seed in seeds:
        for name, root in ((a.old_name, a.old), ("this checkout", ROOT)):
            if any(s == seed and n == name for s, n, _ in rows):
                continue
            res = run(root, seed)
            rows.append((seed, name, res))
            print(seed, name, res, flush=True)
            if a.rows:
                from keras_dsr.io import atomic_write

                with atomic_write(a.rows) as fh:
                    json.dump(rows, fh, indent=1)
    rows.sort(key=lambda r: (r[0], r[1] != a.old_name))
    seeds = sorted({s for s, _, _ in rows})
    lines = ["# Lorenz-63 default recipe: this checkout against an earlier commit", "",
             "Command: `KERAS_BACKEND=jax python benchmarks/bench_engine_lorenz63.py --old DIR "
             f"--old-name {a.old_name} --seeds {','.join(map(str, seeds))}`", "",
             f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, "
             f"Python {platform.python_version()}; old and new alternate per seed.", "",
             "Training seconds compare only within a seed (old and new ran back to back); "
             "rows of different seeds may have run under different machine load.", "",
             "Reach: of 40 initial conditions drawn from the test trajectory, how many "
             "free runs (20 000 steps) end on the data's attractor (the last 5 000 steps "
             "span each variable's std within 30 % and visit both signs of x); D_stsp and "
             "D_H score one free run from the test trajectory's start.", "",
             "| seed | code | steps/execution | training s | D_stsp | D_H | floor D_stsp | "
             "floor D_H | reach |",
             "|---|---|---|---|---|---|---|---|---|"]
    for seed, name, r in rows:
        if "error" in r:
            lines.append(f"| {seed} | {name} | | failed: {r['error']} | | | | |")
            continue
        reach = f"{r['reach']}/40" if "reach" in r else "not measured"
        lines.append(f"| {seed} | {name} | {r['spe']} | {r['seconds']:.1f} | {r['dstsp']:.3f} | "
                     f"{r['dh']:.3f} | {r['floor']['dstsp']:.3f} | {r['floor']['dh']:.3f} | "
                     f"{reach} |")
    lines += ["", "| code | median training s | median D_stsp | median D_H |", "|---|---|---|---|"]
    for name in (a.old_name, "this checkout"):
        ok = [r for _, n, r in rows if n == name and "error" not in r]
        if ok:
            lines.append(f"| {name} | {statistics.median(r['seconds'] for r in ok):.1f} | "
                         f"{statistics.median(r['dstsp'] for r in ok):.3f} | "
                         f"{statistics.median(r['dh'] for r in ok):.3f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.output:
        from keras_dsr.io import atomic_write

        with atomic_write(a.output) as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
